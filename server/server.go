package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/identityapi"
	"github.com/mtlsid/mtlsid/internal/connlimit"
	"github.com/mtlsid/mtlsid/notify"
	"github.com/mtlsid/mtlsid/revocation"
	"github.com/mtlsid/mtlsid/selfapi"
	"github.com/mtlsid/mtlsid/web"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Server. Authority, Store, DataDir and Hostnames are
// required.
type Config struct {
	Authority *authority.Authority
	Store     mtlsid.Store
	// DataDir holds the serving certificate (under tls/).
	DataDir string
	// Hostnames are the DNS names and IP addresses the serving certificate
	// covers; every route answers on each of them.
	Hostnames []string
	// ServerCertLifetime is the serving certificate's lifetime. Zero means
	// the server profile's default (90 days).
	ServerCertLifetime time.Duration
	// CRLValidity is the CRL's nextUpdate distance. Zero means 7 days; the
	// CRL is regenerated on every revocation and at least daily.
	CRLValidity time.Duration
	// Logger receives logs. Nil discards them.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Registry receives the server's metrics. Nil means a new registry
	// with the Go and process collectors.
	Registry *prometheus.Registry
	// FailedEnrollLimit is passed to the self-authority API (see
	// selfapi.Config).
	FailedEnrollLimit int
	// SignupsPerHour is passed to the pages (see web.Config).
	SignupsPerHour int
	// Notifier, if set, sends expiry notices: Run runs it.
	Notifier *notify.Notifier
	// NodeName names this node in the leases of fleet jobs (the CRL).
	// Empty means the host name and a random suffix.
	NodeName string
	// LeaseTTL is how long a fleet job's lease lasts unless renewed. Zero
	// means DefaultLeaseTTL.
	LeaseTTL time.Duration
}

// Server is a configured `mtlsid serve`. Create it with New, start it with
// Serve, start its background jobs with Run, stop it with Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	cert    *servingCert
	crl     *revocation.CRL
	ocsp    http.Handler
	metrics *metrics
	http    *http.Server
	plain   *RevocationServer
	tls     *tls.Config
	pages   *web.Pages
	events  *eventStreams
	// node and leaseTTL: see Config.NodeName and Config.LeaseTTL.
	node     string
	leaseTTL time.Duration
	// crlEvery is how old the CRL may grow before it is signed anew.
	crlEvery time.Duration
}

// FormKeyName names the shared secret (mtlsid.FleetStore.SharedSecret)
// that keys the pages' form tokens, so that a form one node renders is
// accepted by any other.
const FormKeyName = "web-form-key"

