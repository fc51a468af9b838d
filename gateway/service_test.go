package gateway_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/sdk"
)

// TestForwardToSDKService puts a Go service using the SDK middleware (as
// examples/hello does with -trusted-proxy) behind the gateway in forward
// mode: the gateway ends TLS and forwards the identity; the service trusts
// the gateway's address, identifies the person from the forwarded headers,
// and sees their roles; a request without a certificate reaches the
// service unidentified.
func TestForwardToSDKService(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	e.grant(alice, "administrator")

	appMW, err := sdk.NewMiddleware(ctx, e.client, sdk.WithTrustedProxies("127.0.0.1"), sdk.WithoutRedirect())
	if err != nil {
		t.Fatal(err)
	}
	defer appMW.Close()
	app := httptest.NewServer(appMW.Identify(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := sdk.FromContext(r.Context())
		if p == nil {
			_ = json.NewEncoder(w).Encode(map[string]any{"identified": false})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"identified": true, "serial": p.Serial, "roles": p.Roles, "method": p.Method, "trusted": p.TrustedHeaders})
	})))
	defer app.Close()

	gwMW, err := sdk.NewMiddleware(ctx, e.client, sdk.WithoutRedirect(), sdk.WithPage(gateway.RenderPage))
	if err != nil {
		t.Fatal(err)
	}
	defer gwMW.Close()
	agent, err := sdk.LoadCertSource(e.agentCert, e.agentKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, pool := serverCert(t, e.dir, "app.example.com")
	gw, err := gateway.New(gateway.Config{Perimeters: []gateway.Perimeter{{
		Name: "app", Listen: "127.0.0.1:0", Hostnames: []string{"app.example.com"},
		TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, Upstream: app.URL,
		Paths: []gateway.Rule{{Path: "/", Mode: gateway.ModeForward}},
	}}}, gwMW, agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := gw.Addrs()[0].String()
	go gw.Serve()
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		gw.Shutdown(sctx)
	}()

	get := func(person *device) map[string]any {
		t.Helper()
		conf := &tls.Config{RootCAs: pool, ServerName: "app.example.com"}
		if person != nil {
			conf.Certificates = []tls.Certificate{person.tls}
		}
		hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: conf,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}}}
		resp, err := hc.Get("https://app.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("service answer: %v", err)
		}
		return m
	}
	m := get(alice)
	if m["identified"] != true || m["serial"] != alice.serial {
		t.Fatalf("the service behind the gateway did not identify alice: %v", m)
	}
	roles, _ := m["roles"].([]any)
	if !slices.Contains(roles, any("administrator")) {
		t.Errorf("roles seen by the service: %v", m["roles"])
	}
	if trusted, _ := m["trusted"].([]any); len(trusted) == 0 {
		t.Errorf("the service reports no trusted forwarded header: %v", m)
	}
	if m := get(nil); m["identified"] != false {
		t.Errorf("a request without a certificate reached the service identified: %v", m)
	}
}
