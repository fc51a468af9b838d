package sdk_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// TestMiddlewareBehindRealNginx puts a real nginx in front of a service
// using the middleware: nginx ends TLS, verifies the client certificate
// against the mtlsid CA, and forwards it as $ssl_client_escaped_cert in
// X-Ssl-Client-Cert. The middleware, trusting only nginx's address, reads
// that header as nginx writes it and identifies the person; a header the
// client sent itself is replaced by nginx's.
func TestMiddlewareBehindRealNginx(t *testing.T) {
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
	e := newEnv(t, sqliteStore(t))
	alice := e.enroll("alice")
	s0 := e.newService(t)
	if resp, _ := e.signIn(t, s0, s0.browser(alice), alice, "/hello"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	s := e.newService(t, sdk.WithTrustedProxies("127.0.0.1/32"))
	dir := t.TempDir()

	// nginx's own server certificate, from a throwaway CA of the test.
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test nginx CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvDER, _ := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, caCert, srvKey.Public(), caKey)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(srvKey)
	write := func(name string, blocks ...*pem.Block) string {
		var b []byte
		for _, bl := range blocks {
			b = append(b, pem.EncodeToMemory(bl)...)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvCert := write("srv.pem", &pem.Block{Type: "CERTIFICATE", Bytes: srvDER})
	srvKeyFile := write("srv.key", &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	// The mtlsid root and issuing CA, for ssl_client_certificate.
	clientCAs := filepath.Join(dir, "mtlsid-chain.pem")
	if err := os.WriteFile(clientCAs, e.auth.CA().ChainPEM(), 0o600); err != nil {
		t.Fatal(err)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	upstream := s.ts.Listener.Addr().String()
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_client_certificate %[5]s;
    ssl_verify_client optional;
    ssl_verify_depth 2;
    location / {
      proxy_set_header X-Ssl-Client-Cert $ssl_client_escaped_cert;
      proxy_set_header Host shop.acme.mtls.test;
      proxy_pass https://%[6]s;
      proxy_ssl_server_name on;
      proxy_ssl_name shop.acme.mtls.test;
    }
  }
}
`, dir, port, srvCert, srvKeyFile, clientCAs, upstream)
	confFile := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confFile, []byte(conf), 0o600)
	cmd := exec.Command(nginx, "-p", dir, "-c", confFile, "-e", filepath.Join(dir, "error.log"))
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", confFile, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
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
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not start: %s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}

	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	browser := func(person *device) *http.Client {
		conf := &tls.Config{RootCAs: pool, ServerName: "localhost"}
		if person != nil {
			conf.Certificates = []tls.Certificate{person.tls}
		}
		tr := &http.Transport{TLSClientConfig: conf}
		return &http.Client{Timeout: 20 * time.Second, Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	base := fmt.Sprintf("https://localhost:%d", port)
	resp, body := get(t, browser(alice), base+"/hello", http.Header{"X-Ssl-Client-Cert": {"spoofed"}})
	got := decodeSeen(t, body)
	if resp.StatusCode != 200 || got.Serial != alice.serial || got.Header != "X-Ssl-Client-Cert" {
		t.Fatalf("through nginx: %s %+v\n%s", resp.Status, got, body)
	}
	// Without a certificate nginx forwards an empty header: anonymous.
	resp, body = get(t, browser(nil), base+"/public", http.Header{"X-Ssl-Client-Cert": {"spoofed"}})
	if got := decodeSeen(t, body); resp.StatusCode != 200 || got.Identified || strings.Contains(body, "spoofed") {
		t.Errorf("anonymous through nginx: %s %+v", resp.Status, got)
	}
}
