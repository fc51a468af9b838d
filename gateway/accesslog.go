package gateway

import (
	"context"
	"crypto/tls"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// The decisions of the access log and of the metric
// mtlsid_gateway_requests_total.
const (
	// DecisionAllowed: enforce mode, identified with the roles needed;
	// sent to the upstream (or, on the admin listener, served).
	DecisionAllowed = "allowed"
	// DecisionAnonymous: an anonymous path; sent to the upstream.
	DecisionAnonymous = "anonymous"
	// DecisionExempt: an exempt address; sent to the upstream.
	DecisionExempt = "exempt"
	// DecisionForwarded: forward mode; sent to the upstream, which decides.
	DecisionForwarded = "forwarded"
	// DecisionRefused: the page with 401 or 403 (no certificate, not
	// accepted, roles missing).
	DecisionRefused = "refused"
	// DecisionUnavailable: the authority could not be asked (503).
	DecisionUnavailable = "unavailable"
	// DecisionMisdirected: the Host is not served on this connection (421).
	DecisionMisdirected = "misdirected"
	// DecisionRedirected: sent to the sign-on page (signon_redirect).
	DecisionRedirected = "redirected"
)

// reqInfo is what the handlers learn about a request, for its access log
// line. Only the request's own goroutine writes it.
type reqInfo struct {
	perimeter string
	pending   string // the decision if the request reaches the upstream
	decision  string
	profile   *sdk.Profile
}

type reqInfoKey struct{}

func infoOf(r *http.Request) *reqInfo {
	ri, _ := r.Context().Value(reqInfoKey{}).(*reqInfo)
	return ri
}

// pending records the decision a request gets if next lets it through.
func pending(decision string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ri := infoOf(r); ri != nil {
			ri.pending = decision
		}
		next.ServeHTTP(w, r)
	})
}

// passed marks a request that reached the handler the rules protect.
func passed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ri := infoOf(r); ri != nil {
			ri.decision, ri.profile = ri.pending, sdk.FromContext(r.Context())
		}
		next.ServeHTTP(w, r)
	})
}

// siteHandler serves the requests of the listener key with the current
// state's site, and logs and counts each one.
func (g *Gateway) siteHandler(key string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, ri))
		withTLS(r) // a connection the fast path handed over
		sw := &statusWriter{ResponseWriter: w}
		if s := g.cur.Load().sites[key]; s != nil {
			s.ServeHTTP(sw, r)
		} else { // the listener is closing after a reload
			render(sw, r, pageData{Page: sdk.Page{Status: http.StatusMisdirectedRequest, Title: "Wrong address",
				Message: "This gateway no longer serves this address."}})
		}
		g.logSlow(r, ri, sw, time.Since(start))
	})
}

func (g *Gateway) logSlow(r *http.Request, ri *reqInfo, sw *statusWriter, took time.Duration) {
	status := sw.code
	if status == 0 {
		status = http.StatusOK
	}
	decision := ri.decision
	if decision == "" {
		switch {
		case status == http.StatusMisdirectedRequest:
			decision = DecisionMisdirected
		case status == http.StatusServiceUnavailable:
			decision = DecisionUnavailable
		case status >= 300 && status < 400:
			decision = DecisionRedirected
		default:
			decision = DecisionRefused
		}
	}
	perimeter := ri.perimeter
	if perimeter == "" {
		perimeter = "-"
	}
	g.logRequest(r.Context(), perimeter, r.Method, r.URL.Path, status, sw.bytes, took, r.RemoteAddr, decision, r.TLS, ri.profile)
}

// logRequest counts a request by perimeter and decision, and writes its
// access log line when the log is at info.
func (g *Gateway) logRequest(ctx context.Context, perimeter, method, path string, status int, n int64, took time.Duration,
	client, decision string, cs *tls.ConnectionState, p *sdk.Profile) {
	g.metrics.requests.WithLabelValues(perimeter, decision).Inc()
	if !g.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	attrs := []slog.Attr{
		slog.String("perimeter", perimeter), slog.String("method", method), slog.String("path", path),
		slog.Int("status", status), slog.Int64("bytes", n), slog.Duration("duration", took),
		slog.String("client", client), slog.String("decision", decision),
	}
	if cs != nil && len(cs.PeerCertificates) > 0 {
		attrs = append(attrs, slog.String("serial", "0x"+cs.PeerCertificates[0].SerialNumber.Text(16)))
	}
	if p != nil {
		if cs == nil || len(cs.PeerCertificates) == 0 {
			if n, ok := new(big.Int).SetString(p.Serial, 10); ok {
				attrs = append(attrs, slog.String("serial", "0x"+n.Text(16)))
			}
		}
		if p.LocalUser != "" {
			attrs = append(attrs, slog.String("local_id", p.LocalUser))
		}
		if p.Identity != nil && p.Identity.OrganizationalReference != "" {
			attrs = append(attrs, slog.String("org_id", p.Identity.OrganizationalReference))
		}
		attrs = append(attrs, slog.String("roles", strings.Join(p.Roles, ",")))
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}

// statusWriter records the status and the bytes of the body written.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and Hijack (streaming
// and websockets through the reverse proxy).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
