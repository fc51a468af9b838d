package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
)

func writeGatewayConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const gatewayBase = `
authority: {url: "https://127.0.0.1:8443", ca: root.crt}
agent: {cert: agent.cer, key: agent.key}
perimeters:
  - name: shop
    listen: 127.0.0.1:0
    hostnames: [shop.example.com]
    tls: {cert: shop.crt, key: shop.key}
`

func TestGatewayConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string // want "" for valid
	}{
		{"valid", gatewayBase + "    upstream: http://127.0.0.1:8080\n", ""},
		{"plain-text remote upstream", gatewayBase + "    upstream: http://10.1.2.3:8080\n", "insecure_plaintext_upstream"},
		{"plain-text remote upstream allowed", gatewayBase + "    upstream: http://10.1.2.3:8080\n    insecure_plaintext_upstream: true\n", ""},
		{"unknown field", gatewayBase + "    upstream: http://127.0.0.1:8080\n    upstream_pool: []\n", "upstream_pool"},
		{"bad mode", gatewayBase + "    upstream: http://127.0.0.1:8080\n    mode: gateway\n", "mode"},
		{"bad exempt", gatewayBase + "    upstream: http://127.0.0.1:8080\n    paths: [{path: /, exempt_ips: [not-an-ip]}]\n", "exempt_ips"},
		{"no agent", strings.Replace(gatewayBase, "agent: {cert: agent.cer, key: agent.key}", "", 1) + "    upstream: http://127.0.0.1:8080\n", "agent.cert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeGatewayConfig(t, t.TempDir(), tc.yaml)
			out := cli(t, tc.want != "", "gateway", "--config", p, "--check")
			if tc.want == "" && !strings.Contains(out, "configuration valid") || tc.want != "" && !strings.Contains(out, tc.want) {
				t.Errorf("got %q, want %q", out, tc.want)
			}
		})
	}
	dir := t.TempDir()
	f, err := loadGatewayFile(writeGatewayConfig(t, dir, gatewayBase+"    upstream: http://127.0.0.1:8080\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Agent.Cert != filepath.Join(dir, "agent.cer") || f.Perimeters[0].TLS.CertFile != filepath.Join(dir, "shop.crt") || f.Authority.CA != filepath.Join(dir, "root.crt") {
		t.Errorf("relative paths not resolved against the config's directory: %+v", f)
	}
	if err := (gateway.Config{Perimeters: f.Perimeters}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestGatewayCommand runs `mtlsid serve` and `mtlsid gateway` and sends
// requests through the gateway to a real upstream.
func TestGatewayCommand(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	home, out := t.TempDir(), t.TempDir()
	root := filepath.Join(data, "ca", "root.crt")
	me := []string{"--server", s.url, "--dir", home, "--name", "boss"}
	cli(t, false, append([]string{"enroll", s.token, "--ca", root}, me...)...)
	cli(t, false, append([]string{"org", "create", "acme"}, me...)...)
	cli(t, false, append([]string{"service", "create", "web", "--org", "acme"}, me...)...)
	cli(t, false, append([]string{"apicert", "issue", "--service", "web.acme", "--agent-name", "gw", "--out", out}, me...)...)

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	defer up.Close()

	dir := t.TempDir()
	writeTestIdentity(t, dir, "shop") // a self-signed server certificate: shop.cer, shop.key
	cfg := writeGatewayConfig(t, dir, `
authority: {url: "`+s.url+`", ca: `+root+`}
agent: {cert: `+filepath.Join(out, "gw.cer")+`, key: `+filepath.Join(out, "gw.key")+`}
perimeters:
  - listen: 127.0.0.1:0
    tls: {cert: shop.cer, key: shop.key}
    upstream: `+up.URL+`
    paths:
      - {path: /public, anonymous: true}
`)
	ctx, cancel := context.WithCancel(context.Background())
	gwOut, gwErr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"gateway", "--config", cfg}, gwOut, gwErr) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway: %v\n%s", err, gwErr.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("gateway did not stop")
		}
	}()
	addr := waitFor(t, gwOut, regexp.MustCompile(`listening on (\S+)`))[1]

	boss, err := tls.LoadX509KeyPair(filepath.Join(home, "boss.cer"), filepath.Join(home, "boss.key"))
	if err != nil {
		t.Fatal(err)
	}
	client := func(cert *tls.Certificate) *http.Client {
		conf := &tls.Config{InsecureSkipVerify: true} // the test's self-signed server certificate
		if cert != nil {
			conf.Certificates = []tls.Certificate{*cert}
		}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: conf,
			DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, n, addr)
			}}}
	}
	get := func(hc *http.Client, path string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, "https://shop.test"+path, nil)
		req.Header.Set("X-mTLS-ID", "0x1")
		req.Header.Set("Client-Cert", ":AAAA:")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	// Anonymous: the page with the sign-up link, never the upstream.
	resp, body := get(client(nil), "/")
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Upstream") != "" || !strings.Contains(body, "Get a certificate") || !strings.Contains(body, s.url) {
		t.Errorf("anonymous: %s\n%s", resp.Status, body)
	}
	// boss has a certificate but never shared it with web.acme: PB 0003.
	resp, body = get(client(&boss), "/")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Certificate seen") || !strings.Contains(body, "boss") {
		t.Errorf("not shared: %s\n%s", resp.Status, body)
	}
	// An anonymous path reaches the upstream without the spoofed headers.
	for _, c := range []*tls.Certificate{nil, &boss} {
		resp, body = get(client(c), "/public")
		var h http.Header
		if err := json.Unmarshal([]byte(body), &h); err != nil || resp.StatusCode != 200 {
			t.Fatalf("public: %s %s", resp.Status, body)
		}
		if h.Get("X-Mtls-Id") != "" || h.Get("Client-Cert") != "" || h.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("public: upstream got %v", h)
		}
	}
}

