package web

import (
	"context"
	"crypto/x509"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
)

//go:embed templates/*.html
var templateFS embed.FS

// SignonAuthority is what the sign-on page needs of the authority.
type SignonAuthority interface {
	Caller(ctx context.Context, peer *x509.Certificate) (*mtlsid.Certificate, error)
	SignonIntent(ctx context.Context, ref string) (*authority.Signon, error)
	CompleteSignon(ctx context.Context, ref string, person *mtlsid.Certificate, consent bool) (*authority.SignonResult, error)
}

// Signon serves GET and POST /signon/{ref}: it reads the person's client
// certificate, asks once per service for consent, and redirects to the
// service's return URL. POSTs from other sites are refused.
type Signon struct {
	auth  SignonAuthority
	log   *slog.Logger
	pages *template.Template
	forms *forms
}

// NewSignon returns the sign-on handler. A nil logger discards logs.
func NewSignon(auth SignonAuthority, log *slog.Logger) (*Signon, error) {
	return NewSignonWithKey(auth, log, nil)
}

// NewSignonWithKey is NewSignon with the key of the consent form's CSRF
// token; an empty key means a random key per process.
func NewSignonWithKey(auth SignonAuthority, log *slog.Logger, formKey []byte) (*Signon, error) {
	pages, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Signon{auth: auth, log: log, pages: pages, forms: newForms(formKey)}, nil
}

type page struct {
	Title, Nav, CSRF, Message, Error, Done        string
	SignupHint                                    bool
	Service, Org, Device, DeviceType, Serial, Ref string
	// ReturnOrigin is where the consent form's answer redirects: the
	// browser checks form-action against the redirect too.
	ReturnOrigin string
}

func (s *Signon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.render(w, r, http.StatusMethodNotAllowed, "message.html", page{Title: "Not allowed", Message: "Use the link the service sent you here with."})
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	}
	if err := s.checkPost(r); err != nil {
		s.render(w, r, http.StatusForbidden, "message.html", page{Title: "Refused", Message: "This form can only be sent from this page."})
		return
	}
	ref := r.PathValue("ref")
	so, err := s.auth.SignonIntent(r.Context(), ref)
	if err != nil {
		s.intentError(w, r, err)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		s.render(w, r, http.StatusUnauthorized, "message.html", page{Title: "No identity certificate", SignupHint: true,
			Message: so.Service.Name + " asked mtlsid who you are, but your browser presented no mtlsid certificate."})
		return
	}
	person, err := s.auth.Caller(r.Context(), r.TLS.PeerCertificates[0])
	if err != nil {
		s.render(w, r, http.StatusUnauthorized, "message.html", page{Title: "Certificate not accepted", SignupHint: true,
			Message: "Your browser presented a certificate that mtlsid does not accept: " + mtlsid.ErrorMessage(err) + "."})
		return
	}
	consent := r.Method == http.MethodPost && r.PostFormValue("consent") == "yes"
	res, err := s.auth.CompleteSignon(r.Context(), ref, person, consent)
	if err != nil {
		s.intentError(w, r, err)
		return
	}
	if res.NeedsConsent {
		s.render(w, r, http.StatusOK, "consent.html", page{Title: "Share your identity", Service: so.Service.ID, Org: so.Org.Name,
			Device: person.Name, DeviceType: person.DeviceType, Serial: person.Serial, Ref: ref, ReturnOrigin: origin(so.Intent.ReturnURL)})
		return
	}
	s.log.Info("sign-on completed", "service", so.Service.ID, "serial", person.Serial)
	http.Redirect(w, r, res.RedirectURL, http.StatusSeeOther)
}

func (s *Signon) checkPost(r *http.Request) error {
	if r.Method != http.MethodPost {
		return nil
	}
	return s.forms.check(r)
}

func (s *Signon) intentError(w http.ResponseWriter, r *http.Request, err error) {
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindNotFound:
		s.render(w, r, http.StatusNotFound, "message.html", page{Title: "Unknown sign-on request", Message: "This sign-on link is not valid. Go back to the service and try again."})
	case mtlsid.KindExpired:
		s.render(w, r, http.StatusGone, "message.html", page{Title: "Sign-on request expired", Message: "This sign-on link has expired. Go back to the service and try again."})
	case mtlsid.KindUsed:
		s.render(w, r, http.StatusGone, "message.html", page{Title: "Sign-on request already used", Message: "This sign-on link was already used. Go back to the service and try again."})
	case mtlsid.KindConflict:
		s.render(w, r, http.StatusConflict, "message.html", page{Title: "Account already linked", Message: "The service asked to link your identity to one of its accounts, but that account is linked to another identity. Nothing was changed. Go back to the service and contact it."})
	default:
		s.log.Error("sign-on", "err", err)
		s.render(w, r, http.StatusInternalServerError, "message.html", page{Title: "Something went wrong", Message: "The sign-on could not be completed. Try again in a moment."})
	}
}

func (s *Signon) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.CSRF = s.forms.token(w, r)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	policy := csp
	if p.ReturnOrigin != "" {
		policy = strings.Replace(csp, "form-action 'self'", "form-action 'self' "+p.ReturnOrigin, 1)
	}
	w.Header().Set("Content-Security-Policy", policy)
	w.WriteHeader(status)
	if err := s.pages.ExecuteTemplate(w, name, p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
	}
}

// origin returns the scheme://host[:port] of a return URL, or "" if it has
// none or holds characters that do not belong in a CSP source.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || strings.ContainsAny(u.Host, " ;,'\"") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
