package web

import (
	"context"
	"crypto/x509"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
)

//go:embed assets
var assetFS embed.FS

// csp is the pages' Content-Security-Policy: nothing but this origin's
// style sheet, script and images, no inline script or style, forms only
// to this origin, never framed.
const csp = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// PagesAuthority is what the account pages need of the authority. Every
// decision (who may, what is valid) is the authority's; the pages only
// authenticate the browser by its certificate and render.
type PagesAuthority interface {
	Caller(ctx context.Context, peer *x509.Certificate) (*mtlsid.Certificate, error)
	OpenSignup() bool
	SignUp(ctx context.Context, req authority.SignUpRequest) (*authority.Issued, error)
	Devices(ctx context.Context, caller *mtlsid.Certificate) ([]mtlsid.Certificate, error)
	Revoke(ctx context.Context, caller *mtlsid.Certificate, serial string, reason int) error
	Renew(ctx context.Context, caller *mtlsid.Certificate, req authority.RenewRequest) (*authority.Renewal, error)
	DeviceToken(ctx context.Context, caller *mtlsid.Certificate, label string, lifetime time.Duration) (string, *mtlsid.Token, error)
	MyServices(ctx context.Context, caller *mtlsid.Certificate) ([]authority.ServiceView, error)
	RecentCalls(identityID string) []mtlsid.Identification
	AccountAuthority
	NoticeAuthority
	OrgAuthority
}

// Config configures the account pages.
type Config struct {
	// Authority is required.
	Authority PagesAuthority
	// Root and Chain (issuing CA, then root) are the trust material the
	// pages offer; Root is required.
	Root  *x509.Certificate
	Chain []*x509.Certificate
	// Logger receives logs. Nil discards them.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// SignupsPerHour bounds sign-ups (successful or not) per client
	// address. Zero means 10; negative means no limit.
	SignupsPerHour int
	// FormKey keys the forms' CSRF tokens. Empty means a random key per
	// process.
	FormKey []byte
}

// Pages serves the pages for people: home, sign-up, my identity, the test
// page, trust material, organizations and services. It is safe for
// concurrent use.
type Pages struct {
	auth   PagesAuthority
	root   *x509.Certificate
	chain  []*x509.Certificate
	log    *slog.Logger
	now    func() time.Time
	tmpl   *template.Template
	forms  *forms
	signup *addrLimiter
	mux    *http.ServeMux
}

// NewPages returns the pages for cfg.
func NewPages(cfg Config) (*Pages, error) {
	if cfg.Authority == nil || cfg.Root == nil {
		return nil, errors.New("web: authority and root certificate are required")
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	p := &Pages{auth: cfg.Authority, root: cfg.Root, chain: cfg.Chain, log: cfg.Logger, now: cfg.Now, tmpl: tmpl, forms: newForms(cfg.FormKey)}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if len(p.chain) == 0 {
		p.chain = []*x509.Certificate{p.root}
	}
	if cfg.SignupsPerHour >= 0 {
		n := cfg.SignupsPerHour
		if n == 0 {
			n = 10
		}
		p.signup = newAddrLimiter(n, time.Hour, p.now)
	}
	assets, _ := fs.Sub(assetFS, "assets")
	m := http.NewServeMux()
	m.Handle("GET /assets/", http.StripPrefix("/assets/", cacheFor(time.Hour, http.FileServerFS(assets))))
	m.HandleFunc("GET /{$}", p.home)
	m.HandleFunc("GET /trust", p.trust)
	m.HandleFunc("GET /signup", p.signupForm)
	m.HandleFunc("POST /signup", p.signupPost)
	m.HandleFunc("GET /my", p.my)
	m.HandleFunc("POST /my/revoke", p.myRevoke)
	m.HandleFunc("POST /my/token", p.myToken)
	m.HandleFunc("POST /my/renew", p.myRenew)
	m.HandleFunc("GET /my/test", p.myTest)
	p.accountRoutes(m)
	p.noticeRoutes(m)
	p.orgRoutes(m)
	m.HandleFunc("/", p.notFound)
	p.mux = m
	return p, nil
}

func parseTemplates() (*template.Template, error) {
	return template.New("").Funcs(template.FuncMap{
		"date":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
		"when":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"hexSerial": mtlsid.HexSerial,
	}).ParseFS(templateFS, "templates/*.html")
}

// ServeHTTP answers the page routes. Every POST must pass the CSRF check
// first; a refused one changes nothing.
func (p *Pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := p.forms.check(r); err != nil {
			p.log.Warn("form refused", "path", r.URL.Path, "err", err)
			p.render(w, r, http.StatusForbidden, "message.html", view{Title: "Form refused",
				Error: "This form was not sent from this site's own page, or the page was too old. Open the page again and send the form from there."})
			return
		}
	}
	p.mux.ServeHTTP(w, r)
}

