package web

import (
	"context"
	"crypto/x509"
	"embed"
	"html/template"
	"log/slog"
	"net/http"

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
	csrf  *http.CrossOriginProtection
}

// NewSignon returns the sign-on handler. A nil logger discards logs.
func NewSignon(auth SignonAuthority, log *slog.Logger) (*Signon, error) {
	pages, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Signon{auth: auth, log: log, pages: pages, csrf: http.NewCrossOriginProtection()}, nil
}

type page struct {
	Title, Message                                string
	SignupHint                                    bool
	Service, Org, Device, DeviceType, Serial, Ref string
}

func (s *Signon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		s.render(w, http.StatusMethodNotAllowed, "message.html", page{Title: "Not allowed", Message: "Use the link the service sent you here with."})
		return
	}
	if err := s.csrf.Check(r); err != nil {
		s.render(w, http.StatusForbidden, "message.html", page{Title: "Refused", Message: "This form can only be sent from this page."})
		return
	}
	ref := r.PathValue("ref")
	so, err := s.auth.SignonIntent(r.Context(), ref)
	if err != nil {
		s.intentError(w, err)
		return
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		s.render(w, http.StatusUnauthorized, "message.html", page{Title: "No identity certificate", SignupHint: true,
			Message: so.Service.Name + " asked mtlsid who you are, but your browser presented no mtlsid certificate."})
		return
	}
	person, err := s.auth.Caller(r.Context(), r.TLS.PeerCertificates[0])
	if err != nil {
		s.render(w, http.StatusUnauthorized, "message.html", page{Title: "Certificate not accepted", SignupHint: true,
			Message: "Your browser presented a certificate that mtlsid does not accept: " + mtlsid.ErrorMessage(err) + "."})
		return
	}
	consent := r.Method == http.MethodPost && r.PostFormValue("consent") == "yes"
	res, err := s.auth.CompleteSignon(r.Context(), ref, person, consent)
	if err != nil {
		s.intentError(w, err)
		return
	}
	if res.NeedsConsent {
		s.render(w, http.StatusOK, "consent.html", page{Title: "Share your identity", Service: so.Service.ID, Org: so.Org.Name,
			Device: person.Name, DeviceType: person.DeviceType, Serial: person.Serial, Ref: ref})
		return
	}
	s.log.Info("sign-on completed", "service", so.Service.ID, "serial", person.Serial)
	http.Redirect(w, r, res.RedirectURL, http.StatusSeeOther)
}

func (s *Signon) intentError(w http.ResponseWriter, err error) {
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindNotFound:
		s.render(w, http.StatusNotFound, "message.html", page{Title: "Unknown sign-on request", Message: "This sign-on link is not valid. Go back to the service and try again."})
	case mtlsid.KindExpired:
		s.render(w, http.StatusGone, "message.html", page{Title: "Sign-on request expired", Message: "This sign-on link has expired. Go back to the service and try again."})
	case mtlsid.KindUsed:
		s.render(w, http.StatusGone, "message.html", page{Title: "Sign-on request already used", Message: "This sign-on link was already used. Go back to the service and try again."})
	default:
		s.log.Error("sign-on", "err", err)
		s.render(w, http.StatusInternalServerError, "message.html", page{Title: "Something went wrong", Message: "The sign-on could not be completed. Try again in a moment."})
	}
}

func (s *Signon) render(w http.ResponseWriter, status int, name string, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	if err := s.pages.ExecuteTemplate(w, name, p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
	}
}