// gatewayUnderTest is `mtlsid gateway` running in-process.
type gatewayUnderTest struct {
	addr        string
	out, errOut *syncBuffer
}

// startGatewayCommand runs `mtlsid gateway --config cfg` until the test
// ends.
func startGatewayCommand(t *testing.T, cfg string) *gatewayUnderTest {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &gatewayUnderTest{out: &syncBuffer{}, errOut: &syncBuffer{}}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"gateway", "--config", cfg}, g.out, g.errOut) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway: %v\n%s", err, g.errOut.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("gateway did not stop")
		}
	})
	g.addr = waitFor(t, g.out, regexp.MustCompile(`listening on (\S+)`))[1]
	return g
}

// gatewayService starts `mtlsid serve` with a service web.acme and its
// API certificate gw; it returns the authority's URL, root, the API
// certificate's files, and a function writing a new one in their place.
func gatewayService(t *testing.T) (url, root, agentCert, agentKey string, reissue func()) {
	t.Helper()
	data := t.TempDir()
	s := startServe(t, data)
	home, out := t.TempDir(), t.TempDir()
	root = filepath.Join(data, "ca", "root.crt")
	me := []string{"--server", s.url, "--dir", home, "--name", "boss"}
	cli(t, false, append([]string{"enroll", s.token, "--ca", root}, me...)...)
	cli(t, false, append([]string{"org", "create", "acme"}, me...)...)
	cli(t, false, append([]string{"service", "create", "web", "--org", "acme"}, me...)...)
	cli(t, false, append([]string{"apicert", "issue", "--service", "web.acme", "--agent-name", "gw", "--out", out}, me...)...)
	issue := func() { // into another directory, then renamed over the files
		tmp := t.TempDir()
		cli(t, false, append([]string{"apicert", "issue", "--service", "web.acme", "--agent-name", "gw", "--out", tmp}, me...)...)
		for _, f := range []string{"gw.cer", "gw.key"} {
			if err := os.Rename(filepath.Join(tmp, f), filepath.Join(out, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s.url, root, filepath.Join(out, "gw.cer"), filepath.Join(out, "gw.key"), issue
}

func anonymousStatus(t *testing.T, addr, path string) int {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's self-signed server certificate
		DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, n, addr)
		}}}
	resp, err := hc.Get("https://shop.test" + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func waitStatus(t *testing.T, addr, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := anonymousStatus(t, addr, path)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: status %d, want %d", path, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewayReloadCommand: `mtlsid gateway` reloads when gateway.yaml
// changes (watch) and on SIGHUP, refuses a broken file with an error
// log naming it while the previous configuration serves, and picks up
// rewritten certificate files.
func TestGatewayReloadCommand(t *testing.T) {
	authURL, root, agentCert, agentKey, reissue := gatewayService(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("upstream")) }))
	defer up.Close()
	dir := t.TempDir()
	writeTestIdentity(t, dir, "shop")
	strip := "X-Version-0"
	config := func(watch string, anonymous bool) string {
		paths := "    strip_headers: [" + strip + "]\n"
		if anonymous {
			paths += "    paths: [{path: /public, anonymous: true}]\n"
		}
		return `
authority: {url: "` + authURL + `", ca: ` + root + `}
agent: {cert: ` + agentCert + `, key: ` + agentKey + `, renew: true}
watch: ` + watch + `
perimeters:
  - name: shop
    listen: 127.0.0.1:0
    tls: {cert: shop.cer, key: shop.key}
    upstream: ` + up.URL + "\n" + paths
	}

	t.Run("watch", func(t *testing.T) {
		cfg := writeGatewayConfig(t, dir, config("200ms", true))
		g := startGatewayCommand(t, cfg)
		waitFor(t, g.errOut, regexp.MustCompile(`agent certificate renewal in process`))
		waitStatus(t, g.addr, "/public", http.StatusOK)
		writeGatewayConfig(t, dir, config("200ms", false))
		waitStatus(t, g.addr, "/public", http.StatusUnauthorized)

		writeGatewayConfig(t, dir, "perimeters: [\n")
		waitFor(t, g.errOut, regexp.MustCompile(`level=ERROR msg="configuration reload refused.*file=`+regexp.QuoteMeta(cfg)))
		if got := anonymousStatus(t, g.addr, "/public"); got != http.StatusUnauthorized {
			t.Errorf("after a broken file: %d, want the previous configuration's 401", got)
		}

		// New certificate files (same names) are served to new handshakes.
		served := func() string {
			c, err := tls.Dial("tcp", g.addr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			return string(c.ConnectionState().PeerCertificates[0].Raw)
		}
		writeGatewayConfig(t, dir, config("200ms", true))
		waitStatus(t, g.addr, "/public", http.StatusOK)
		before := served()
		writeTestIdentity(t, dir, "shop") // a new key and certificate in the same files
		deadline := time.Now().Add(20 * time.Second)
		for served() == before {
			if time.Now().After(deadline) {
				t.Fatal("new certificate files not served")
			}
			time.Sleep(50 * time.Millisecond)
		}

		// A new agent certificate in the same files is read again.
		reissue()
		waitFor(t, g.errOut, regexp.MustCompile(`msg="configuration reloaded" file=\S+ trigger="changed: [^"]*`+regexp.QuoteMeta(filepath.Dir(agentCert))+`/gw\.(cer|key)`))
	})

	t.Run("SIGHUP under load", func(t *testing.T) {
		cfg := writeGatewayConfig(t, dir, config("off", true))
		g := startGatewayCommand(t, cfg)
		waitStatus(t, g.addr, "/public", http.StatusOK)
		var ok, failed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, keepAlive := range []bool{true, false} {
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive,
				TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's self-signed server certificate
				DialContext: func(ctx context.Context, n, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, n, g.addr)
				}}}
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := hc.Get("https://shop.test/public")
					if err == nil {
						resp.Body.Close()
					}
					if err != nil || resp.StatusCode != http.StatusOK {
						failed.Add(1)
						t.Logf("failed during reload: %v", err)
						continue
					}
					ok.Add(1)
				}
			})
		}
		for i := 1; i <= 3; i++ {
			strip = fmt.Sprintf("X-Version-%d", i)
			writeGatewayConfig(t, dir, config("off", true))
			before := ok.Load()
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, g.errOut, regexp.MustCompile(fmt.Sprintf(`configuration reloaded.*trigger=SIGHUP generation=%d`, i+1)))
			deadline := time.Now().Add(20 * time.Second)
			for ok.Load() < before+10 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		close(stop)
		wg.Wait()
		if n := failed.Load(); n > 0 || ok.Load() < 30 {
			t.Errorf("%d requests failed, %d succeeded during three SIGHUP reloads", n, ok.Load())
		}
		writeGatewayConfig(t, dir, config("off", false))
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, g.addr, "/public", http.StatusUnauthorized)
	})
}
