package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/sdk"
)

// syncBuffer is a log destination read while the gateway writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newMW(t testing.TB, e *env, opts ...sdk.MiddlewareOption) *sdk.Middleware {
	t.Helper()
	mw, err := sdk.NewMiddleware(context.Background(), e.client, append([]sdk.MiddlewareOption{sdk.WithoutRedirect(), sdk.WithPage(gateway.RenderPage)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mw.Close() })
	return mw
}

// startGateway makes, binds and serves a gateway until the test ends.
func startGateway(t testing.TB, cfg gateway.Config, mw *sdk.Middleware, agent *sdk.CertSource) *gateway.Gateway {
	t.Helper()
	g, err := gateway.New(cfg, mw, agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return g
}

// httpsClient reaches addr as host, trusting roots, presenting cert (nil:
// none); keepAlive false makes a new connection (and handshake) per
// request.
func httpsClient(addr, host string, roots *x509.CertPool, cert *tls.Certificate, keepAlive bool) *http.Client {
	conf := &tls.Config{RootCAs: roots, ServerName: host}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: conf, DisableKeepAlives: !keepAlive,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func getStatus(hc *http.Client, u string) (int, error) {
	resp, err := hc.Get(u)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// waitUntil polls cond for up to 20 s.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func shopConfig(certFile, keyFile, upstream, adminRole string) gateway.Config {
	return gateway.Config{Perimeters: []gateway.Perimeter{{
		Name: "shop", Listen: "127.0.0.1:0", Hostnames: []string{"shop.example.com"},
		TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, Upstream: upstream,
		Paths: []gateway.Rule{{Path: "/"}, {Path: "/admin", Roles: gateway.Roles{AllOf: []string{adminRole}}}},
	}}}
}

// TestReloadUnderLoad rewrites the rules six times while clients send
// requests without pause, on one keep-alive connection and on a new
// connection each time: no request fails, and every reload's rule holds
// for the next request.
func TestReloadUnderLoad(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.grant(alice, "administrator")
	e.consent(alice)
	up := newUpstream(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	mw := newMW(t, e)
	cfgFor := func(i int) gateway.Config {
		role := "auditor" // alice lacks it
		if i%2 == 1 {
			role = "administrator"
		}
		return shopConfig(certFile, keyFile, up.ts.URL, role)
	}
	g := startGateway(t, cfgFor(0), mw, nil)
	addr := g.Addrs()[0].String()
	const shop = "https://shop.example.com"

	var okCount, failed atomic.Int64
	var firstErr atomic.Pointer[string]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, keepAlive := range []bool{true, false} {
		hc := httpsClient(addr, "shop.example.com", roots, &alice.tls, keepAlive)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, err := getStatus(hc, shop+"/")
				if err == nil && status == http.StatusOK {
					okCount.Add(1)
					continue
				}
				failed.Add(1)
				msg := fmt.Sprintf("keep-alive %v: status %d, %v", keepAlive, status, err)
				firstErr.CompareAndSwap(nil, &msg)
			}
		})
	}
	waitUntil(t, "the load to start", func() bool { return okCount.Load() > 20 })
	for i := 1; i <= 6; i++ {
		if err := g.Reload(cfgFor(i), mw, nil); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		want := http.StatusForbidden
		if i%2 == 1 {
			want = http.StatusOK
		}
		status, err := getStatus(httpsClient(addr, "shop.example.com", roots, &alice.tls, true), shop+"/admin")
		if err != nil || status != want {
			t.Fatalf("after reload %d: /admin %d %v, want %d", i, status, err, want)
		}
		before := okCount.Load()
		waitUntil(t, "requests after the reload", func() bool { return okCount.Load() > before+20 })
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %s", n, n+okCount.Load(), *firstErr.Load())
	}
	if s := g.Status(); s.Generation != 7 || s.Reloads.OK != 6 {
		t.Errorf("generation %d, %d reloads", s.Generation, s.Reloads.OK)
	}
	t.Logf("%d requests during 6 reloads, none failed", okCount.Load())
}

