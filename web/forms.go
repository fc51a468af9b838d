package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
)

// csrfCookie holds a random value per browser; a form's token is its MAC.
// The __Host- prefix makes the browser refuse it unless it is Secure, on
// Path=/ and without Domain, so another host cannot plant one.
const csrfCookie = "__Host-mtlsid-csrf"

// csrfField is the form field carrying the token.
const csrfField = "csrf"

// errCSRF is a form posted without a valid token or from another site.
var errCSRF = errors.New("web: form token missing or invalid")

// forms protects forms against cross-site posts twice over: Go's
// CrossOriginProtection (Sec-Fetch-Site and Origin), and a token in every
// form that must match an HMAC of the browser's CSRF cookie under a key
// that never leaves the process. It is safe for concurrent use.
type forms struct {
	key    []byte
	origin *http.CrossOriginProtection
}

// newForms returns a form protector with key, or a random key when key is
// empty (forms rendered before a restart are then refused, and the person
// is asked to send them again).
func newForms(key []byte) *forms {
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return &forms{key: key, origin: http.NewCrossOriginProtection()}
}

// token returns the token for forms on the page being rendered, setting
// the browser's CSRF cookie first if it has none.
func (f *forms) token(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 22 {
		v = c.Value
	} else {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	return f.mac(v)
}

func (f *forms) mac(cookie string) string {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte("mtlsid form\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check refuses a POST from another site or without the token that
// matches the browser's cookie. It fails closed: no cookie, no token, or
// a token made under another key is errCSRF.
func (f *forms) check(r *http.Request) error {
	if err := f.origin.Check(r); err != nil {
		return err
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return errCSRF
	}
	got := r.PostFormValue(csrfField)
	if got == "" || !hmac.Equal([]byte(got), []byte(f.mac(c.Value))) {
		return errCSRF
	}
	return nil
}
