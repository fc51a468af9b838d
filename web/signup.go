package web

import (
	"encoding/base64"
	"html/template"
	"net/http"
	"regexp"
	"strings"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
)

// signupData is what the sign-up form shows.
type signupData struct {
	OpenSignup bool
	Token      string // prefilled from ?token= (a link for another device)
	Name       string
	Type       string
	Types      []string
}

// certData is a certificate whose key the authority made: the PKCS#12 is
// offered as a download link on the page itself, so it never waits on the
// server, and its password is shown once.
type certData struct {
	Heading    string
	Name       string
	DeviceType string
	Serial     string
	NotAfter   string
	// P12URL is a data: URL built here from base64 alone, so it is safe
	// to mark trusted.
	P12URL      template.URL
	P12File     string
	Password    string
	Fingerprint string
}

var personTypes = []string{mtlsid.DeviceBrowser, mtlsid.DeviceDesktop, mtlsid.DeviceMobile}

func (p *Pages) signupForm(w http.ResponseWriter, r *http.Request) {
	d := signupData{OpenSignup: p.auth.OpenSignup(), Token: strings.TrimSpace(r.URL.Query().Get("token")), Type: mtlsid.DeviceBrowser, Types: personTypes}
	me, _ := p.me(r)
	p.render(w, r, http.StatusOK, "signup.html", view{Title: "Sign up", Nav: "signup", Me: me, Data: d})
}

func (p *Pages) signupPost(w http.ResponseWriter, r *http.Request) {
	d := signupData{
		OpenSignup: p.auth.OpenSignup(), Token: strings.TrimSpace(r.PostFormValue("token")),
		Name: r.PostFormValue("name"), Type: r.PostFormValue("type"), Types: personTypes,
	}
	v := view{Title: "Sign up", Nav: "signup", Data: d}
	if p.signup != nil && !p.signup.allow(clientAddr(r)) {
		v.Error = "Too many sign-ups from your address. Wait a while and try again."
		p.render(w, r, http.StatusTooManyRequests, "signup.html", v)
		return
	}
	out, err := p.auth.SignUp(r.Context(), authority.SignUpRequest{Token: d.Token, Name: d.Name, DeviceType: d.Type})
	if err != nil {
		status, msg := statusOf(err)
		if status == http.StatusInternalServerError {
			p.log.Error("sign-up", "err", err)
		}
		v.Error = signupError(err, msg, d.Token != "")
		p.render(w, r, status, "signup.html", v)
		return
	}
	p.log.Info("browser certificate issued", "serial", out.Record.Serial, "identity", out.Record.IdentityID)
	p.render(w, r, http.StatusOK, "certificate.html", view{Title: "Your certificate", Nav: "signup", Data: p.certData("Your certificate is ready", out)})
}

func signupError(err error, msg string, withToken bool) string {
	switch mtlsid.ErrorKind(err) {
	case mtlsid.KindUnauthorized:
		if !withToken {
			return "Signing up here needs an enrollment token. Ask the administrator for one, or get one from a device of yours that already has a certificate (My identity → Add a device)."
		}
		return "That enrollment token is not valid. Check that you copied all of it, or ask for a new one."
	case mtlsid.KindUsed:
		return "That enrollment token was already used. Ask for a new one."
	case mtlsid.KindExpired:
		return "That enrollment token has expired. Ask for a new one."
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

func (p *Pages) certData(heading string, out *authority.Issued) certData {
	return certData{
		Heading: heading, Name: out.Record.Name, DeviceType: out.Record.DeviceType, Serial: out.Record.Serial,
		NotAfter: out.Record.NotAfter.UTC().Format("2006-01-02"),
		P12URL:   template.URL("data:application/x-pkcs12;base64," + base64.StdEncoding.EncodeToString(out.PKCS12)),
		P12File:  fileName(out.Record.Name) + ".p12", Password: out.Password,
		Fingerprint: mtlsid.Fingerprint(p.root.Raw),
	}
}

var unsafeFile = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// fileName turns a device name into a safe download file name.
func fileName(name string) string {
	s := strings.Trim(unsafeFile.ReplaceAllString(name, "-"), "-.")
	if s == "" {
		s = "mtlsid"
	}
	if len(s) > 40 {
		s = s[:40]
	}
	return "mtlsid-" + s
}
