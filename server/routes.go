package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/selfapi/wire"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes answers the same paths on every host name the server has, so
// that clients of the reference reach `signon.<domain>/api/v1` and
// `platform.<domain>/download/trust-chain` on one server.
func (s *Server) routes(api, idapi, signon http.Handler) http.Handler {
	ca := s.cfg.Authority.CA()
	rootPEM, chainPEM := pemCerts(ca.Root()), pemCerts(ca.Chain()...)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /ca/root.pem", download(rootPEM, "application/x-pem-file", "mtlsid-root.pem"))
	mux.HandleFunc("GET /ca/chain.pem", download(chainPEM, "application/x-pem-file", "mtlsid-chain.pem"))
	mux.HandleFunc("GET /download/trust-chain", func(w http.ResponseWriter, r *http.Request) {
		switch strings.ToLower(r.URL.Query().Get("format")) {
		case "", "pem":
			download(chainPEM, "application/x-pem-file", "mtlsid-chain.pem")(w, r)
		case "der":
			download(ca.Root().Raw, "application/pkix-cert", "mtlsid-root.crt")(w, r)
		default:
			http.Error(w, "format must be pem or der", http.StatusBadRequest)
		}
	})
	s.revocationRoutes(mux)
	mux.Handle(wire.Path, api)
	mux.Handle(idwire.Path, idapi)
	mux.HandleFunc("GET "+idwire.Path+"/events", s.events.serve)
	mux.Handle("/signon/{ref}", signon)
	mux.Handle("/", s.pages)
	return s.metrics.wrap(securityHeaders(byHost(mux, idapi, signon)))
}

// byHost gives the reference's host names their short paths: the Identity
// API at "/" on a host named api.*, and the sign-on page at "/<ref>" on a
// host named signon.*. Every other path works on every host.
func byHost(mux *http.ServeMux, idapi, signon http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.ToLower(host)
		switch {
		case strings.HasPrefix(host, "api.") && r.URL.Path == "/":
			r.Pattern = "api./"
			idapi.ServeHTTP(w, r)
			return
		case strings.HasPrefix(host, "signon.") && isRef(r.URL.Path):
			r.Pattern = "signon./{ref}"
			r.SetPathValue("ref", r.URL.Path[1:])
			signon.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// isRef reports whether path is "/" and one intent reference.
func isRef(path string) bool {
	if len(path) != 44 || path[0] != '/' {
		return false
	}
	for _, r := range path[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.log.Warn("not ready: database unreachable", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "database unreachable")
		return
	}
	fmt.Fprintln(w, "ready")
}

func download(body []byte, contentType, filename string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	}
}

// securityHeaders sets the headers every answer carries. HSTS is safe
// because the server only ever speaks HTTPS.
func securityHeaders(next http.Handler) http.Handler {
	// Shared by every answer: net/http only reads a header's values, and a
	// handler that sets one replaces the slice.
	values := map[string][]string{
		"Strict-Transport-Security": {"max-age=63072000"},
		"X-Content-Type-Options":    {"nosniff"},
		"X-Frame-Options":           {"DENY"},
		"Referrer-Policy":           {"no-referrer"},
		"Content-Security-Policy":   {"default-src 'none'; frame-ancestors 'none'"},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range values {
			h[k] = v
		}
		next.ServeHTTP(w, r)
	})
}

// revocationRoutes adds the routes that serve signed objects, which are
// safe over plain HTTP too: the CRL, OCSP, and the CA certificates.
func (s *Server) revocationRoutes(mux *http.ServeMux) {
	ca := s.cfg.Authority.CA()
	mux.HandleFunc("GET /ca/root.crt", download(ca.Root().Raw, "application/pkix-cert", "mtlsid-root.crt"))
	mux.HandleFunc("GET /ca/issuer.crt", download(ca.Issuer().Raw, "application/pkix-cert", "mtlsid-issuer.crt"))
	mux.Handle("GET /ca/crl", s.crl)
	mux.Handle("/ca/ocsp", s.ocsp)
	mux.Handle("/ca/ocsp/", http.StripPrefix("/ca/ocsp", s.ocsp))
}

// RevocationServer serves CRL, OCSP and the CA certificates over plain
// HTTP, where relying parties expect them (RFC 5280 AIA and CDP URLs).
type RevocationServer struct{ http *http.Server }

// RevocationServer returns the plain-HTTP revocation server.
func (s *Server) RevocationServer() *RevocationServer {
	mux := http.NewServeMux()
	s.revocationRoutes(mux)
	return &RevocationServer{http: &http.Server{
		Handler: s.metrics.wrap(mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10,
	}}
}

// Serve accepts plain HTTP connections on ln until Shutdown.
func (r *RevocationServer) Serve(ln net.Listener) error {
	if err := r.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server, waiting for requests in flight.
func (r *RevocationServer) Shutdown(ctx context.Context) error { return r.http.Shutdown(ctx) }

// plainHandler serves the revocation routes over plain HTTP and sends
// everything else to HTTPS, so a browser typing the address without https
// still arrives.
func (s *Server) plainHandler(revocation http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/ca/") {
			revocation.ServeHTTP(w, r)
			return
		}
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
	})
}
