package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/internal/pgtest"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
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

// waitFor polls buf until re matches, and returns the submatches.
func waitFor(t *testing.T, buf *syncBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q in output:\n%s", re, buf.String())
	return nil
}

// served is a `mtlsid serve` running in-process on loopback.
type served struct {
	data, url, revURL, token string
	out                      *syncBuffer
	stop                     func()
}

func startServe(t *testing.T, data string, extra ...string) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	args := append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--revocation-listen", "127.0.0.1:0",
		"--hostname", "127.0.0.1", "--hostname", "localhost"}, extra...)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, out, errOut) }()
	s := &served{data: data, out: out}
	var once sync.Once
	s.stop = func() { once.Do(func() { stopServe(t, cancel, done, errOut) }) }
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s\n%s", err, out.String(), errOut.String())
		default:
		}
		if strings.Contains(out.String(), "revocation (CRL, OCSP)") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(s.stop)
	s.url = waitFor(t, out, regexp.MustCompile(`listening on (https://\S+)`))[1]
	s.revURL = waitFor(t, out, regexp.MustCompile(`over HTTP on (http://\S+)`))[1]
	if m := regexp.MustCompile(`(mtid_[A-Za-z0-9_-]+)`).FindStringSubmatch(out.String()); m != nil {
		s.token = m[1]
	}
	return s
}

// cli runs one client command and returns its output; it fails the test
// on error unless wantErr.
func cli(t *testing.T, wantErr bool, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	if (err != nil) != wantErr {
		t.Fatalf("mtlsid %s: err = %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	if err != nil {
		return err.Error()
	}
	return out.String()
}

func openssl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestServeEnrollRenewRevokeOpenSSL(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var extra []string
			if backend == "postgres" {
				extra = []string{"--database", pgtest.URL(t)}
			}
			data := t.TempDir()
			s := startServe(t, data, extra...)
			if s.token == "" {
				t.Fatalf("first start printed no bootstrap token:\n%s", s.out.String())
			}
			home := t.TempDir()
			root := filepath.Join(data, "ca", "root.crt")
			common := []string{"--server", s.url, "--dir", home, "--name", "laptop"}

			out := cli(t, false, append([]string{"enroll", s.token, "--ca", root}, common...)...)
			serial1 := regexp.MustCompile(`serial (\d+)`).FindStringSubmatch(out)[1]
			for _, ext := range []string{".key", ".cer", ".chain.pem", ".p12", ".password"} {
				fi, err := os.Stat(filepath.Join(home, "laptop"+ext))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s mode %v, want 0600", ext, fi.Mode().Perm())
				}
			}
			pass, _ := os.ReadFile(filepath.Join(home, "laptop.password"))
			openssl(t, "pkcs12", "-in", filepath.Join(home, "laptop.p12"), "-passin", "pass:"+strings.TrimSpace(string(pass)), "-nokeys", "-out", filepath.Join(home, "p12.pem"))

			// Reusing the token fails with a clear message and a non-zero exit.
			msg := cli(t, true, append([]string{"enroll", s.token, "--ca", root}, "--server", s.url, "--dir", home, "--name", "other")...)
			if !strings.Contains(msg, "already used") {
				t.Errorf("reused token: %q", msg)
			}

			if out := cli(t, false, append([]string{"list-devices"}, common...)...); !strings.Contains(out, serial1) {
				t.Errorf("list-devices lacks %s:\n%s", serial1, out)
			}
			if out := cli(t, false, append([]string{"update"}, common...)...); !strings.Contains(out, "not due") {
				t.Errorf("update of a new certificate: %s", out)
			}
			oldCert := filepath.Join(home, "old.cer")
			b, _ := os.ReadFile(filepath.Join(home, "laptop.cer"))
			os.WriteFile(oldCert, b, 0o600)
			out = cli(t, false, append([]string{"renew"}, common...)...)
			serial2 := regexp.MustCompile(`serial (\d+)`).FindStringSubmatch(out)[1]
			if serial2 == serial1 {
				t.Fatal("renew kept the serial")
			}

			issuer := filepath.Join(data, "ca", "issuer.crt")
			ocspURL := s.revURL + "/ca/ocsp"
			ocspOf := func(cert string) string {
				return openssl(t, "ocsp", "-issuer", issuer, "-cert", cert, "-CAfile", root, "-url", ocspURL)
			}
			if out := ocspOf(oldCert); !strings.Contains(out, ": good") || !strings.Contains(out, "Response verify OK") {
				t.Fatalf("openssl ocsp before revocation:\n%s", out)
			}
			cli(t, false, append([]string{"revoke", serial1}, common...)...)
			if out := ocspOf(oldCert); !strings.Contains(out, ": revoked") {
				t.Fatalf("openssl ocsp after revocation:\n%s", out)
			}
			if out := ocspOf(filepath.Join(home, "laptop.cer")); !strings.Contains(out, ": good") {
				t.Fatalf("openssl ocsp of the renewed certificate:\n%s", out)
			}
			crl := filepath.Join(home, "crl.der")
			cli(t, false, "get-trust-chain", "--server", s.url, "--ca", root, "-o", filepath.Join(home, "chain.pem"))
			fetch(t, s.revURL+"/ca/crl", crl)
			text := openssl(t, "crl", "-inform", "DER", "-in", crl, "-noout", "-text")
			hexSerial := strings.ToUpper(bigHex(serial1))
			if !strings.Contains(strings.ToUpper(strings.ReplaceAll(text, ":", "")), hexSerial) {
				t.Errorf("CRL does not list %s (%s):\n%s", serial1, hexSerial, text)
			}
			s.stop()
			if out := cli(t, false, "audit", "verify", "--data", data, "--database", dbFlag(extra)); !strings.Contains(out, "intact") {
				t.Errorf("audit verify: %s", out)
			}
		})
	}
}

func dbFlag(extra []string) string {
	if len(extra) == 2 {
		return extra[1]
	}
	return ""
}

func stopServe(t *testing.T, cancel func(), done chan error, errOut *syncBuffer) {
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v\n%s", err, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Errorf("serve did not stop")
	}
}
