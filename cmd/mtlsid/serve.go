package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/domainverify"
	"github.com/mtlsid/mtlsid/server"
)

type serveFlags struct {
	dataFlags
	listen        string
	hostnames     stringList
	keyType       string
	revListen     string
	revURL        string
	logLevel      string
	logJSON       bool
	serverCertTTL time.Duration
	baseDomain    string
	dnsResolver   string
	debugListen   string
	openSignup    bool
	nodeName      string
	notices       noticeFlags
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f serveFlags
	fs := newFlags("serve", stderr)
	f.register(fs)
	fs.StringVar(&f.listen, "listen", "localhost:8443", "HTTPS listen address")
	fs.Var(&f.hostnames, "hostname", "DNS name or IP address the server answers to, in its certificate (repeatable; default localhost, 127.0.0.1, ::1)")
	fs.StringVar(&f.keyType, "key-type", string(ca.DefaultKeyType), "key type of a new CA: "+keyTypeList())
	fs.StringVar(&f.revListen, "revocation-listen", "", "also serve CRL, OCSP and the CA certificates over plain HTTP on this address, and name it in certificates (they are always served over plain HTTP on the --listen port too)")
	fs.StringVar(&f.revURL, "revocation-url", "", "public base URL of the revocation routes, put into certificates (default http://FIRST-HOSTNAME:PORT of --revocation-listen, else of --listen)")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&f.logJSON, "log-json", false, "log in JSON instead of text")
	fs.DurationVar(&f.serverCertTTL, "server-cert-lifetime", 0, "lifetime of the serving certificate (default 2160h, 90 days)")
	fs.StringVar(&f.baseDomain, "base-domain", "mtls.local", "parent of services' default domains (<service>.<org>.BASE)")
	fs.StringVar(&f.debugListen, "debug-listen", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	fs.BoolVar(&f.openSignup, "open-signup", false, "let anyone sign up for a certificate on the /signup page, without an enrollment token (rate-limited per address)")
	fs.StringVar(&f.dnsResolver, "dns-resolver", "", "DNS server (host:port) for domain verification (default: the system's)")
	fs.StringVar(&f.nodeName, "node-name", "", "this node's name in the leases of fleet jobs, such as the CRL (default: host name and a random suffix)")
	f.notices.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return &usageError{"--log-level: " + err.Error()}
	}
	log := newLogger(stderr, level, f.logJSON)
	if os.Getenv("GOGC") == "" {
		// Most of serve's garbage is per request and its live heap small:
		// fewer collections give a fifth more inquiries per second on two
		// cores for some tens of MB (docs/benchmarks.md). GOGC in the
		// environment wins.
		debug.SetGCPercent(400)
	}
	return serve(ctx, &f, log, stdout)
}

func keyTypeList() string {
	s := ""
	for i, k := range ca.KeyTypes() {
		if i > 0 {
			s += ", "
		}
		s += string(k)
	}
	return s
}

