package gateway_test

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// deadURL is an http:// address on loopback where nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestUpstreams: round robin over live upstreams; a dead one is skipped
// after its first failed connection, the GET that met it retried on
// another, a POST not retried.
func TestUpstreams(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	a, b := newUpstream(t), newUpstream(t)
	dead := deadURL(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	mw := newMW(t, e)

	t.Run("round robin", func(t *testing.T) {
		cfg := shopConfig(certFile, keyFile, a.ts.URL, "x")
		cfg.Perimeters[0].Upstreams = []string{b.ts.URL}
		g := startGateway(t, cfg, mw, nil)
		hc := httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, &alice.tls, true)
		a0, b0 := a.hits.Load(), b.hits.Load()
		for range 10 {
			if s, err := getStatus(hc, "https://shop.example.com/"); s != 200 {
				t.Fatalf("%d %v", s, err)
			}
		}
		if da, db := a.hits.Load()-a0, b.hits.Load()-b0; da != 5 || db != 5 {
			t.Errorf("upstreams got %d and %d of 10 requests, want 5 and 5", da, db)
		}
	})

	t.Run("one down", func(t *testing.T) {
		cfg := shopConfig(certFile, keyFile, dead, "x")
		cfg.Perimeters[0].Upstreams = []string{a.ts.URL}
		g := startGateway(t, cfg, mw, nil)
		hc := httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, &alice.tls, true)
		// The first request goes to the dead upstream first: a POST with a
		// body is not repeated.
		resp, err := hc.Post("https://shop.example.com/", "text/plain", strings.NewReader("order"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("POST to the dead upstream: %s, want 502", resp.Status)
		}
		st := g.Status().Perimeters[0].Upstreams
		if len(st) != 2 || st[0].URL != dead || st[0].Up || !st[1].Up {
			t.Errorf("upstream status after the failure: %+v", st)
		}
		before := a.hits.Load()
		for range 6 {
			if s, err := getStatus(hc, "https://shop.example.com/"); s != 200 {
				t.Fatalf("GET with one upstream down: %d %v", s, err)
			}
		}
		if n := a.hits.Load() - before; n != 6 {
			t.Errorf("live upstream got %d of 6", n)
		}
	})

	t.Run("retried on another", func(t *testing.T) {
		cfg := shopConfig(certFile, keyFile, dead, "x")
		cfg.Perimeters[0].Upstreams = []string{a.ts.URL}
		g := startGateway(t, cfg, mw, nil)
		hc := httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, &alice.tls, true)
		before := a.hits.Load()
		// The first GET meets the dead upstream, and is sent to the live one.
		if s, err := getStatus(hc, "https://shop.example.com/"); s != 200 {
			t.Fatalf("GET: %d %v", s, err)
		}
		if a.hits.Load() != before+1 {
			t.Error("the GET did not reach the live upstream")
		}
		if g.Status().Perimeters[0].Upstreams[0].Up {
			t.Error("the dead upstream is not marked down")
		}
	})

	t.Run("validation", func(t *testing.T) {
		cfg := shopConfig(certFile, keyFile, a.ts.URL, "x")
		cfg.Perimeters[0].Upstreams = []string{b.ts.URL + "/other"}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "different paths") {
			t.Errorf("upstreams with different paths: %v", err)
		}
		cfg.Perimeters[0].Upstream, cfg.Perimeters[0].Upstreams = "", []string{a.ts.URL, b.ts.URL}
		if err := cfg.Validate(); err != nil {
			t.Errorf("upstreams without upstream: %v", err)
		}
	})
}
