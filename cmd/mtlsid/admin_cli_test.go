package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/internal/pgtest"
)

// TestAdminCLI drives the administration commands end to end against a
// real `serve`: an organization, a service, a domain's instructions, a
// role granted, a development API certificate made from a local key, an
// inquiry with it, the service's own server certificate, tokens, and the
// API certificate revoked.
func TestAdminCLI(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var extra []string
			if backend == "postgres" {
				extra = []string{"--database", pgtest.URL(t)}
			}
			data := t.TempDir()
			s := startServe(t, data, extra...)
			home, out := t.TempDir(), t.TempDir()
			me := []string{"--server", s.url, "--dir", home, "--name", "boss"}
			enrolled := cli(t, false, append([]string{"enroll", s.token, "--ca", filepath.Join(data, "ca", "root.crt")}, me...)...)
			serial := regexp.MustCompile(`serial (\d+)`).FindStringSubmatch(enrolled)[1]

			// Flags may follow the positional arguments.
			if o := cli(t, false, append([]string{"org", "create", "acme", "--display", "Acme Inc", "--email", "ops@acme.example"}, me...)...); !strings.Contains(o, "created organization acme") {
				t.Errorf("org create: %s", o)
			}
			if o := cli(t, false, append([]string{"org", "list"}, me...)...); !strings.Contains(o, "acme") || !strings.Contains(o, "org. administrator") {
				t.Errorf("org list: %s", o)
			}
			if o := cli(t, false, append([]string{"service", "create", "web", "--org", "acme"}, me...)...); !strings.Contains(o, "created service web.acme") || !strings.Contains(o, "web.acme.mtls.local") {
				t.Errorf("service create: %s", o)
			}

			o := cli(t, false, append([]string{"domain", "add", "shop.example.com", "--service", "web", "--org", "acme"}, me...)...)
			m := regexp.MustCompile(`_mtlsid-challenge\.shop\.example\.com\.\s+300\s+IN\s+TXT\s+"([a-z0-9]+)"`).FindStringSubmatch(o)
			if m == nil {
				t.Fatalf("domain add does not print the TXT record:\n%s", o)
			}
			if !strings.Contains(o, "http://shop.example.com/.well-known/mtlsid-challenge/"+m[1]) || !strings.Contains(o, "mtlsid domain verify shop.example.com") {
				t.Errorf("domain add does not print the HTTP file and the next step:\n%s", o)
			}

			cli(t, false, append([]string{"role", "define", "editor", "--service", "web.acme"}, me...)...)
			if o := cli(t, false, append([]string{"role", "grant", serial, "editor", "--service", "web", "--org", "acme"}, me...)...); !strings.Contains(o, "granted") {
				t.Errorf("role grant: %s", o)
			}

			o = cli(t, false, append([]string{"apicert", "issue", "--org", "acme", "--service", "web", "--dev", "--agent-name", "api", "--out", out}, me...)...)
			apiSerial := regexp.MustCompile(`serial (\d+)`).FindStringSubmatch(o)[1]
			if !strings.Contains(o, "development API certificate") {
				t.Errorf("apicert issue --dev: %s", o)
			}
			for _, ext := range []string{".key", ".cer", ".chain.pem"} {
				fi, err := os.Stat(filepath.Join(out, "api"+ext))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("api%s mode %v, want 0600", ext, fi.Mode().Perm())
				}
			}
			if _, err := os.Stat(filepath.Join(out, "api.p12")); err == nil {
				t.Error("apicert issue without --p12 wrote a PKCS#12")
			}
			if o := cli(t, false, append([]string{"apicert", "list", "--service", "web.acme"}, me...)...); !strings.Contains(o, apiSerial) {
				t.Errorf("apicert list lacks %s:\n%s", apiSerial, o)
			}

			// With --p12 the server makes the key: PKCS#12 and password too.
			cli(t, false, append([]string{"apicert", "issue", "--service", "web.acme", "--p12", "--agent-name", "prod", "--out", out}, me...)...)
			for _, ext := range []string{".key", ".cer", ".chain.pem", ".p12", ".password"} {
				if fi, err := os.Stat(filepath.Join(out, "prod"+ext)); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("prod%s: %v %v", ext, fi, err)
				}
			}
			for _, c := range []struct{ args, want []string }{
				{[]string{"service", "list", "--org", "acme"}, []string{"web.acme"}},
				{[]string{"domain", "list", "--service", "web.acme"}, []string{"shop.example.com", "pending", "web.acme.mtls.local"}},
				{[]string{"role", "list", "--service", "web", "--org", "acme"}, []string{"editor"}},
			} {
				o := cli(t, false, append(c.args, me...)...)
				for _, w := range c.want {
					if !strings.Contains(o, w) {
						t.Errorf("mtlsid %s lacks %q:\n%s", strings.Join(c.args, " "), w, o)
					}
				}
			}

			// The API certificate asks about the person: known, but never
			// shared with the service, so PB 0003, and still exit 0.
			api := []string{"--server", s.url, "--dir", out, "--name", "api"}
			if obj, body := inquiry(t, cli(t, false, append([]string{"inquire", serial}, api...)...)); !strings.HasPrefix(body.Outcome, "PB 0003") {
				t.Errorf("inquire: %s %+v", obj, body)
			}

			o = cli(t, false, append([]string{"issue-service-identity"}, api...)...)
			if !strings.HasPrefix(o, "renewed") {
				t.Errorf("issue-service-identity: %s", o)
			}
			for _, ext := range []string{".key", ".cer", ".chain.pem", ".p12", ".password"} {
				fi, err := os.Stat(filepath.Join(out, "service-id", "web.acme.mtls.local"+ext))
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("service-id%s mode %v, want 0600", ext, fi.Mode().Perm())
				}
			}
			if o := cli(t, false, append([]string{"update-service"}, api...)...); !strings.HasPrefix(o, "not due") {
				t.Errorf("update-service right after issue: %s", o)
			}

			var roles struct {
				ServiceRoles []struct {
					Service string   `json:"service"`
					Roles   []string `json:"roles"`
				} `json:"service-roles"`
			}
			if err := json.Unmarshal([]byte(cli(t, false, append([]string{"list-service-roles"}, me...)...)), &roles); err != nil {
				t.Fatal(err)
			}
			if len(roles.ServiceRoles) != 1 || roles.ServiceRoles[0].Service != "web.acme" || len(roles.ServiceRoles[0].Roles) != 1 || roles.ServiceRoles[0].Roles[0] != "editor" {
				t.Errorf("list-service-roles: %+v", roles)
			}

			// Tokens through the server: another device of mine, and an
			// agent of the service.
			if tok := strings.TrimSpace(cli(t, false, append([]string{"token", "create", "-q"}, me...)...)); !strings.HasPrefix(tok, "mtid_") {
				t.Errorf("token create --server: %q", tok)
			}
			if o := cli(t, false, append([]string{"assist", "web.acme"}, me...)...); !strings.HasPrefix(o, "mtid_") || !strings.Contains(o, "web.acme") {
				t.Errorf("assist: %s", o)
			}

			if o := cli(t, false, append([]string{"apicert", "revoke", apiSerial}, me...)...); !strings.Contains(o, "revoked "+apiSerial) {
				t.Errorf("apicert revoke: %s", o)
			}
			// A revoked API certificate is an ER outcome, still exit 0.
			if _, body := inquiry(t, cli(t, false, append([]string{"inquire", serial}, api...)...)); !strings.HasPrefix(body.Outcome, "ER 1103") {
				t.Errorf("inquire with a revoked API certificate: %+v", body)
			}
		})
	}
}