func serve(ctx context.Context, f *serveFlags, log *slog.Logger, stdout io.Writer) error {
	start := time.Now()
	if len(f.hostnames) == 0 {
		f.hostnames = stringList{"localhost", "127.0.0.1", "::1"}
	}
	store, dbName, err := f.openStore(ctx)
	if err != nil {
		return err
	}
	defer store.Close()

	fleetCA, err := databaseCA(ctx, store)
	if err != nil {
		return err
	}
	if fleetCA != "" && !ca.Exists(f.caDir()) {
		return fmt.Errorf("the database belongs to the CA with root fingerprint %s, and %s holds no CA: copy the ca directory of a node of this fleet there (see docs/fleet.md)", fleetCA, f.caDir())
	}
	cauth, created, err := f.openOrInitCA(log)
	if err != nil {
		return err
	}
	if got := cauth.RootFingerprint(); fleetCA != "" && got != fleetCA {
		return fmt.Errorf("the database belongs to the CA with root fingerprint %s, but %s holds the CA %s: every node of a fleet needs the same CA (see docs/fleet.md)", fleetCA, f.caDir(), got)
	}
	// Listen before issuing anything, so that certificates carry the
	// revocation URL with the port actually bound.
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.listen, err)
	}
	defer ln.Close()
	// The HTTPS port also answers plain HTTP for the revocation routes, so
	// by default certificates point there.
	var rln net.Listener
	revBase := "http://" + publicAddr(f.hostnames[0], ln.Addr())
	if f.revListen != "" {
		if rln, err = net.Listen("tcp", f.revListen); err != nil {
			return fmt.Errorf("listen on %s: %w", f.revListen, err)
		}
		defer rln.Close()
		revBase = "http://" + publicAddr(f.hostnames[0], rln.Addr())
	}
	if f.revURL != "" {
		revBase = strings.TrimRight(f.revURL, "/")
	}
	cfg := ca.Config{OCSPURL: revBase + "/ca/ocsp", CRLURL: revBase + "/ca/crl", IssuerURL: revBase + "/ca/issuer.crt"}
	if cauth, err = cauth.WithConfig(cfg); err != nil {
		return err
	}

	verifier, err := domainverify.New(domainverify.Config{Resolver: f.dnsResolver, Logger: log})
	if err != nil {
		return &usageError{"--dns-resolver: " + err.Error()}
	}
	var srv *server.Server
	auth, err := authority.New(authority.Config{
		Store: store, CA: cauth, Logger: log, BaseDomain: f.baseDomain, Verifier: verifier, OpenSignup: f.openSignup,
		OnRevoke: func(ctx context.Context) { srv.RevocationHook(ctx) },
		OnIssue:  func(p mtlsid.Profile) { srv.IssueHook(p) },
	})
	if err != nil {
		return err
	}
	defer auth.Close()
	if created {
		if err := auth.Audit(ctx, mtlsid.AuditEvent{Type: mtlsid.AuditCACreated, Actor: "local", Subject: cauth.RootFingerprint(), Detail: "key_type=" + f.keyType}); err != nil {
			return err
		}
	}
	notifier, err := f.notices.notifier(store, "https://"+publicAddr(f.hostnames[0], ln.Addr()), f.nodeName, log)
	if err != nil {
		return err
	}
	srv, err = server.New(ctx, server.Config{
		Authority: auth, Store: store, DataDir: f.data, Hostnames: f.hostnames,
		ServerCertLifetime: f.serverCertTTL, Logger: log, Notifier: notifier, NodeName: f.nodeName,
	})
	if err != nil {
		return err
	}
	base := "https://" + publicAddr(f.hostnames[0], ln.Addr())
	fmt.Fprintf(stdout, "mtlsid authority listening on %s (database %s, started in %d ms)\n", base, dbName, time.Since(start).Milliseconds())
	fmt.Fprintf(stdout, "CA root fingerprint (SHA-256): %s\n", cauth.RootFingerprint())
	if created {
		if err := printBootstrap(ctx, auth, stdout, base, f.data); err != nil {
			return err
		}
	}

	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var rev *server.RevocationServer
	if rln != nil {
		rev = srv.RevocationServer()
		go func() { errc <- rev.Serve(rln) }()
		fmt.Fprintf(stdout, "revocation (CRL, OCSP) over HTTP on http://%s\n", rln.Addr())
	}
	if f.debugListen != "" {
		dln, err := listenDebug(f.debugListen)
		if err != nil {
			return err
		}
		defer dln.Close()
		go servePprof(dln)
		fmt.Fprintf(stdout, "profiler on http://%s/debug/pprof/\n", dln.Addr())
	}
	jobs, stopJobs := context.WithCancel(ctx)
	jobsDone := make(chan struct{})
	go func() { srv.Run(jobs); close(jobsDone) }()
	// Deferred calls run last first: the jobs stop before the store closes.
	defer func() { stopJobs(); <-jobsDone }()

	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil {
			return err
		}
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rev != nil {
		_ = rev.Shutdown(sctx)
	}
	return srv.Shutdown(sctx)
}

// openOrInitCA loads the CA, or creates it when the data directory has
// none. A wrong passphrase is an error and nothing is written.
func (f *serveFlags) openOrInitCA(log *slog.Logger) (*ca.CA, bool, error) {
	if ca.Exists(f.caDir()) {
		c, err := f.loadCA(log)
		return c, false, err
	}
	kt, err := ca.ParseKeyType(f.keyType)
	if err != nil {
		return nil, false, &usageError{err.Error()}
	}
	pass, err := f.passphrase(true, log)
	if err != nil {
		return nil, false, err
	}
	c, err := ca.Init(f.caDir(), ca.InitConfig{KeyType: kt, Passphrase: pass})
	if err != nil {
		return nil, false, fmt.Errorf("create CA in %s: %w", f.caDir(), err)
	}
	log.Info("certificate authority created", "dir", f.caDir(), "key_type", kt, "fingerprint", c.RootFingerprint())
	return c, true, nil
}

// databaseCA returns the root fingerprint of the CA the database was set
// up with (the first ca.created event of its audit chain), or "" for a
// new database. serve refuses to start with another CA, or to create one:
// the nodes of a fleet would issue certificates the others refuse. Every
// node needs a copy of the first node's DATA/ca directory.
func databaseCA(ctx context.Context, store mtlsid.Store) (string, error) {
	entries, err := store.AuditLog(ctx, 0, 100)
	if err != nil {
		return "", fmt.Errorf("read the audit chain: %w", err)
	}
	for _, e := range entries {
		if e.Type == mtlsid.AuditCACreated {
			return e.Subject, nil
		}
	}
	return "", nil
}

// publicAddr is the host name clients should use with the port actually
// bound (which differs from the flag when it asked for port 0).
func publicAddr(host string, addr net.Addr) string {
	port := 8443
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = ta.Port
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func printBootstrap(ctx context.Context, auth *authority.Authority, w io.Writer, base, data string) error {
	secret, tok, err := auth.CreateToken(ctx, authority.TokenRequest{Purpose: mtlsid.TokenDevice, Label: "bootstrap: first administrator", CreatedBy: "system"})
	if err != nil {
		return fmt.Errorf("mint bootstrap token: %w", err)
	}
	fmt.Fprintf(w, `
A new certificate authority was created in %[4]s/ca.
Trust its root: %[1]s/ca/root.pem (or %[4]s/ca/root.crt).

One-time enrollment token for the first administrator (valid until %[3]s):

    %[2]s

Get a certificate for your browser: open %[1]s/signup?token=%[2]s

Or enroll this machine with it:

    go run ./cmd/mtlsid enroll %[2]s --server %[1]s --ca %[4]s/ca/root.crt

Mint more tokens with: go run ./cmd/mtlsid token create --data %[4]s
`, base, secret, tok.ExpiresAt.Local().Format(time.RFC1123), data)
	return nil
}
