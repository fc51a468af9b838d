package web

import (
	"net/http"
	"net/url"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
)

// deviceRow is one line of the devices table.
type deviceRow struct {
	mtlsid.Certificate
	Status   mtlsid.CertStatus
	DaysLeft int
	Current  bool
	Due      bool // renewal recommended
	// Label is the name given on the pages, if it differs from the
	// certificate's own (Name, the CN).
	Label string
}

type myData struct {
	Devices []deviceRow
	Shown   int // active devices
	Hidden  int // expired or revoked, listed under "history"
	// Shared are the services the person shared their identity with.
	Shared []mtlsid.Consent
	// Notices is the "Expiry notices" section.
	Notices noticeData
}

func (p *Pages) my(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "My identity")
	if me == nil {
		return
	}
	v := view{Title: "My identity", Nav: "my", Me: me}
	switch r.URL.Query().Get("done") {
	case "revoked":
		v.Done = "The device was revoked. It can no longer identify you."
	case "unshared":
		v.Done = "The service no longer sees your identity as shared. It asks again the next time you sign on there."
	case "renamed":
		v.Done = "The device was renamed."
	}
	p.renderMy(w, r, http.StatusOK, v)
}

func (p *Pages) renderMy(w http.ResponseWriter, r *http.Request, status int, v view) {
	p.renderMyWith(w, r, status, v, nil)
}

// renderMyWith renders "my identity"; edit, if set, changes the expiry
// notices section before rendering (a refused form as typed, a secret
// shown once).
func (p *Pages) renderMyWith(w http.ResponseWriter, r *http.Request, status int, v view, edit func(*noticeData)) {
	certs, err := p.auth.Devices(r.Context(), v.Me)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	names, err := p.auth.DeviceNames(r.Context(), v.Me)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	shared, err := p.auth.MyConsents(r.Context(), v.Me)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	notices, err := p.loadNotices(r, v.Me, certs)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	if edit != nil {
		edit(&notices)
	}
	now := p.now()
	d := myData{Shared: shared, Notices: notices}
	for _, c := range certs {
		row := deviceRow{Certificate: c, Status: c.Status(now), Current: c.Serial == v.Me.Serial, Due: c.RenewalDue(now), Label: names[c.Serial]}
		if row.Status == mtlsid.StatusActive {
			row.DaysLeft = int(c.NotAfter.Sub(now).Hours() / 24)
			d.Shown++
		} else {
			d.Hidden++
		}
		d.Devices = append(d.Devices, row)
	}
	v.Data = d
	p.render(w, r, status, "my.html", v)
}

func (p *Pages) myRevoke(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "My identity")
	if me == nil {
		return
	}
	serial := r.PostFormValue("serial")
	if serial == me.Serial && r.PostFormValue("confirm") != "yes" {
		v := view{Title: "My identity", Nav: "my", Me: me, Error: "That is the certificate this browser is using. Revoking it signs this browser out for good; tick the confirmation to do it."}
		p.renderMy(w, r, http.StatusBadRequest, v)
		return
	}
	if err := p.auth.Revoke(r.Context(), me, serial, mtlsid.ReasonCessationOfOperation); err != nil {
		v := view{Title: "My identity", Nav: "my", Me: me, Error: "The device was not revoked: " + mtlsid.ErrorMessage(err) + "."}
		status, _ := statusOf(err)
		p.renderMy(w, r, status, v)
		return
	}
	if serial == me.Serial {
		p.render(w, r, http.StatusOK, "message.html", view{Title: "Certificate revoked", Message: "This browser's certificate is revoked. Remove it from the browser's certificate settings; sign up again to get a new one."})
		return
	}
	http.Redirect(w, r, "/my?done=revoked", http.StatusSeeOther)
}

type tokenData struct {
	Token     string
	ExpiresAt time.Time
	Command   string
	Link      string
}

func (p *Pages) myToken(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Add a device")
	if me == nil {
		return
	}
	secret, tok, err := p.auth.DeviceToken(r.Context(), me, r.PostFormValue("label"), 0)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	base := "https://" + r.Host
	d := tokenData{
		Token: secret, ExpiresAt: tok.ExpiresAt,
		Command: "mtlsid enroll " + secret + " --server " + base + " --ca mtlsid-root.crt",
		Link:    base + "/signup?token=" + url.QueryEscape(secret),
	}
	p.render(w, r, http.StatusOK, "token.html", view{Title: "Add a device", Nav: "my", Me: me, Data: d})
}

func (p *Pages) myRenew(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Renew")
	if me == nil {
		return
	}
	rn, err := p.auth.Renew(r.Context(), me, authority.RenewRequest{Name: r.PostFormValue("name")})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	d := p.certData("Your new certificate is ready", rn.Issued)
	p.render(w, r, http.StatusOK, "certificate.html", view{Title: "Your new certificate", Nav: "my", Me: me, Data: d})
}
