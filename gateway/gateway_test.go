package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/sdk"
)

// upstream is a real HTTP server on loopback that answers with what it
// received.
type upstream struct {
	ts   *httptest.Server
	hits atomic.Int64
}

type received struct {
	Host   string
	Header http.Header
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{}
	u.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		w.Header().Set("X-Upstream", "yes")
		_ = json.NewEncoder(w).Encode(received{Host: r.Host, Header: r.Header})
	}))
	t.Cleanup(u.ts.Close)
	return u
}

// fixture is the authority, an upstream, and a gateway with two
// perimeters: "shop" (certificate requested) and "closed" (required).
type fixture struct {
	e          *env
	up         *upstream
	gw         *gateway.Gateway
	addr       string // shop's listener
	closedAddr string
	pool       *x509.CertPool
	mw         *sdk.Middleware
}

var spoofed = http.Header{
	"Client-Cert":                 {":c3Bvb2ZlZA==:"},
	"Client-Cert-Chain":           {":c3Bvb2ZlZA==:"},
	"X-Mtls-Id":                   {"spoofed-0x1"},
	"X-Mtls-Agent":                {"spoofed-agent"},
	"X-Mtls-Roles":                {"spoofed-administrator"},
	"X-Mtls-Local-Id":             {"spoofed-root"},
	"X-Mtls-Org-Id":               {"spoofed-org"},
	"X-Forwarded-Client-Cert":     {"spoofed-xfcc"},
	"X-Forwarded-Tls-Client-Cert": {"spoofed-traefik"},
	"X-Ssl-Client-Cert":           {"spoofed-nginx"},
	"X_mtls_id":                   {"spoofed-underscore"},
	"X-Shop-User":                 {"spoofed-custom"},
	"X-Forwarded-For":             {"6.6.6.6"},
	"X-Forwarded-Host":            {"spoofed.example"},
	"X-Forwarded-Proto":           {"spoofed"},
	"Forwarded":                   {"for=6.6.6.6;proto=spoofed"},
	"X-Real-Ip":                   {"6.6.6.6"},
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e := newEnv(t)
	f := &fixture{e: e, up: newUpstream(t)}
	shopCert, shopKey, pool := serverCert(t, e.dir, "shop.example.com", "*.apps.example.com")
	closedCert, closedKey, _ := serverCert(t, e.dir, "closed.example.com")
	f.pool = pool
	f.pool.AddCert(loadCert(t, closedCert))
	var err error
	f.mw, err = sdk.NewMiddleware(context.Background(), e.client, sdk.WithoutRedirect(), sdk.WithPage(gateway.RenderPage))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.mw.Close() })
	agent, err := sdk.LoadCertSource(e.agentCert, e.agentKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{Perimeters: []gateway.Perimeter{{
		Name: "shop", Listen: "127.0.0.1:0", Hostnames: []string{"shop.example.com", "*.apps.example.com"},
		TLS: gateway.TLSFiles{CertFile: shopCert, KeyFile: shopKey}, Upstream: f.up.ts.URL,
		StripHeaders: []string{"X-Shop-User"},
		Paths: []gateway.Rule{
			{Path: "/"},
			{Path: "/public", Anonymous: true},
			{Path: "/admin", Roles: gateway.Roles{AllOf: []string{"administrator"}}},
			{Path: "/ops", Roles: gateway.Roles{AnyOf: []string{"operator", "administrator"}}},
			{Path: "/fwd", Mode: gateway.ModeForward},
			{Path: "/exempt", Roles: gateway.Roles{AllOf: []string{"administrator"}}, ExemptIPs: []string{"127.0.0.0/8"}},
			{Path: "/notexempt", Roles: gateway.Roles{AllOf: []string{"administrator"}}, ExemptIPs: []string{"10.0.0.0/8", "192.0.2.7"}},
		},
	}, {
		Name: "closed", Listen: "127.0.0.1:0", Hostnames: []string{"closed.example.com"}, ClientCert: gateway.ClientCertRequire,
		TLS: gateway.TLSFiles{CertFile: closedCert, KeyFile: closedKey}, Upstream: f.up.ts.URL,
	}}}
	f.gw, err = gateway.New(cfg, f.mw, agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.gw.Listen(); err != nil {
		t.Fatal(err)
	}
	addrs := f.gw.Addrs()
	f.addr, f.closedAddr = addrs[0].String(), addrs[1].String()
	done := make(chan error, 1)
	go func() { done <- f.gw.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return f
}

func loadCert(t testing.TB, certFile string) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, strings.TrimSuffix(certFile, ".crt")+".key")
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// client is a browser reaching addr as host, presenting person's
// certificate (nil: none). It does not follow redirects.
func (f *fixture) client(person *device, addr, host string) *http.Client {
	conf := &tls.Config{RootCAs: f.pool, ServerName: host}
	if person != nil {
		conf.Certificates = []tls.Certificate{person.tls}
	}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: conf, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type answer struct {
	status   int
	body     string
	upstream *received // nil when the gateway answered itself
}

func do(t testing.TB, hc *http.Client, u string, header http.Header) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode, body: string(body)}
	if resp.Header.Get("X-Upstream") == "yes" {
		a.upstream = &received{}
		if err := json.Unmarshal(body, a.upstream); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func hexSerial(d *device) string { return "0x" + d.cert.SerialNumber.Text(16) }

func TestGateway(t *testing.T) {
	f := newFixture(t)
	e := f.e
	alice, bob, carol := e.enroll("alice-laptop"), e.enroll("bob-phone"), e.enroll("carol-pc")
	e.grant(alice, "administrator")
	e.consent(alice)
	e.consent(bob)
	// carol never consents: PB 0003.
	shop := "https://shop.example.com"

	t.Run("enforce identified", func(t *testing.T) {
		a := do(t, f.client(alice, f.addr, "shop.example.com"), shop+"/", nil)
		if a.status != 200 || a.upstream == nil {
			t.Fatalf("alice: %d %s", a.status, a.body)
		}
		h := a.upstream.Header
		want := map[string]string{
			"X-Mtls-Id":         hexSerial(alice),
			"X-Mtls-Roles":      "administrator",
			"X-Mtls-Agent":      alice.cert.Subject.String(),
			"Client-Cert":       ":" + base64.StdEncoding.EncodeToString(alice.cert.Raw) + ":",
			"X-Forwarded-For":   "127.0.0.1",
			"X-Forwarded-Proto": "https",
			"X-Forwarded-Host":  "shop.example.com",
		}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if h.Get("Client-Cert-Chain") == "" {
			t.Error("no Client-Cert-Chain")
		}
		if a.upstream.Host != "shop.example.com" {
			t.Errorf("upstream Host %q", a.upstream.Host)
		}
	})

	t.Run("enforce roles", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			person *device
			path   string
			status int
			page   []string
		}{
			{"all-of with role", alice, "/admin", 200, nil},
			{"all-of without role", bob, "/admin", 403, []string{"Missing", "administrator", "Certificate seen", "bob-phone"}},
			{"any-of with role", alice, "/ops/x", 200, nil},
			{"any-of without role", bob, "/ops", 403, []string{"one of", "operator", "administrator"}},
			{"prefix is a path segment", bob, "/administrators", 200, nil},
			{"no consent yet", carol, "/", 403, []string{"not yet shared"}},
			{"no certificate", nil, "/", 401, []string{"Get a certificate", e.url + "/", "No certificate was presented"}},
			{"no certificate, role path", nil, "/admin", 401, []string{"Get a certificate"}},
			{"anonymous path", nil, "/public", 200, nil},
			{"exempt address", nil, "/exempt", 200, nil},
			{"exempt address, no role", bob, "/exempt", 200, nil},
			{"not exempt", bob, "/notexempt", 403, []string{"administrator"}},
			{"forward anonymous", nil, "/fwd", 200, nil},
			{"forward without consent", carol, "/fwd", 200, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := f.up.hits.Load()
				a := do(t, f.client(tc.person, f.addr, "shop.example.com"), shop+tc.path, nil)
				if a.status != tc.status {
					t.Fatalf("status %d, want %d\n%s", a.status, tc.status, a.body)
				}
				if (tc.status == 200) != (a.upstream != nil) || tc.status != 200 && f.up.hits.Load() != before {
					t.Fatalf("upstream reached %v for status %d", a.upstream != nil, a.status)
				}
				for _, s := range tc.page {
					if !strings.Contains(a.body, s) {
						t.Errorf("page lacks %q:\n%s", s, a.body)
					}
				}
				if tc.status != 200 && !strings.Contains(a.body, "<html") {
					t.Errorf("not an HTML page: %s", a.body)
				}
			})
		}
	})

	t.Run("paths read two ways", func(t *testing.T) {
		// bob lacks administrator: no spelling of /admin may pass him by
		// the anonymous rule of /public, whatever the upstream makes of it.
		for _, tc := range []struct {
			path   string
			status int
		}{
			{"/public/../admin", 400},
			{"/public/./admin", 400},
			{"/public/%2e%2e/admin", 400},
			{"/public%2F..%2Fadmin", 400},
			{"/public/..%2fadmin", 400},
			{"/public%5C..%5Cadmin", 400},
			{"//admin", 403},
			{"/public//admin", 200},
		} {
			before := f.up.hits.Load()
			a := do(t, f.client(bob, f.addr, "shop.example.com"), shop+tc.path, nil)
			if a.status != tc.status {
				t.Errorf("%s: %d, want %d\n%s", tc.path, a.status, tc.status, a.body)
			}
			if tc.status != 200 && f.up.hits.Load() != before {
				t.Errorf("%s reached the upstream", tc.path)
			}
		}
	})

	t.Run("forward mode", func(t *testing.T) {
		a := do(t, f.client(bob, f.addr, "shop.example.com"), shop+"/fwd", nil)
		if a.upstream == nil || a.upstream.Header.Get("X-Mtls-Id") != hexSerial(bob) || a.upstream.Header.Get("Client-Cert") == "" {
			t.Fatalf("bob forwarded: %d %+v", a.status, a.upstream)
		}
		if a.upstream.Header.Get("X-Mtls-Roles") != "" {
			t.Errorf("bob has no roles, got %q", a.upstream.Header.Get("X-Mtls-Roles"))
		}
		for _, p := range []*device{nil, carol} {
			a := do(t, f.client(p, f.addr, "shop.example.com"), shop+"/fwd", nil)
			if a.upstream == nil || a.upstream.Header.Get("X-Mtls-Id") != "" || a.upstream.Header.Get("Client-Cert") != "" {
				t.Errorf("unidentified request forwarded with identity: %+v", a.upstream)
			}
		}
	})

	t.Run("spoofed headers stripped", func(t *testing.T) {
		reached := 0
		for _, path := range []string{"/", "/public", "/admin", "/fwd", "/exempt", "/notexempt"} {
			for _, p := range []*device{nil, alice, bob, carol} {
				a := do(t, f.client(p, f.addr, "shop.example.com"), shop+path, spoofed)
				if a.upstream == nil {
					continue
				}
				reached++
				for k, vs := range a.upstream.Header {
					for _, v := range vs {
						if strings.Contains(v, "spoof") || strings.Contains(v, "6.6.6.6") || v == ":c3Bvb2ZlZA==:" {
							t.Errorf("%s as %v: upstream got %s: %s", path, name(p), k, v)
						}
					}
				}
				if got := a.upstream.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
					t.Errorf("%s: X-Forwarded-For %q", path, got)
				}
			}
		}
		if reached < 12 {
			t.Errorf("only %d spoofed requests reached the upstream", reached)
		}
	})

	t.Run("http2", func(t *testing.T) {
		hc := f.client(alice, f.addr, "shop.example.com")
		hc.Transport.(*http.Transport).ForceAttemptHTTP2 = true
		resp, err := hc.Get(shop + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Errorf("%s %s", resp.Proto, resp.Status)
		}
	})

	t.Run("closed circle", func(t *testing.T) {
		_, err := f.client(nil, f.closedAddr, "closed.example.com").Get("https://closed.example.com/")
		if err == nil {
			t.Fatal("handshake without a certificate succeeded")
		}
		a := do(t, f.client(alice, f.closedAddr, "closed.example.com"), "https://closed.example.com/", spoofed)
		if a.status != 200 || a.upstream.Header.Get("X-Mtls-Id") != hexSerial(alice) {
			t.Fatalf("alice: %d %s", a.status, a.body)
		}
	})

	t.Run("hostnames", func(t *testing.T) {
		a := do(t, f.client(alice, f.addr, "x.apps.example.com"), "https://x.apps.example.com/", nil)
		if a.status != 200 || a.upstream.Host != "x.apps.example.com" {
			t.Fatalf("wildcard: %d %s", a.status, a.body)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://shop.example.com/public", nil)
		req.Host = "other.example.com"
		resp, err := f.client(alice, f.addr, "shop.example.com").Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("Host of no perimeter: %s", resp.Status)
		}
		if _, err := f.client(alice, f.addr, "a.b.apps.example.com").Get("https://a.b.apps.example.com/"); err == nil {
			t.Error("SNI of no perimeter: handshake succeeded")
		}
	})

	t.Run("revocation", func(t *testing.T) {
		hc := f.client(bob, f.addr, "shop.example.com")
		if a := do(t, hc, shop+"/", nil); a.status != 200 {
			t.Fatalf("before: %d", a.status)
		}
		if err := e.auth.RevokeLocal(context.Background(), bob.serial, 1); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			a := do(t, f.client(bob, f.addr, "shop.example.com"), shop+"/", nil)
			if a.status == http.StatusForbidden && strings.Contains(a.body, "revoked") {
				break
			}
			if time.Since(start) > time.Second {
				t.Fatalf("revoked certificate still accepted after 1 s: %d %s", a.status, a.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func name(d *device) string {
	if d == nil {
		return "anonymous"
	}
	return d.cert.Subject.CommonName
}

func TestInsecureUpstreamLogged(t *testing.T) {
	e := newEnv(t)
	certFile, keyFile, _ := serverCert(t, e.dir, "shop.example.com")
	mw, err := sdk.NewMiddleware(context.Background(), e.client, sdk.WithoutRevocationEvents())
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()
	var logs bytes.Buffer
	cfg := gateway.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Perimeters: []gateway.Perimeter{{
		Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile},
		Upstream: "http://192.0.2.10:8080", InsecurePlaintextUpstream: true,
	}}}
	if _, err := gateway.New(cfg, mw, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "INSECURE") || !strings.Contains(logs.String(), "192.0.2.10") {
		t.Errorf("insecure upstream not logged loudly: %s", logs.String())
	}
	cfg.Perimeters[0].InsecurePlaintextUpstream = false
	if _, err := gateway.New(cfg, mw, nil); !errors.Is(err, gateway.ErrConfig) {
		t.Errorf("plain-text upstream accepted: %v", err)
	}
	// Two catch-all perimeters on one address cannot be told apart.
	cfg.Perimeters[0].Upstream = "http://127.0.0.1:1"
	cfg.Perimeters[0].Listen = "127.0.0.1:18443" // New does not bind it
	cfg.Perimeters = append(cfg.Perimeters, cfg.Perimeters[0])
	cfg.Perimeters[1].Name = "second"
	if _, err := gateway.New(cfg, mw, nil); !errors.Is(err, gateway.ErrConfig) {
		t.Errorf("two catch-all perimeters on one address: %v", err)
	}
}