// TestReloadListeners adds a perimeter on a new address, then removes
// the first one: the kept listener keeps its connections, the added one
// serves, the removed one closes.
func TestReloadListeners(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	up := newUpstream(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	mw := newMW(t, e)
	cfg := shopConfig(certFile, keyFile, up.ts.URL, "x")
	g := startGateway(t, cfg, mw, nil)
	shopAddr := g.Addrs()[0].String()
	kept := httpsClient(shopAddr, "shop.example.com", roots, &alice.tls, true)
	if s, err := getStatus(kept, "https://shop.example.com/"); s != 200 {
		t.Fatalf("before: %d %v", s, err)
	}

	two := cfg
	two.Perimeters = append(two.Perimeters, cfg.Perimeters[0])
	two.Perimeters[1].Name = "second"
	if err := g.Reload(two, mw, nil); err != nil {
		t.Fatal(err)
	}
	addrs := g.Addrs()
	if len(addrs) != 2 || addrs[0].String() != shopAddr {
		t.Fatalf("addresses after adding: %v (shop was %s)", addrs, shopAddr)
	}
	secondAddr := addrs[1].String()
	if s, err := getStatus(httpsClient(secondAddr, "shop.example.com", roots, &alice.tls, true), "https://shop.example.com/"); s != 200 {
		t.Fatalf("added perimeter: %d %v", s, err)
	}
	if s, err := getStatus(kept, "https://shop.example.com/"); s != 200 {
		t.Fatalf("kept connection after adding: %d %v", s, err)
	}

	only := two
	only.Perimeters = two.Perimeters[1:]
	if err := g.Reload(only, mw, nil); err != nil {
		t.Fatal(err)
	}
	if addrs := g.Addrs(); len(addrs) != 1 || addrs[0].String() != secondAddr {
		t.Fatalf("addresses after removing: %v", addrs)
	}
	waitUntil(t, "the removed listener to close", func() bool {
		c, err := net.DialTimeout("tcp", shopAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if s, err := getStatus(httpsClient(secondAddr, "shop.example.com", roots, &alice.tls, false), "https://shop.example.com/"); s != 200 {
		t.Fatalf("remaining perimeter: %d %v", s, err)
	}
}

// TestReloadRefused: a bad configuration changes nothing.
func TestReloadRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	up := newUpstream(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	mw := newMW(t, e)
	cfg := shopConfig(certFile, keyFile, up.ts.URL, "x")
	g := startGateway(t, cfg, mw, nil)
	addr := g.Addrs()[0].String()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	bad := []struct {
		name   string
		change func(p *gateway.Perimeter)
		want   string
	}{
		{"invalid mode", func(p *gateway.Perimeter) { p.Mode = "sometimes" }, "mode"},
		{"unreadable certificate", func(p *gateway.Perimeter) { p.TLS.CertFile += ".missing" }, "no such file"},
		{"address in use", func(p *gateway.Perimeter) { p.Listen = taken.Addr().String() }, "address already in use"},
		{"plain-text remote upstream", func(p *gateway.Perimeter) { p.Upstreams = []string{"http://192.0.2.1:80"} }, "insecure_plaintext_upstream"},
	}
	for _, tc := range bad {
		c := shopConfig(certFile, keyFile, up.ts.URL, "x")
		tc.change(&c.Perimeters[0])
		err := g.Reload(c, mw, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: reload error %v, want one about %q", tc.name, err, tc.want)
		}
		if s, err := getStatus(httpsClient(addr, "shop.example.com", roots, &alice.tls, false), "https://shop.example.com/admin"); s != http.StatusForbidden {
			t.Errorf("%s: the old configuration no longer serves: %d %v", tc.name, s, err)
		}
	}
	s := g.Status()
	if s.Generation != 1 || s.Reloads.Failed != int64(len(bad)) || !strings.Contains(s.Reloads.LastError, "insecure_plaintext_upstream") {
		t.Errorf("status after refused reloads: %+v", s.Reloads)
	}
}

// TestCertificateFilesChange: new certificate files are noticed by the
// watch and served to new connections after a reload; a connection made
// before keeps working.
func TestCertificateFilesChange(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	up := newUpstream(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	mw := newMW(t, e)
	cfg := shopConfig(certFile, keyFile, up.ts.URL, "x")
	g := startGateway(t, cfg, mw, nil)
	addr := g.Addrs()[0].String()
	watch := gateway.NewFileWatch(cfg.Files()...)
	if ch := watch.Changed(); len(ch) != 0 {
		t.Fatalf("changes before any: %v", ch)
	}
	served := func() string {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "shop.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	first := served()
	kept := httpsClient(addr, "shop.example.com", roots, &alice.tls, true)
	if s, err := getStatus(kept, "https://shop.example.com/"); s != 200 {
		t.Fatalf("before: %d %v", s, err)
	}

	_, _, newPool := serverCert(t, e.dir, "shop.example.com") // the same files, a new certificate
	ch := watch.Changed()
	if len(ch) != 2 {
		t.Fatalf("changed: %v, want the certificate and key", ch)
	}
	if err := g.Reload(cfg, mw, nil); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: newPool, ServerName: "shop.example.com"})
	if err != nil {
		t.Fatalf("the new certificate is not served: %v", err)
	}
	second := c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	c.Close()
	if second == first {
		t.Fatal("same certificate after the reload")
	}
	if s, err := getStatus(kept, "https://shop.example.com/"); s != 200 {
		t.Errorf("the connection made before the change: %d %v", s, err)
	}
	if ch := watch.Changed(); len(ch) != 0 {
		t.Errorf("changes after none: %v", ch)
	}
}

// TestAccessLog: one line per request with the identity and decision.
func TestAccessLog(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.grant(alice, "administrator")
	e.consent(alice)
	up := newUpstream(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	mw := newMW(t, e)
	logs := &syncBuffer{}
	cfg := shopConfig(certFile, keyFile, up.ts.URL, "auditor")
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	g := startGateway(t, cfg, mw, nil)
	hc := httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, &alice.tls, true)
	for _, path := range []string{"/page", "/admin"} {
		if _, err := getStatus(hc, "https://shop.example.com"+path); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := getStatus(httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, nil, true), "https://shop.example.com/x"); err != nil {
		t.Fatal(err)
	}
	serial := "serial=" + hexSerial(alice)
	for _, want := range [][]string{
		{"msg=request", "perimeter=shop", "method=GET", "path=/page", "status=200", serial, "roles=administrator", "decision=allowed", "client=127.0.0.1:", "duration="},
		{"path=/admin", "status=403", serial, "roles=administrator", "decision=refused"},
		{"path=/x", "status=401", "decision=refused"},
	} {
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(line, w)
			}
			found = found || ok
		}
		if !found {
			t.Errorf("no access log line with %v in\n%s", want, logs.String())
		}
	}
}

// TestReloadInFlight: a request in progress when the upstream changes
// finishes on the old upstream; the next one goes to the new.
func TestReloadInFlight(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	arrived, release := make(chan struct{}), make(chan struct{})
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		io.WriteString(w, "old")
	}))
	defer old.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	fresh := newUpstream(t)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	mw := newMW(t, e)
	g := startGateway(t, shopConfig(certFile, keyFile, old.URL, "x"), mw, nil)
	hc := httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, &alice.tls, true)
	type result struct {
		status int
		body   string
		err    error
	}
	slow := make(chan result, 1)
	go func() {
		resp, err := httpsClient(g.Addrs()[0].String(), "shop.example.com", roots, &alice.tls, true).Get("https://shop.example.com/slow")
		if err != nil {
			slow <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the request did not reach the old upstream")
	}
	if err := g.Reload(shopConfig(certFile, keyFile, fresh.ts.URL, "x"), mw, nil); err != nil {
		t.Fatal(err)
	}
	before := fresh.hits.Load()
	if s, err := getStatus(hc, "https://shop.example.com/"); s != 200 || fresh.hits.Load() != before+1 {
		t.Fatalf("new request after the reload: %d %v, new upstream hits %d", s, err, fresh.hits.Load()-before)
	}
	close(release)
	if r := <-slow; r.err != nil || r.status != 200 || r.body != "old" {
		t.Errorf("request in progress during the reload: %+v", r)
	}
}