// view is what every page template gets.
type view struct {
	Title string
	Nav   string // the navigation entry to mark current
	CSRF  string
	// Me is the browser's verified certificate, nil if none.
	Me     *mtlsid.Certificate
	NoCert bool // a page that needs a certificate got none
	// SignupHint adds the sign-up explanation to message.html.
	SignupHint bool
	Message    string // plain text for message.html
	Error      string
	Done       string
	Data       any
}

func (p *Pages) render(w http.ResponseWriter, r *http.Request, status int, name string, v view) {
	v.CSRF = p.forms.token(w, r)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	if err := p.tmpl.ExecuteTemplate(w, name, v); err != nil {
		p.log.Error("render page", "page", name, "err", err)
	}
}

// me returns the browser's certificate as the authority knows it, or nil
// and why not (for the page to say).
func (p *Pages) me(r *http.Request) (*mtlsid.Certificate, error) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "no client certificate presented")
	}
	return p.auth.Caller(r.Context(), r.TLS.PeerCertificates[0])
}

// requireMe renders the "needs a certificate" page and returns nil when
// the browser presented no usable certificate.
func (p *Pages) requireMe(w http.ResponseWriter, r *http.Request, title string) *mtlsid.Certificate {
	me, err := p.me(r)
	if err == nil {
		return me
	}
	v := view{Title: title, Nav: "my", NoCert: true}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		v.Error = "Your browser presented a certificate that this server does not accept: " + mtlsid.ErrorMessage(err) + "."
	}
	p.render(w, r, http.StatusUnauthorized, "needcert.html", v)
	return nil
}

// fail renders an authority error on the page where it happened.
func (p *Pages) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := statusOf(err)
	if status == http.StatusInternalServerError {
		p.log.Error("page", "path", r.URL.Path, "err", err)
	}
	p.render(w, r, status, "message.html", view{Title: "That did not work", Error: msg})
}

// statusOf maps an error's Kind to a status and a message safe to show.
func statusOf(err error) (int, string) {
	msg := mtlsid.ErrorMessage(err)
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindInvalid, mtlsid.KindTooLarge:
		return http.StatusBadRequest, msg
	case mtlsid.KindUnauthorized:
		return http.StatusUnauthorized, msg
	case mtlsid.KindForbidden:
		return http.StatusForbidden, msg
	case mtlsid.KindNotFound:
		return http.StatusNotFound, msg
	case mtlsid.KindConflict, mtlsid.KindRevoked:
		return http.StatusConflict, msg
	case mtlsid.KindExpired, mtlsid.KindUsed:
		return http.StatusGone, msg
	case mtlsid.KindRateLimited:
		return http.StatusTooManyRequests, msg
	case mtlsid.KindUnavailable:
		return http.StatusServiceUnavailable, "the database is unavailable; try again in a moment"
	case mtlsid.KindNotImplemented:
		return http.StatusNotImplemented, msg
	}
	return http.StatusInternalServerError, "something went wrong on the server; try again in a moment"
}

func (p *Pages) home(w http.ResponseWriter, r *http.Request) {
	me, err := p.me(r)
	v := view{Title: "Your identity, by certificate", Nav: "home", Me: me}
	if err != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		v.Error = "Your browser presented a certificate that this server does not accept: " + mtlsid.ErrorMessage(err) + "."
	}
	v.Data = struct{ OpenSignup bool }{p.auth.OpenSignup()}
	p.render(w, r, http.StatusOK, "home.html", v)
}

func (p *Pages) notFound(w http.ResponseWriter, r *http.Request) {
	p.render(w, r, http.StatusNotFound, "message.html", view{Title: "Page not found",
		Message: "There is no page at " + r.URL.Path + ". The links at the top lead to every page of this identity service."})
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}
