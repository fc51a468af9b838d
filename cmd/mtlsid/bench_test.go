package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchCounts reads the request and error counts of a loadgen report.
var benchCountsRE = regexp.MustCompile(`requests (\d+) in \S+: \d+/s, errors (\d+)`)

func benchCounts(t *testing.T, out string) (requests, errors int) {
	t.Helper()
	m := benchCountsRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counts in the report:\n%s", out)
	}
	requests, _ = strconv.Atoi(m[1])
	errors, _ = strconv.Atoi(m[2])
	return requests, errors
}

// outcomeCount reads how many answers had label in a loadgen report.
func outcomeCount(out, label string) int {
	m := regexp.MustCompile(`(?m)^\s+(\d+)  ` + regexp.QuoteMeta(label) + `$`).FindStringSubmatch(out)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func TestBenchEnroll(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	out := cli(t, false, "bench", "enroll", "--data", data, "--server", s.url, "--requests", "12", "--workers", "3")
	if req, errs := benchCounts(t, out); req != 12 || errs != 0 {
		t.Fatalf("%d requests, %d errors, want 12 and 0:\n%s", req, errs, out)
	}
	if n := outcomeCount(out, "issued"); n != 12 {
		t.Errorf("%d issued, want 12:\n%s", n, out)
	}
	if !strings.Contains(out, "latency p50") {
		t.Errorf("no latency percentiles:\n%s", out)
	}

	// Server-made keys take the PKCS#12 path.
	out = cli(t, false, "bench", "enroll", "--data", data, "--server", s.url, "--requests", "2", "--workers", "2", "--server-keys")
	if req, errs := benchCounts(t, out); req != 2 || errs != 0 || outcomeCount(out, "issued") != 2 {
		t.Fatalf("server keys:\n%s", out)
	}

	// Spent or made-up tokens are errors, counted and shown, not a crash.
	tokens := filepath.Join(t.TempDir(), "tokens.txt")
	if err := os.WriteFile(tokens, []byte("mtid_notatoken1\nmtid_notatoken2\n\nmtid_notatoken3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = cli(t, false, "bench", "enroll", "--data", data, "--server", s.url, "--tokens", tokens, "--requests", "10", "--workers", "2")
	if req, errs := benchCounts(t, out); req != 3 || errs != 3 {
		t.Fatalf("bad tokens: %d requests, %d errors, want 3 and 3:\n%s", req, errs, out)
	}
	if !strings.Contains(out, "first error:") {
		t.Errorf("the first error is not shown:\n%s", out)
	}
}

// tlsFiles writes a self-signed certificate and key for name and returns
// their paths.
func tlsFiles(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestBenchHTTP(t *testing.T) {
	dir := t.TempDir()
	clientCert, clientKey, _ := tlsFiles(t, dir, "client", x509.ExtKeyUsageClientAuth)
	// A real TLS server on loopback that requires a client certificate
	// and fails one path.
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("hello " + r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	ts.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	ts.StartTLS()
	t.Cleanup(ts.Close)
	caFile := filepath.Join(dir, "server.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"bench", "http", "--ca", caFile, "--cert", clientCert, "--key", clientKey, "--workers", "3"}

	for _, mode := range [][]string{nil, {"--client", "transport"}, {"--new-conn"}} {
		out := cli(t, false, append(append(base, mode...), "--url", ts.URL+"/", "--requests", "30")...)
		if req, errs := benchCounts(t, out); req != 30 || errs != 0 || outcomeCount(out, "HTTP 200 OK") != 30 {
			t.Fatalf("%v: want 30 answers of 200:\n%s", mode, out)
		}
	}

	// 5xx answers are errors.
	for _, client := range []string{"lean", "transport"} {
		out := cli(t, false, append(base, "--url", ts.URL+"/broken", "--requests", "5", "--client", client)...)
		if req, errs := benchCounts(t, out); req != 5 || errs != 5 || !strings.Contains(out, "503") {
			t.Fatalf("5xx, %s client: want 5 errors naming 503:\n%s", client, out)
		}
	}
	cli(t, true, append(base, "--url", ts.URL+"/", "--client", "fast")...)

	// Without the client certificate the handshake fails: counted errors.
	out := cli(t, false, "bench", "http", "--ca", caFile, "--url", ts.URL+"/", "--requests", "4", "--workers", "2")
	if req, errs := benchCounts(t, out); req != 4 || errs != 4 || !strings.Contains(out, "first error:") {
		t.Fatalf("no client certificate: want 4 errors:\n%s", out)
	}

	// --connect keeps the URL's name (for SNI, Host and verification) and
	// dials the loopback address: the name need not resolve.
	addr := strings.TrimPrefix(ts.URL, "https://")
	out = cli(t, false, append(base, "--url", "https://example.com/", "--connect", addr, "--requests", "3")...)
	if req, errs := benchCounts(t, out); req != 3 || errs != 0 {
		t.Fatalf("--connect: want 3 answers:\n%s", out)
	}
}

func TestBenchRefusesRemoteTargets(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "http", "--url", "https://example.com/"},
		{"bench", "http", "--url", "https://127.0.0.1/", "--connect", "192.0.2.1:443"},
		{"bench", "enroll", "--server", "https://192.0.2.1:8443", "--ca", "/nonexistent"},
		{"bench", "http", "--url", "ftp://127.0.0.1/"},
		{"bench", "http", "--url", "https://127.0.0.1/", "--requests", "-1"},
		{"bench", "enroll", "--requests", "0"},
		{"bench", "frobnicate"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, &out, &errOut)
		if code := exitCode(err, &errOut); code != 2 {
			t.Errorf("%v: exit %d (%v), want 2 (usage)", args, code, err)
		}
		if strings.Contains(strings.Join(args, " "), "192.0.2.1") || strings.Contains(strings.Join(args, " "), "example.com/") {
			if err == nil || !strings.Contains(err.Error(), "--allow-remote") {
				t.Errorf("%v: %v, want a message naming --allow-remote", args, err)
			}
		}
	}
}

func TestBenchInquiry(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	out := filepath.Join(t.TempDir(), "out")
	cli(t, false, "bench", "seed", "--data", data, "--identities", "20", "--out", out)
	common := []string{"bench", "inquiry", "--server", s.url, "--ca", filepath.Join(data, "ca", "root.crt"),
		"--cert", filepath.Join(out, "api.cer"), "--key", filepath.Join(out, "api.key"),
		"--serials", filepath.Join(out, "serials.txt"), "--requests", "200", "--workers", "4", "--warmup", "0s"}
	for _, client := range []string{"lean", "sdk"} {
		t.Run(client, func(t *testing.T) {
			report := cli(t, false, append(common, "--client", client)...)
			if req, errs := benchCounts(t, report); req != 200 || errs != 0 {
				t.Fatalf("%d requests, %d errors, want 200 and 0:\n%s", req, errs, report)
			}
			// The seeded people have all shared their identity with the
			// service: every answer is a profile.
			if n := outcomeCount(report, "OK 0001 Subject anonymous certificate valid"); n != 200 {
				t.Errorf("%d profiles, want 200:\n%s", n, report)
			}
		})
	}

	// Serials the authority never issued are answered, and counted, as such.
	bogus := filepath.Join(t.TempDir(), "bogus.txt")
	if err := os.WriteFile(bogus, []byte("12345\n0x99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	report := cli(t, false, append(common, "--serials", bogus, "--requests", "10")...)
	if req, errs := benchCounts(t, report); req != 10 || errs != 0 || strings.Contains(report, "OK 0001") {
		t.Fatalf("unknown serials:\n%s", report)
	}
	cli(t, true, append(common, "--client", "fast")...)
}
