package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
		{"unknown field", gatewayBase + "    upstream: http://127.0.0.1:8080\n    upstreams: []\n", "upstreams"},
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
