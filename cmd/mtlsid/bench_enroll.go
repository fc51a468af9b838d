package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/internal/loadgen"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// maxEnrollRequests bounds one enrollment run: every request spends a
// one-time token and leaves a certificate in the store.
const maxEnrollRequests = 100_000

// benchEnroll enrolls devices through the self-authority API (POST
// /api/v1, operation enroll) and reports rate and latency. Each request
// spends one enrollment token: they come from --tokens, or are minted
// before the run (not timed) in the data directory or database the server
// uses. It sends only to loopback unless told.
func benchEnroll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var d dataFlags
	fs := newFlags("bench enroll", stderr)
	d.register(fs)
	server := fs.String("server", "https://localhost:8443", "authority URL")
	caFile := fs.String("ca", "", "CA to trust (default DATA/ca/root.crt)")
	tokensFile := fs.String("tokens", "", "enrollment tokens, one a line (default: mint --requests tokens in --data/--database before the run)")
	requests := fs.Int("requests", 1000, fmt.Sprintf("enrollments to make (1..%d); also the number of tokens minted", maxEnrollRequests))
	rate := fs.Float64("rate", 0, "requests per second (0: as fast as possible)")
	duration := fs.Duration("duration", time.Minute, "stop after this long even if requests remain (at most 10m)")
	workers := fs.Int("workers", 16, "concurrent requests (and keep-alive connections)")
	serverKeys := fs.Bool("server-keys", false, "send no CSR: the server makes each key and returns a PKCS#12 (slower)")
	remote := fs.Bool("allow-remote", false, "allow a server that is not on loopback")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *requests < 1 || *requests > maxEnrollRequests {
		return &usageError{fmt.Sprintf("--requests must be 1 to %d", maxEnrollRequests)}
	}
	if *duration <= 0 || *duration > 10*time.Minute || *workers < 1 || *workers > 4096 {
		return &usageError{"--duration must be in (0, 10m] and --workers in 1..4096"}
	}
	u, err := url.Parse(*server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return &usageError{"--server must be an https:// URL"}
	}
	if !*remote && !isLoopback(u.Hostname()) {
		return &usageError{"--server is not on loopback; pass --allow-remote to load another machine"}
	}
	if *caFile == "" {
		*caFile = d.caDir() + "/root.crt"
	}
	pool := x509.NewCertPool()
	b, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(pemOrDER(b)) {
		return fmt.Errorf("no certificate in %s", *caFile)
	}

	var tokens []string
	if *tokensFile != "" {
		if tokens, err = readTokens(*tokensFile); err != nil {
			return err
		}
		if len(tokens) < *requests {
			fmt.Fprintf(stderr, "%s holds %d tokens: making %d enrollments\n", *tokensFile, len(tokens), len(tokens))
			*requests = len(tokens)
		}
	} else if tokens, err = mintTokens(ctx, &d, *requests, stderr); err != nil {
		return err
	}

	// One key serves every request: the load is the server's, not this
	// tool's key generation.
	var csr string
	if !*serverKeys {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "bench"}}, key)
		if err != nil {
			return err
		}
		csr = base64.StdEncoding.EncodeToString(der)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        *workers,
		MaxIdleConnsPerHost: *workers,
		MaxConnsPerHost:     *workers,
	}
	defer tr.CloseIdleConnections()
	client := &sdk.SelfClient{URL: *server, HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	res, err := loadgen.Run(ctx, loadgen.Config{Workers: *workers, Rate: *rate, Duration: *duration, Requests: *requests},
		func(ctx context.Context, i int) (string, error) {
			r, err := client.Enroll(ctx, wire.Args{Authorization: tokens[i], AgentName: fmt.Sprintf("bench-%d", i), CSR: csr})
			if err != nil {
				return "", err
			}
			return r.Outcome, nil
		})
	if err != nil {
		return err
	}
	keys := "client keys (CSR)"
	if *serverKeys {
		keys = "server-made keys (PKCS#12)"
	}
	fmt.Fprintf(stdout, "enroll against %s, %d workers, rate %s, %s\n", *server, *workers, rateName(*rate), keys)
	res.Report(stdout)
	return nil
}

// mintTokens makes n device tokens in the data directory or database,
// for benchEnroll's run.
func mintTokens(ctx context.Context, d *dataFlags, n int, stderr io.Writer) ([]string, error) {
	auth, closeAll, err := openLocalAuthority(ctx, d, stderr)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	start := time.Now()
	out := make([]string, n)
	for i := range out {
		if out[i], _, err = auth.CreateToken(ctx, authority.TokenRequest{Label: "bench enroll", CreatedBy: "bench", Lifetime: time.Hour}); err != nil {
			return nil, fmt.Errorf("minting tokens: %w", err)
		}
	}
	fmt.Fprintf(stderr, "minted %d tokens in %s (not timed)\n", n, time.Since(start).Round(time.Millisecond))
	return out, nil
}

func readTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(b)) {
		if s := strings.TrimSpace(line); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no tokens", path)
	}
	return out, nil
}
