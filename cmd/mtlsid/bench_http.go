package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/mtlsid/mtlsid/internal/loadgen"
)

// benchHTTP sends HTTPS GETs to one URL, over keep-alive connections or a
// new connection (full TLS handshake) per request, with an optional client
// certificate, and reports rate, latency and the statuses seen. It is for
// the gateway, and for comparing with nginx or anything else serving the
// same page. Transport failures and 5xx answers count as errors. It sends
// only to loopback unless told.
func benchHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench http", stderr)
	target := fs.String("url", "", "https:// URL to GET (required)")
	connect := fs.String("connect", "", "dial this host:port instead of the URL's, keeping the URL's name for SNI and Host (a gateway perimeter on loopback)")
	caFile := fs.String("ca", "", "CA to trust for the server's certificate (default the system's)")
	certFile := fs.String("cert", "", "client certificate to present (PEM), with --key")
	keyFile := fs.String("key", "", "its key")
	newConn := fs.Bool("new-conn", false, "open a new connection, with a full TLS handshake, for every request")
	rate := fs.Float64("rate", 0, "requests per second (0: as fast as possible)")
	duration := fs.Duration("duration", 10*time.Second, "how long to run (at most 10m)")
	requests := fs.Int("requests", 0, "stop after this many requests (0: no limit)")
	workers := fs.Int("workers", 32, "concurrent requests (and connections)")
	warmup := fs.Duration("warmup", 0, "uncounted warm-up")
	remote := fs.Bool("allow-remote", false, "allow a target that is not on loopback")
	h2 := fs.Bool("http2", false, "use HTTP/2 (several requests share a connection) instead of HTTP/1.1")
	clientKind := fs.String("client", "lean", "for https keep-alive: lean (prepared requests on pooled connections, answers read in the worker) or transport (net/http's Transport, as --new-conn, --http2 and http:// always use)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *clientKind != "lean" && *clientKind != "transport" {
		return &usageError{"--client is lean or transport"}
	}
	if *duration <= 0 || *duration > 10*time.Minute || *workers < 1 || *workers > 4096 || *requests < 0 || *requests > 10_000_000 {
		return &usageError{"--duration must be in (0, 10m], --workers in 1..4096 and --requests in 0..10,000,000"}
	}
	u, err := url.Parse(*target)
	// http:// is for the baseline: the upstream behind a gateway, asked
	// directly.
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return &usageError{"--url must be an https:// or http:// URL"}
	}
	if (*certFile == "") != (*keyFile == "") {
		return &usageError{"--cert and --key go together"}
	}
	// The loopback rule applies where the traffic goes.
	dest := u.Hostname()
	if *connect != "" {
		host, _, err := net.SplitHostPort(*connect)
		if err != nil {
			return &usageError{"--connect must be host:port"}
		}
		dest = host
	}
	if !*remote && !isLoopback(dest) {
		return &usageError{"the target is not on loopback; pass --allow-remote to load another machine"}
	}

	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if *caFile != "" {
		b, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pemOrDER(b)) {
			return fmt.Errorf("no certificate in %s", *caFile)
		}
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return err
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	cfg := loadgen.Config{Workers: *workers, Rate: *rate, Duration: *duration, Requests: *requests, Warmup: *warmup}
	lean := *clientKind == "lean" && u.Scheme == "https" && !*newConn && !*h2
	var res *loadgen.Result
	if lean {
		res, err = leanGets(ctx, u, *connect, conf, cfg)
	} else {
		res, err = transportGets(ctx, u, *connect, conf, cfg, *newConn, *h2)
	}
	if err != nil {
		return err
	}
	mode := "keep-alive"
	if *newConn {
		mode = "new connection per request"
	}
	if lean {
		mode += ", lean client"
	}
	cert := "no client certificate"
	if *certFile != "" {
		cert = "client certificate " + *certFile
	}
	fmt.Fprintf(stdout, "GET %s, %d workers, rate %s, %s, %s\n", *target, *workers, rateName(*rate), mode, cert)
	res.Report(stdout)
	return nil
}

// leanGets is bench http's keep-alive load with loadgen's lean HTTP/1.1
// client. 5xx answers are errors.
func leanGets(ctx context.Context, u *url.URL, connect string, conf *tls.Config, cfg loadgen.Config) (*loadgen.Result, error) {
	req := fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", u.RequestURI(), u.Host)
	client := newLeanClient(u, connect, conf, cfg.Workers)
	defer client.Close()
	return loadgen.Run(ctx, cfg, func(ctx context.Context, _ int) (string, error) {
		status, _, err := client.Do(ctx, req)
		if err != nil {
			return "", err
		}
		label := fmt.Sprintf("HTTP %d %s", status, http.StatusText(status))
		if status >= 500 {
			return "", errors.New(label)
		}
		return label, nil
	})
}

// newLeanClient is loadgen's HTTP/1.1 client for the https URL u, dialing
// connect when set (the URL's name stays the SNI).
func newLeanClient(u *url.URL, connect string, conf *tls.Config, workers int) *loadgen.HTTP1 {
	addr := connect
	if addr == "" {
		addr = u.Host
		if u.Port() == "" {
			addr = net.JoinHostPort(u.Hostname(), "443")
		}
	}
	conf.ServerName = u.Hostname()
	conf.NextProtos = []string{"http/1.1"}
	return loadgen.NewHTTP1(addr, conf, workers, 10*time.Second)
}

// transportGets is bench http's load through net/http's Transport.
func transportGets(ctx context.Context, u *url.URL, connect string, conf *tls.Config, cfg loadgen.Config, newConn, h2 bool) (*loadgen.Result, error) {
	target := u.String()
	tr := &http.Transport{
		TLSClientConfig:     conf,
		MaxIdleConns:        cfg.Workers,
		MaxIdleConnsPerHost: cfg.Workers,
		MaxConnsPerHost:     cfg.Workers,
		DisableKeepAlives:   newConn,
		ForceAttemptHTTP2:   h2,
	}
	if connect != "" {
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, connect)
		}
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr, Timeout: 10 * time.Second,
		// A redirect is an answer to measure, not one to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return loadgen.Run(ctx, cfg, func(ctx context.Context, _ int) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return "", err
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		// Read the whole body, so the connection can be reused.
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
		if resp.StatusCode >= 500 {
			return "", fmt.Errorf("HTTP %s", resp.Status)
		}
		return "HTTP " + resp.Status, nil
	})
}
