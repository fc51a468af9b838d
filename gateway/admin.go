package gateway

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/mtlsid/mtlsid/sdk"
)

// adminKey is the admin listener's key among the listeners.
const adminKey = "admin"

// Admin is the administrators' listener: the status page (HTML at /,
// JSON at /status.json) and the Prometheus metrics (/metrics). It is
// mTLS: a certificate identified by the authority with the roles given
// is required (the page explains a refusal). /metrics may also be
// scraped without a certificate from MetricsIPs.
type Admin struct {
	// Listen is the TCP address, such as "127.0.0.1:9443". Required.
	Listen string `yaml:"listen"`
	// TLS is the server certificate (files, or auto). Required.
	TLS TLSFiles `yaml:"tls"`
	// Roles are required of the administrators (all of AllOf, one of
	// AnyOf). At least one role is required.
	Roles Roles `yaml:"roles"`
	// MetricsIPs are CIDRs (or addresses) that may read /metrics without
	// a certificate (a Prometheus server). With none, the TLS handshake
	// requires a certificate.
	MetricsIPs []string `yaml:"metrics_ips"`
}

// validateOps checks the admin listener and state_dir.
func (cfg Config) validateOps() error {
	auto := false
	for _, p := range cfg.Perimeters {
		auto = auto || p.TLS.Auto
	}
	if a := cfg.Admin; a != nil {
		e := func(format string, args ...any) error {
			return fmt.Errorf("%w: admin: %s", ErrConfig, fmt.Sprintf(format, args...))
		}
		if a.Listen == "" {
			return e("listen is required")
		}
		if _, _, err := net.SplitHostPort(a.Listen); err != nil {
			return e("listen %q: %v", a.Listen, err)
		}
		for _, p := range cfg.Perimeters {
			if _, port, _ := net.SplitHostPort(a.Listen); port != "0" && p.Listen == a.Listen {
				return e("listen %s is perimeter %s's address", a.Listen, p.Name)
			}
		}
		if err := a.TLS.check(); err != nil {
			return e("%v", err)
		}
		auto = auto || a.TLS.Auto
		if len(a.Roles.AllOf) == 0 && len(a.Roles.AnyOf) == 0 {
			return e("roles are required (such as roles: {any_of: [gateway-admin]})")
		}
		for _, c := range a.MetricsIPs {
			if _, err := parsePrefix(c); err != nil {
				return e("metrics_ips %q: %v", c, err)
			}
		}
	}
	if auto && cfg.StateDir == "" {
		return fmt.Errorf("%w: tls.auto needs state_dir, where the server certificate is kept", ErrConfig)
	}
	return nil
}

// adminSite serves the admin listener.
type adminSite struct {
	cfg     Admin
	cert    certFunc
	tls     *tls.Config
	metrics []netip.Prefix
	h       http.Handler
}

func (g *Gateway) newAdmin(a Admin, mw *sdk.Middleware, auto *autoCerts) (*adminSite, error) {
	cert, err := loadCert("admin", a.TLS, auto)
	if err != nil {
		return nil, err
	}
	s := &adminSite{cfg: a, cert: cert}
	s.tls = mw.TLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.get, NextProtos: []string{"h2", "http/1.1"}})
	if len(a.MetricsIPs) == 0 {
		s.tls.ClientAuth = tls.RequireAndVerifyClientCert
	}
	for _, c := range a.MetricsIPs {
		pfx, _ := parsePrefix(c)
		s.metrics = append(s.metrics, pfx)
	}
	gate := func(h http.Handler) http.Handler {
		return pending(DecisionAllowed, mw.Wrap(requireRoles(a.Roles, passed(h))))
	}
	metrics := g.metrics.Handler()
	gatedMetrics := gate(metrics)
	exemptMetrics := pending(DecisionExempt, mw.Identify(passed(metrics)))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.metricsAllowed(r) {
			exemptMetrics.ServeHTTP(w, r)
			return
		}
		gatedMetrics.ServeHTTP(w, r)
	}))
	mux.Handle("GET /status.json", gate(http.HandlerFunc(g.serveStatusJSON)))
	mux.Handle("GET /{$}", gate(http.HandlerFunc(g.serveStatusHTML)))
	mux.Handle("/", gate(http.NotFoundHandler()))
	s.h = mux
	return s, nil
}

func (s *adminSite) metricsAllowed(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	for _, p := range s.metrics {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

func (s *adminSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if ri := infoOf(r); ri != nil {
		ri.perimeter = adminKey
	}
	w.Header().Set("Cache-Control", "no-store")
	s.h.ServeHTTP(w, r)
}

func (s *adminSite) configFor(*tls.ClientHelloInfo) (*tls.Config, error) { return s.tls, nil }
func (s *adminSite) listenAddr() string                                  { return s.cfg.Listen }

// stopAuto ends the renewal of tls.auto certificates.
func (g *Gateway) stopAuto() {
	if st := g.cur.Load(); st != nil && st.auto != nil {
		st.auto.stop()
	}
}