// New prepares a server: it loads or issues the serving certificate, loads
// the CRL the nodes share (signing one if there is none, or it is a day
// old) and the pages' form key, so that Serve can answer at once.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Authority == nil || cfg.Store == nil {
		return nil, errors.New("server: authority and store are required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if len(cfg.Hostnames) == 0 {
		return nil, errors.New("server: no host names")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.node, s.leaseTTL = cfg.NodeName, cfg.LeaseTTL
	if s.node == "" {
		host, _ := os.Hostname()
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		s.node = host + "-" + hex.EncodeToString(b)
	}
	if s.leaseTTL <= 0 {
		s.leaseTTL = DefaultLeaseTTL
	}
	validity := cfg.CRLValidity
	if validity <= 0 {
		validity = revocation.DefaultCRLValidity
	}
	s.crlEvery = min(crlInterval, validity/3)
	s.metrics = newMetrics(cfg.Registry)
	s.cert = &servingCert{
		auth: cfg.Authority, dir: filepath.Join(cfg.DataDir, "tls"),
		hostnames: cfg.Hostnames, lifetime: cfg.ServerCertLifetime, now: s.now,
	}
	if _, err := s.cert.ensure(ctx); err != nil {
		return nil, err
	}
	ca := cfg.Authority.CA()
	var err error
	s.crl, err = revocation.NewCRL(revocation.CRLConfig{
		Sign: ca.CreateCRL, Store: cfg.Store, Validity: cfg.CRLValidity, Now: s.now, Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	if _, err := s.crl.Load(ctx); err != nil {
		return nil, err
	}
	if s.crlStale() {
		if err := s.crl.Refresh(ctx); err != nil {
			return nil, fmt.Errorf("generate CRL: %w", err)
		}
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	formKey, err := cfg.Store.SharedSecret(ctx, FormKeyName, fresh)
	if err != nil {
		return nil, fmt.Errorf("read the form key: %w", err)
	}
	api, err := selfapi.New(selfapi.Config{Authority: cfg.Authority, Logger: s.log, Now: s.now, FailedEnrollLimit: cfg.FailedEnrollLimit})
	if err != nil {
		return nil, err
	}
	s.ocsp, err = revocation.NewOCSPResponder(revocation.OCSPConfig{
		Issuer: ca.Issuer(), Signer: ca.Signer(), Lookup: cfg.Store.Certificate, Now: s.now, Logger: s.log,
	})
	if err != nil {
		return nil, err
	}
	signon, err := web.NewSignonWithKey(cfg.Authority, s.log, formKey)
	if err != nil {
		return nil, err
	}
	if s.pages, err = web.NewPages(web.Config{Authority: cfg.Authority, Root: ca.Root(), Chain: ca.Chain(), Logger: s.log, Now: s.now, SignupsPerHour: cfg.SignupsPerHour, FormKey: formKey}); err != nil {
		return nil, err
	}
	s.tls = s.tlsConfig()
	s.events = newEventStreams(cfg.Authority)
	s.plain = s.RevocationServer()
	s.plain.http.Handler = s.plainHandler(s.plain.http.Handler)
	s.http = &http.Server{
		Handler:           s.routes(api, identityapi.New(cfg.Authority, s.log), signon),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.http.RegisterOnShutdown(s.events.shutdown)
	return s, nil
}

// RevocationHook is what the authority calls after each revocation: it
// regenerates the CRL and counts the revocation. It is set after New
// because the server is built on the authority; on a nil Server (while New
// runs) it does nothing.
func (s *Server) RevocationHook(ctx context.Context) {
	if s == nil {
		return
	}
	s.metrics.revocations.Inc()
	if err := s.crl.Refresh(context.WithoutCancel(ctx)); err != nil {
		s.log.Error("CRL refresh after revocation failed", "err", err)
	}
}

// IssueHook counts issued certificates by profile. On a nil Server it does
// nothing.
func (s *Server) IssueHook(p mtlsid.Profile) {
	if s != nil {
		s.metrics.issued.WithLabelValues(string(p)).Inc()
	}
}

// TLSConfig returns the server's TLS configuration.
func (s *Server) TLSConfig() *tls.Config { return s.tls }

// Handler returns the server's routes, without TLS.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve accepts connections on ln until Shutdown: TLS connections get
// every route; plain-HTTP connections on the same port get the revocation
// routes (CRL, OCSP, CA certificates) and a redirect to HTTPS for the rest.
func (s *Server) Serve(ln net.Listener) error {
	split := newSplitListener(connlimit.Listener(ln, connlimit.Default))
	go s.plain.Serve(split.plain)
	err := s.http.Serve(tls.NewListener(split.tls, s.tls))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting connections and waits for requests in flight,
// up to ctx's deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.plain != nil {
		_ = s.plain.Shutdown(ctx)
	}
	return s.http.Shutdown(ctx)
}

// Run runs the background jobs until ctx ends: the CRL (signed by the one
// node of a fleet holding its lease, see runCRL), the purge of expired
// intents (under a lease too, see runCleanup), the renewal of the serving
// certificate, and the expiry notices (under their own lease).
func (s *Server) Run(ctx context.Context) {
	// Run returns only once every job has stopped, so that the caller can
	// close the store and the data directory behind them.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { s.runCRL(ctx) })
	wg.Go(func() { s.runCleanup(ctx) })
	if s.cfg.Notifier != nil {
		wg.Go(func() { s.cfg.Notifier.Run(ctx) })
	}
	for {
		wait := time.Until(s.cert.renewAt())
		if wait > time.Hour {
			wait = time.Hour
		}
		if wait < time.Second {
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		issued, err := s.cert.ensure(ctx)
		switch {
		case err != nil:
			s.log.Error("serving certificate renewal failed; keeping the current one", "err", err)
		case issued:
			s.log.Info("serving certificate renewed")
		}
	}
}

// tlsConfig requests a client certificate and, when one is given, verifies
// its chain to the CA. Validity dates are left to the authority, which
// answers an expired certificate with a clear error instead of a failed
// handshake.
func (s *Server) tlsConfig() *tls.Config {
	ca := s.cfg.Authority.CA()
	roots := x509.NewCertPool()
	roots.AddCert(ca.Root())
	names := x509.NewCertPool()
	names.AddCert(ca.Root())
	names.AddCert(ca.Issuer())
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.cert.get,
		ClientAuth:     tls.RequestClientCert,
		// ClientCAs only tells clients which issuers we accept, so that
		// browsers offer the right certificate; verification is below.
		ClientCAs: names,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305,
		},
		NextProtos: []string{"h2", "http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyClient(cs.PeerCertificates, roots, ca.Issuer(), s.now())
		},
	}
}

func verifyClient(peers []*x509.Certificate, roots *x509.CertPool, issuer *x509.Certificate, now time.Time) error {
	if len(peers) == 0 {
		return nil
	}
	leaf := peers[0]
	inter := x509.NewCertPool()
	inter.AddCert(issuer)
	for _, c := range peers[1:] {
		inter.AddCert(c)
	}
	at := now
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("client certificate not issued by this authority: %w", err)
	}
	return nil
}
