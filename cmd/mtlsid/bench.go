package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/internal/atomicfile"
	"github.com/mtlsid/mtlsid/internal/loadgen"
	"github.com/mtlsid/mtlsid/sdk"
)

// runBench handles `mtlsid bench seed`, `inquiry`, `enroll` and `http`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "seed":
			return benchSeed(ctx, args[1:], stdout, stderr)
		case "inquiry":
			return benchInquiry(ctx, args[1:], stdout, stderr)
		case "enroll":
			return benchEnroll(ctx, args[1:], stdout, stderr)
		case "http":
			return benchHTTP(ctx, args[1:], stdout, stderr)
		}
	}
	return &usageError{"usage: mtlsid bench seed|inquiry|enroll|http [flags]"}
}

// benchSeed fills a data directory with identities for load tests: an
// organization "bench" with service "api.bench" and its API certificate,
// and N people with one device each. The first 1,000 have shared their
// identity with the service and hold its role "member".
func benchSeed(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var d dataFlags
	fs := newFlags("bench seed", stderr)
	d.register(fs)
	n := fs.Int("identities", 100000, "how many people to create")
	out := fs.String("out", "bench-out", "directory for the API certificate and the serial list")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *n < 1 || *n > 10_000_000 {
		return &usageError{"--identities must be 1 to 10,000,000"}
	}
	auth, closeAll, err := openLocalAuthority(ctx, &d, stderr)
	if err != nil {
		return err
	}
	defer closeAll()
	store := auth.Store()
	start := time.Now()

	// The administrator and the service go through the authority, as a
	// person would.
	adminKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	adminCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, adminKey)
	tok, _, err := auth.CreateToken(ctx, authority.TokenRequest{Label: "bench admin"})
	if err != nil {
		return err
	}
	admin, err := auth.Enroll(ctx, authority.EnrollRequest{Token: tok, Name: "bench-admin", CSR: adminCSR})
	if err != nil {
		return err
	}
	if _, err := auth.CreateOrg(ctx, &admin.Record, "bench", "Benchmark", ""); err != nil {
		return err
	}
	svc, err := auth.CreateService(ctx, &admin.Record, "bench", "api")
	if err != nil {
		return err
	}
	if err := auth.DefineRole(ctx, &admin.Record, svc.ID, "member"); err != nil {
		return err
	}
	apiKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	apiCSR, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, apiKey)
	api, err := auth.IssueAPICert(ctx, &admin.Record, authority.APICertRequest{ServiceID: svc.ID, Name: "bench", CSR: apiCSR})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		return err
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(apiKey)
	if err := atomicfile.Write(filepath.Join(*out, "api.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(*out, "api.cer"), api.CertificatePEM(), 0o600); err != nil {
		return err
	}

	// The people go straight to the CA and the store in large batches:
	// this is test data, made fast. One key serves them all.
	personKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serials := make([]string, *n)
	c := auth.CA()
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	const batch = 500
	work := make(chan int)
	for range runtime.NumCPU() {
		wg.Go(func() {
			for from := range work {
				to := min(from+batch, *n)
				items := make([]mtlsid.Issuance, 0, to-from)
				now := time.Now().UTC().Truncate(time.Microsecond)
				for i := from; i < to; i++ {
					name := fmt.Sprintf("person-%d", i)
					cert, err := c.Issue(ca.Request{Profile: mtlsid.ProfileDevice, PublicKey: personKey.Public(), CommonName: name, DeviceType: mtlsid.DeviceDesktop})
					if err != nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, err)
						mu.Unlock()
						return
					}
					s := cert.SerialNumber.String()
					serials[i] = s
					id := fmt.Sprintf("p_bench%07d", i)
					items = append(items, mtlsid.Issuance{
						At: now, Identity: &mtlsid.Identity{ID: id, Kind: mtlsid.KindPerson, Name: name, CreatedAt: now},
						Certificate: mtlsid.Certificate{Serial: s, IdentityID: id, Profile: mtlsid.ProfileDevice, Name: name, DeviceType: mtlsid.DeviceDesktop,
							NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), DER: cert.Raw, CreatedAt: now},
						Audit: []mtlsid.AuditEvent{{Time: now, Type: mtlsid.AuditCertIssued, Actor: "bench", Subject: s, Detail: "bench seed"}},
					})
				}
				errs, err := store.Issue(ctx, items)
				mu.Lock()
				firstErr = errors.Join(firstErr, err)
				for _, e := range errs {
					firstErr = errors.Join(firstErr, e)
				}
				mu.Unlock()
			}
		})
	}
	for from := 0; from < *n; from += batch {
		work <- from
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return fmt.Errorf("seed identities: %w", firstErr)
	}
	known := min(*n, 1000)
	for i := range known {
		id := fmt.Sprintf("p_bench%07d", i)
		now := time.Now().UTC().Truncate(time.Microsecond)
		if err := store.RecordConsent(ctx, svc.ID, id, now, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditConsent, Actor: "bench", Subject: svc.ID}); err != nil {
			return err
		}
		if err := auth.GrantRole(ctx, &admin.Record, svc.ID, serials[i], "member"); err != nil {
			return err
		}
	}
	if err := atomicfile.Write(filepath.Join(*out, "serials.txt"), []byte(strings.Join(serials, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	// person-0 (known to the service, with the role) as a client
	// certificate, for loads that present one (the gateway's).
	pkDER, _ := x509.MarshalPKCS8PrivateKey(personKey)
	if err := atomicfile.Write(filepath.Join(*out, "person.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkDER}), 0o600); err != nil {
		return err
	}
	p0, err := store.Certificate(ctx, serials[0])
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(*out, "person.cer"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p0.DER}), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d identities (%d known to service %s) in %s\nAPI certificate: %s/api.{cer,key}; serials: %s/serials.txt; a device of person-0 (role member): %s/person.{cer,key}\n",
		*n, known, svc.ID, time.Since(start).Round(time.Millisecond), *out, *out, *out)
	return nil
}

// benchInquiry sends Identity-Inquiry requests over keep-alive mTLS and
// reports rate and latency. It sends only to loopback unless told.
func benchInquiry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench inquiry", stderr)
	server := fs.String("server", "https://localhost:8443", "authority URL")
	caFile := fs.String("ca", "mtlsid-data/ca/root.crt", "CA to trust")
	certFile := fs.String("cert", "bench-out/api.cer", "API certificate")
	keyFile := fs.String("key", "bench-out/api.key", "its key")
	serialsFile := fs.String("serials", "bench-out/serials.txt", "serials to ask about, one a line")
	rate := fs.Float64("rate", 0, "requests per second (0: as fast as possible)")
	duration := fs.Duration("duration", 10*time.Second, "how long to run (at most 10m)")
	requests := fs.Int("requests", 0, "stop after this many requests (0: no limit)")
	workers := fs.Int("workers", 64, "concurrent requests (and keep-alive connections)")
	warmup := fs.Duration("warmup", 2*time.Second, "uncounted warm-up")
	remote := fs.Bool("allow-remote", false, "allow a server that is not on loopback")
	h2 := fs.Bool("http2", false, "use HTTP/2 (several requests share a connection) instead of HTTP/1.1; implies --client sdk")
	clientKind := fs.String("client", "lean", "lean: prepared requests on pooled connections, answers read in the worker; sdk: the Go SDK over net/http's Transport")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *h2 {
		*clientKind = "sdk"
	}
	if *clientKind != "lean" && *clientKind != "sdk" {
		return &usageError{"--client is lean or sdk"}
	}
	if *duration <= 0 || *duration > 10*time.Minute || *workers < 1 || *workers > 4096 {
		return &usageError{"--duration must be in (0, 10m] and --workers in 1..4096"}
	}
	u, err := url.Parse(*server)
	if err != nil || u.Host == "" {
		return &usageError{"--server must be a URL"}
	}
	if !*remote && !isLoopback(u.Hostname()) {
		return &usageError{"--server is not on loopback; pass --allow-remote to load another machine"}
	}
	pool := x509.NewCertPool()
	b, err := os.ReadFile(*caFile)
	if err != nil {
		return err
	}
	if !pool.AppendCertsFromPEM(pemOrDER(b)) {
		return fmt.Errorf("no certificate in %s", *caFile)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		return err
	}
	serials, err := readLines(*serialsFile)
	if err != nil {
		return err
	}
	tlsConfig := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cfg := loadgen.Config{Workers: *workers, Rate: *rate, Duration: *duration, Requests: *requests, Warmup: *warmup}
	if *clientKind == "lean" {
		res, err := leanInquiries(ctx, u, tlsConfig, cfg, serials)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Identity-Inquiry against %s, %d workers, rate %s, %d serials, lean client\n", *server, *workers, rateName(*rate), len(serials))
		res.Report(stdout)
		return nil
	}
	tr := &http.Transport{
		TLSClientConfig:     tlsConfig,
		MaxIdleConns:        *workers,
		MaxIdleConnsPerHost: *workers,
		MaxConnsPerHost:     *workers,
		ForceAttemptHTTP2:   *h2,
	}
	client := &sdk.IdentityClient{URL: *server, HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
	res, err := loadgen.Run(ctx, cfg,
		func(ctx context.Context, i int) (string, error) {
			r, err := client.Do(ctx, http.MethodGet, wire.ObjIdentityInquiry, wire.IdentityInquiry{SerialNumber: serials[i%len(serials)]})
			if err != nil {
				return "", err
			}
			return r.Outcome(), nil
		})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Identity-Inquiry against %s, %d workers, rate %s, %d serials, SDK client\n", *server, *workers, rateName(*rate), len(serials))
	res.Report(stdout)
	return nil
}

// leanInquiries runs the inquiry load with loadgen's lean HTTP/1.1 client:
// each serial's request is prepared once, and an answer is counted by its
// status and the outcome it carries.
func leanInquiries(ctx context.Context, u *url.URL, tlsConfig *tls.Config, cfg loadgen.Config, serials []string) (*loadgen.Result, error) {
	path := strings.TrimRight(u.Path, "/") + wire.Path
	reqs := make([][]byte, len(serials))
	for i, s := range serials {
		body, err := json.Marshal(map[string]any{wire.ObjIdentityInquiry: wire.IdentityInquiry{SerialNumber: s}})
		if err != nil {
			return nil, err
		}
		reqs[i] = fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, u.Host, len(body), body)
	}
	client := newLeanClient(u, "", tlsConfig, cfg.Workers)
	defer client.Close()
	return loadgen.Run(ctx, cfg, func(ctx context.Context, i int) (string, error) {
		status, body, err := client.Do(ctx, reqs[i%len(reqs)])
		if err != nil {
			return "", err
		}
		outcome, ok := outcomeOf(body)
		if !ok {
			return "", fmt.Errorf("answer %d without an outcome: %.200q", status, body)
		}
		if status != http.StatusOK {
			return fmt.Sprintf("HTTP %d %s", status, outcome), nil
		}
		return outcome, nil
	})
}

// outcomeOf finds the outcome string in an answer without decoding all of
// it (the load generator shares the server's cores). Outcomes hold no
// characters JSON escapes, so the first quote ends one.
func outcomeOf(body []byte) (string, bool) {
	const key = `"outcome":"`
	i := bytes.Index(body, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := body[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func rateName(r float64) string {
	if r <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.0f/s", r)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s lists no serials", path)
	}
	return out, sc.Err()
}
