package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/mtlsid/mtlsid"
)

// AccountAuthority is what "my identity" needs besides devices: the
// services the person shared their identity with, device names, and
// invites to accept.
type AccountAuthority interface {
	MyConsents(ctx context.Context, caller *mtlsid.Certificate) ([]mtlsid.Consent, error)
	WithdrawConsent(ctx context.Context, caller *mtlsid.Certificate, serviceID string) error
	RenameDevice(ctx context.Context, caller *mtlsid.Certificate, serial, name string) error
	DeviceNames(ctx context.Context, caller *mtlsid.Certificate) (map[string]string, error)
	AcceptInvite(ctx context.Context, caller *mtlsid.Certificate, secret string) (*mtlsid.Invite, error)
}

func (p *Pages) accountRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /my/unshare", p.myUnshare)
	m.HandleFunc("POST /my/rename", p.myRename)
	m.HandleFunc("GET /join", p.joinForm)
	m.HandleFunc("POST /join", p.joinPost)
	m.HandleFunc("POST /orgs/{org}/invites", p.inviteCreate)
}

func (p *Pages) myUnshare(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "My identity")
	if me == nil {
		return
	}
	if err := p.auth.WithdrawConsent(r.Context(), me, r.PostFormValue("service")); err != nil {
		status, _ := statusOf(err)
		p.renderMy(w, r, status, view{Title: "My identity", Nav: "my", Me: me, Error: "Nothing was withdrawn: " + mtlsid.ErrorMessage(err) + "."})
		return
	}
	http.Redirect(w, r, "/my?done=unshared#shared", http.StatusSeeOther)
}

// myRename names another device on the pages. The certificate keeps its
// CN until that device renews; this browser is renamed by renewing.
func (p *Pages) myRename(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "My identity")
	if me == nil {
		return
	}
	if err := p.auth.RenameDevice(r.Context(), me, r.PostFormValue("serial"), r.PostFormValue("name")); err != nil {
		status, _ := statusOf(err)
		p.renderMy(w, r, status, view{Title: "My identity", Nav: "my", Me: me, Error: "The device was not renamed: " + mtlsid.ErrorMessage(err) + "."})
		return
	}
	http.Redirect(w, r, "/my?done=renamed", http.StatusSeeOther)
}

type joinData struct{ Invite string }

// joinForm shows the invite's confirmation form. Opening the link changes
// nothing (link previews and prefetching open links too); the person
// accepts with the form's POST.
func (p *Pages) joinForm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	me := p.requireMe(w, r, "Join an organization")
	if me == nil {
		return
	}
	p.render(w, r, http.StatusOK, "join.html", view{Title: "Join an organization", Nav: "orgs", Me: me, Data: joinData{Invite: r.URL.Query().Get("invite")}})
}

func (p *Pages) joinPost(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	me := p.requireMe(w, r, "Join an organization")
	if me == nil {
		return
	}
	in, err := p.auth.AcceptInvite(r.Context(), me, r.PostFormValue("invite"))
	if err != nil {
		status, msg := statusOf(err)
		if status == http.StatusInternalServerError || status == http.StatusServiceUnavailable {
			p.fail(w, r, err)
			return
		}
		p.render(w, r, status, "message.html", view{Title: "Invite not accepted", Nav: "orgs", Me: me,
			Error: "This invite link cannot be used: " + msg + ". Ask the organization's administrator for a new one."})
		return
	}
	http.Redirect(w, r, "/orgs/"+url.PathEscape(in.OrgID)+"?done=joined", http.StatusSeeOther)
}

// inviteData is a just-made invite link, shown once.
type inviteData struct {
	Link      string
	Role      mtlsid.OrgRole
	ExpiresAt time.Time
}

func (p *Pages) inviteCreate(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Organization")
	if me == nil {
		return
	}
	days, _ := strconv.Atoi(r.PostFormValue("days"))
	if days < 1 {
		days = 7
	}
	secret, in, err := p.auth.CreateInvite(r.Context(), me, r.PathValue("org"), mtlsid.OrgRole(r.PostFormValue("role")), time.Duration(days)*24*time.Hour)
	if err != nil {
		p.orgError(w, r, me, err)
		return
	}
	d := inviteData{Link: "https://" + r.Host + "/join?invite=" + url.QueryEscape(secret), Role: in.Role, ExpiresAt: in.ExpiresAt}
	p.renderOrgWith(w, r, http.StatusOK, view{Title: "Organization " + r.PathValue("org"), Nav: "orgs", Me: me,
		Done: "Invite link made. Copy it now: it is shown only once, and works once."}, func(o *orgData) { o.Invite = &d })
}
