package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// mailpitVersion is the real SMTP server the tests deliver to
// (github.com/axllent/mailpit), built once with `go install` into the
// user cache directory and reused by later runs.
const mailpitVersion = "v1.33.1"

var (
	mailpitOnce sync.Once
	mailpitPath string
	mailpitErr  error
)

// mailpitBinary returns the path of the mailpit binary, building it the
// first time (about a minute on 2 cores). MTLSID_MAILPIT names a binary
// to use instead. Without one, and unable to build it, the test is
// skipped, or failed under CI.
func mailpitBinary(t *testing.T) string {
	t.Helper()
	mailpitOnce.Do(func() {
		if p := os.Getenv("MTLSID_MAILPIT"); p != "" {
			mailpitPath = p
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			mailpitErr = err
			return
		}
		dir := filepath.Join(cache, "mtlsid-test", "mailpit-"+mailpitVersion)
		mailpitPath = filepath.Join(dir, "mailpit")
		if _, err := os.Stat(mailpitPath); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/axllent/mailpit@"+mailpitVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
		if out, err := cmd.CombinedOutput(); err != nil {
			mailpitErr = fmt.Errorf("go install mailpit: %v\n%s", err, out)
		}
	})
	if mailpitErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mailpit: %v", mailpitErr)
		}
		t.Skipf("mailpit unavailable: %v", mailpitErr)
	}
	return mailpitPath
}

// mailpit is a running mailpit on loopback ports.
type mailpit struct {
	smtpAddr string
	api      string
	// certPool trusts its STARTTLS certificate, if it has one.
	certPool *x509.CertPool
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startMailpit runs mailpit with SMTP on smtpAddr ("" picks a port) until
// the test ends. With starttls it requires STARTTLS and accepts any PLAIN
// credentials.
func startMailpit(t *testing.T, smtpAddr string, starttls bool) *mailpit {
	t.Helper()
	if starttls {
		return startMailpitArgs(t, smtpAddr, true, "--smtp-require-starttls")
	}
	return startMailpitArgs(t, smtpAddr, false)
}

func startMailpitArgs(t *testing.T, smtpAddr string, withTLS bool, extra ...string) *mailpit {
	t.Helper()
	bin := mailpitBinary(t)
	if smtpAddr == "" {
		smtpAddr = freeAddr(t)
	}
	m := &mailpit{smtpAddr: smtpAddr}
	httpAddr := freeAddr(t)
	m.api = "http://" + httpAddr
	dir := t.TempDir()
	args := []string{"--smtp", smtpAddr, "--listen", httpAddr, "--database", filepath.Join(dir, "mailpit.db"),
		"--smtp-auth-accept-any", "--smtp-disable-rdns", "--disable-version-check", "--quiet"}
	if withTLS {
		certFile, keyFile, pool := selfSigned(t, dir)
		m.certPool = pool
		args = append(args, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile)
	} else {
		args = append(args, "--smtp-auth-allow-insecure")
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(m.api + "/api/v1/info")
		if err == nil {
			resp.Body.Close()
			if c, err := net.Dial("tcp", smtpAddr); err == nil {
				c.Close()
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailpit did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startMailpitTLS runs mailpit with TLS from the first byte on SMTP.
func startMailpitTLS(t *testing.T) *mailpit {
	t.Helper()
	return startMailpitArgs(t, "", true, "--smtp-require-tls")
}

// tlsConfig trusts the server's certificate.
func (m *mailpit) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: m.certPool, ServerName: "127.0.0.1"}
}

// message is a delivered message as the API shows it.
type message struct {
	ID      string
	Subject string
	To      []struct{ Address string }
	Text    string
}

// messages returns every delivered message, oldest first, with its text.
func (m *mailpit) messages(t *testing.T) []message {
	t.Helper()
	var list struct{ Messages []message }
	m.get(t, "/api/v1/messages?limit=1000", &list)
	out := make([]message, len(list.Messages))
	for i, msg := range list.Messages {
		full := message{}
		m.get(t, "/api/v1/message/"+msg.ID, &full)
		out[len(out)-1-i] = full // the API lists newest first
	}
	return out
}

func (m *mailpit) get(t *testing.T, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.api+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mailpit API %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("mailpit API %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("mailpit API %s: %v", path, err)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailpit test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// count returns how many messages were delivered to each address.
func (m *mailpit) count(t *testing.T) map[string]int {
	t.Helper()
	var list struct{ Messages []message }
	m.get(t, "/api/v1/messages?limit=5000", &list)
	out := map[string]int{}
	for _, msg := range list.Messages {
		for _, to := range msg.To {
			out[to.Address]++
		}
	}
	return out
}
