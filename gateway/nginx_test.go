package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
)

// nginxPath finds nginx-core's binary. Without it the test is skipped,
// except under CI, where .ci/run installs it.
func nginxPath(t testing.TB) string {
	t.Helper()
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx, err = exec.LookPath("/usr/sbin/nginx") // not on every PATH
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("nginx is not installed: .ci/run installs nginx-core")
		}
		t.Skip("nginx not installed (apt-get install nginx-core)")
	}
	return nginx
}

// startNginx runs nginx in the foreground with the http block body,
// under a temporary prefix, until the test ends; it waits for port.
func startNginx(t testing.TB, dir, httpBody string, port int) {
	t.Helper()
	nginx := nginxPath(t)
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, httpBody)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", dir, "-c", confFile, "-e", filepath.Join(dir, "error.log")}
	if out, err := exec.Command(nginx, append([]string{"-t"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// TERM lets the master stop its workers; killing it would orphan them.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			return
		}
		if i > 400 {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestPassthroughProxyProtocolNginx: a real nginx reads the gateway's
// PROXY v2 header (listen ... proxy_protocol) and ends TLS itself,
// verifying the client's certificate. It reports the client address the
// header carried: the test's own source address (127.0.0.2, or ::1),
// not the gateway's, also as $remote_addr through the realip module as
// docs/gateway.md configures it.
func TestPassthroughProxyProtocolNginx(t *testing.T) {
	nginxPath(t)
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	dir := t.TempDir()
	certFile, keyFile, pool := serverCert(t, dir, "web.example.com")
	chain := filepath.Join(dir, "mtlsid-chain.pem")
	if err := os.WriteFile(chain, e.auth.CA().ChainPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	startNginx(t, dir, fmt.Sprintf(`  server {
    listen 127.0.0.1:%d ssl proxy_protocol;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_client_certificate %s;
    ssl_verify_client on;
    ssl_verify_depth 2;
    set_real_ip_from 127.0.0.1;
    real_ip_header proxy_protocol;
    location / {
      default_type text/plain;
      return 200 "addr=$proxy_protocol_addr port=$proxy_protocol_port server=$proxy_protocol_server_addr:$proxy_protocol_server_port serial=$ssl_client_serial remote=$remote_addr peer=$realip_remote_addr\n";
    }
  }
`, port, certFile, keyFile, chain), port)

	listeners := []gateway.Passthrough{{Name: "v4", Listen: "127.0.0.1:0", Routes: []gateway.PassthroughRoute{
		{Hostnames: []string{"web.example.com"}, Upstream: "127.0.0.1:" + strconv.Itoa(port), ProxyProtocol: gateway.ProxyProtocolV2},
	}}}
	v6 := true
	if ln, err := net.Listen("tcp", "[::1]:0"); err != nil {
		v6 = false
		t.Logf("no IPv6 loopback (%v): the IPv6 header is tested against the parser only", err)
	} else {
		ln.Close()
		listeners = append(listeners, listeners[0])
		listeners[1].Name, listeners[1].Listen = "v6", "[::1]:0"
	}
	logs := &logBuf{}
	g := startGateway(t, gateway.Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), Passthrough: listeners}, newMiddleware(t, e), nil)

	get := func(gwAddr, source string) (body string, local *net.TCPAddr) {
		t.Helper()
		d := &net.Dialer{Timeout: 20 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
		tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			c, err := d.DialContext(ctx, "tcp", gwAddr)
			if err == nil {
				local = c.LocalAddr().(*net.TCPAddr)
			}
			return c, err
		}}
		tr.TLSClientConfig = dialConfig(pool, "web.example.com", alice)
		hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		resp, err := hc.Get("https://web.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("nginx: %s %s", resp.Status, b)
		}
		return strings.TrimSpace(string(b)), local
	}
	serial := strings.ToUpper(alice.cert.SerialNumber.Text(16))
	if len(serial)%2 == 1 {
		serial = "0" + serial // nginx prints whole bytes
	}

	gw4 := g.PassthroughAddr("v4").(*net.TCPAddr)
	body, local := get(gw4.String(), "127.0.0.2")
	want := fmt.Sprintf("addr=127.0.0.2 port=%d server=127.0.0.1:%d serial=%s remote=127.0.0.2 peer=127.0.0.1", local.Port, gw4.Port, serial)
	if body != want {
		t.Errorf("nginx saw\n %s\nwant\n %s", body, want)
	}
	if v6 {
		gw6 := g.PassthroughAddr("v6").(*net.TCPAddr)
		body, local := get(gw6.String(), "::1")
		want := fmt.Sprintf("addr=::1 port=%d server=::1:%d serial=%s remote=::1 peer=127.0.0.1", local.Port, gw6.Port, serial)
		if body != want {
			t.Errorf("IPv6: nginx saw\n %s\nwant\n %s", body, want)
		}
	}
	logs.waitFor(t, "passthrough connection closed", "server_name=web.example.com")
}
