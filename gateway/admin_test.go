package gateway_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/sdk"
)

// scrape reads /metrics and parses the text format: series name with
// labels (as written) to value.
func scrape(t *testing.T, hc *http.Client, u string) map[string]float64 {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("metrics: %s\n%s", resp.Status, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func TestAdmin(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.enroll("alice-laptop"), e.enroll("bob-phone")
	e.grant(alice, "gateway-admin")
	e.consent(alice)
	e.consent(bob)
	up := newUpstream(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	adminCert, adminKey, adminRoots := serverCert(t, e.dir, "gw-admin.example.com")
	metrics := gateway.NewMetrics()
	mw := newMW(t, e, sdkInquiryObserver(metrics))
	cfg := shopConfig(certFile, keyFile, up.ts.URL, "auditor")
	cfg.Metrics = metrics
	cfg.Admin = &gateway.Admin{Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: adminCert, KeyFile: adminKey},
		Roles: gateway.Roles{AnyOf: []string{"gateway-admin"}}}
	g := startGateway(t, cfg, mw, nil)
	shopAddr, adminAddr := g.Addrs()[0].String(), g.AdminAddr().String()

	// Traffic to count: allowed (twice: a miss, then a hit), refused.
	shop := httpsClient(shopAddr, "shop.example.com", roots, &alice.tls, true)
	for _, p := range []string{"/", "/", "/admin"} {
		if _, err := getStatus(shop, "https://shop.example.com"+p); err != nil {
			t.Fatal(err)
		}
	}
	const base = "https://gw-admin.example.com"
	admin := func(d *device) *http.Client {
		if d == nil {
			return httpsClient(adminAddr, "gw-admin.example.com", adminRoots, nil, false)
		}
		return httpsClient(adminAddr, "gw-admin.example.com", adminRoots, &d.tls, false)
	}

	t.Run("refused", func(t *testing.T) {
		if _, err := getStatus(admin(nil), base+"/"); err == nil {
			t.Error("admin handshake without a certificate succeeded")
		}
		for _, p := range []string{"/", "/status.json", "/metrics"} {
			resp, err := admin(bob).Get(base + p)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "gateway-admin") || strings.Contains(string(body), "shop.example.com") {
				t.Errorf("%s without the role: %s\n%s", p, resp.Status, body)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		resp, err := admin(alice).Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"Gateway status", "shop.example.com", up.ts.URL, "generation <b>1</b>", "expires"} {
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("status page: %s, lacks %q\n%s", resp.Status, want, body)
			}
		}
		resp, err = admin(alice).Get(base + "/status.json")
		if err != nil {
			t.Fatal(err)
		}
		var s gateway.Status
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if s.Generation != 1 || len(s.Perimeters) != 1 || s.Perimeters[0].Address != shopAddr || s.Perimeters[0].Certificate == nil ||
			s.Perimeters[0].Certificate.NotAfter.IsZero() || !s.Perimeters[0].Upstreams[0].Up || s.Cache.Entries < 1 || s.Admin == nil {
			t.Errorf("status.json: %+v", s)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		m := scrape(t, admin(alice), base+"/metrics")
		for series, min := range map[string]float64{
			`mtlsid_gateway_requests_total{decision="allowed",perimeter="shop"}`:                2,
			`mtlsid_gateway_requests_total{decision="refused",perimeter="shop"}`:                1,
			`mtlsid_gateway_requests_total{decision="refused",perimeter="admin"}`:               3,
			`mtlsid_gateway_identity_cache_hits_total`:                                          1,
			`mtlsid_gateway_identity_cache_misses_total`:                                        1,
			`mtlsid_gateway_identity_cache_entries`:                                             1,
			`mtlsid_gateway_inquiry_duration_seconds_count{result="ok"}`:                        1,
			`mtlsid_gateway_config_generation`:                                                  1,
			`mtlsid_gateway_connections_active{listener="admin"}`:                               1, // this scrape
			`mtlsid_gateway_upstream_up{perimeter="shop",upstream="` + up.ts.URL + `"}`:         1,
			`mtlsid_gateway_certificate_expiry_timestamp_seconds{certificate="perimeter shop"}`: 1,
		} {
			if v, ok := m[series]; !ok || v < min {
				t.Errorf("%s = %v (present %v), want at least %v", series, v, ok, min)
			}
		}
		if _, ok := m[`mtlsid_gateway_reloads_total{result="failed"}`]; !ok {
			t.Error("no reloads_total")
		}
		if err := g.Reload(cfg, mw, nil); err != nil {
			t.Fatal(err)
		}
		m = scrape(t, admin(alice), base+"/metrics")
		if m[`mtlsid_gateway_reloads_total{result="ok"}`] != 1 || m[`mtlsid_gateway_config_generation`] != 2 {
			t.Errorf("after a reload: reloads %v generation %v", m[`mtlsid_gateway_reloads_total{result="ok"}`], m[`mtlsid_gateway_config_generation`])
		}
	})
}

// TestAdminMetricsIPs: listed addresses scrape /metrics without a
// certificate; the status page still needs one with the role.
func TestAdminMetricsIPs(t *testing.T) {
	e := newEnv(t)
	up := newUpstream(t)
	certFile, keyFile, _ := serverCert(t, e.dir, "shop.example.com")
	adminCert, adminKey, adminRoots := serverCert(t, e.dir, "gw-admin.example.com")
	mw := newMW(t, e)
	cfg := shopConfig(certFile, keyFile, up.ts.URL, "auditor")
	cfg.Admin = &gateway.Admin{Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: adminCert, KeyFile: adminKey},
		Roles: gateway.Roles{AllOf: []string{"gateway-admin"}}, MetricsIPs: []string{"127.0.0.0/8"}}
	g := startGateway(t, cfg, mw, nil)
	hc := httpsClient(g.AdminAddr().String(), "gw-admin.example.com", adminRoots, nil, true)
	if m := scrape(t, hc, "https://gw-admin.example.com/metrics"); m[`mtlsid_gateway_config_generation`] != 1 {
		t.Errorf("metrics from a listed address: %v", m[`mtlsid_gateway_config_generation`])
	}
	if s, err := getStatus(hc, "https://gw-admin.example.com/status.json"); s != http.StatusUnauthorized {
		t.Errorf("status without a certificate: %d %v", s, err)
	}

	bad := cfg
	bad.Admin = &gateway.Admin{Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: adminCert, KeyFile: adminKey}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "roles are required") {
		t.Errorf("admin without roles: %v", err)
	}
}

func sdkInquiryObserver(m *gateway.Metrics) sdk.MiddlewareOption {
	return sdk.WithInquiryObserver(m.ObserveInquiry)
}