// inquiry decodes inquire's output: one wrapped object.
func inquiry(t *testing.T, out string) (string, struct{ Outcome string }) {
	t.Helper()
	var env map[string]struct {
		Outcome string `json:"outcome"`
	}
	if err := json.Unmarshal([]byte(out), &env); err != nil || len(env) != 1 {
		t.Fatalf("inquire printed %q (%v)", out, err)
	}
	for k, v := range env {
		return k, struct{ Outcome string }{v.Outcome}
	}
	return "", struct{ Outcome string }{}
}

// TestAdminCLIUsage checks the exit statuses of mistakes: 2 for a wrong
// command line, 1 when the server cannot be reached.
func TestAdminCLIUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"org"},
		{"org", "frobnicate"},
		{"org", "create"},
		{"org", "add-member", "acme", "123", "--dir", dir},
		{"service", "create", "web", "--dir", dir},
		{"domain", "add", "example.com", "--dir", dir},
		{"apicert", "issue", "--service", "web.acme", "--dir", dir},
		{"role", "grant", "123", "--service", "web.acme"},
		{"token", "create", "--server", "https://127.0.0.1:1", "--purpose", "agent", "--dir", dir},
		{"inquire"},
		{"assist"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("mtlsid %s: exit %d (%v), want 2", strings.Join(args, " "), code, err)
		}
	}

	// No server listening: a transport error, exit 1, for inquire too.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + ln.Addr().String()
	ln.Close()
	writeTestIdentity(t, dir, "api")
	for _, args := range [][]string{
		{"inquire", "123", "--server", url, "--dir", dir, "--name", "api"},
		{"org", "list", "--server", url, "--dir", dir, "--name", "api"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 1 {
			t.Errorf("mtlsid %s: exit %d (%v), want 1", strings.Join(args, " "), code, err)
		}
	}
}

// writeTestIdentity writes a self-signed identity under dir, enough to
// reach the point of dialling.
func writeTestIdentity(t *testing.T, dir, name string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFiles(filepath.Join(dir, name), []file{{".key", keyPEM}, {".cer", certPEM}}); err != nil {
		t.Fatal(err)
	}
}
