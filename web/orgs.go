package web

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/domainverify"
)

// OrgAuthority is what the organization and service pages need. Each
// method checks the actor's role in the organization itself.
type OrgAuthority interface {
	Orgs(ctx context.Context, actor *mtlsid.Certificate) ([]mtlsid.Member, error)
	CreateOrg(ctx context.Context, actor *mtlsid.Certificate, id, name, email string) (*mtlsid.Organization, error)
	SetMember(ctx context.Context, actor *mtlsid.Certificate, orgID, serial string, role mtlsid.OrgRole) error
	Services(ctx context.Context, actor *mtlsid.Certificate, orgID string) ([]mtlsid.Service, error)
	CreateService(ctx context.Context, actor *mtlsid.Certificate, orgID, name string) (*mtlsid.Service, error)
	Domains(ctx context.Context, actor *mtlsid.Certificate, serviceID string) ([]mtlsid.Domain, error)
	AddDomain(ctx context.Context, actor *mtlsid.Certificate, serviceID, name string) (*mtlsid.Domain, error)
	VerifyDomain(ctx context.Context, actor *mtlsid.Certificate, name string) (*mtlsid.Domain, error)
	APICerts(ctx context.Context, actor *mtlsid.Certificate, serviceID string) ([]mtlsid.Certificate, error)
	IssueAPICert(ctx context.Context, actor *mtlsid.Certificate, req authority.APICertRequest) (*authority.Issued, error)
	RevokeAPICert(ctx context.Context, actor *mtlsid.Certificate, serial string) error
	ServiceGrants(ctx context.Context, actor *mtlsid.Certificate, serviceID string) ([]string, []mtlsid.RoleGrant, error)
	DefineRole(ctx context.Context, actor *mtlsid.Certificate, serviceID, role string) error
	GrantRole(ctx context.Context, actor *mtlsid.Certificate, serviceID, serial, role string) error
	RevokeGrant(ctx context.Context, actor *mtlsid.Certificate, serviceID, identityID, role string) error
	Assist(ctx context.Context, actor *mtlsid.Certificate, serviceID string) (string, *mtlsid.Token, error)
	OrgMembers(ctx context.Context, actor *mtlsid.Certificate, orgID string) ([]authority.Person, error)
	CreateInvite(ctx context.Context, actor *mtlsid.Certificate, orgID string, role mtlsid.OrgRole, lifetime time.Duration) (string, *mtlsid.Invite, error)
	OrgInvites(ctx context.Context, actor *mtlsid.Certificate, orgID string) ([]mtlsid.Invite, error)
	DevelopmentJournal(ctx context.Context, actor *mtlsid.Certificate, serial string) ([]mtlsid.JournalEntry, error)
	GrantCandidates(ctx context.Context, actor *mtlsid.Certificate, serviceID string) ([]authority.Person, error)
	GrantRoleTo(ctx context.Context, actor *mtlsid.Certificate, serviceID, identityID, role string) error
}

func (p *Pages) orgRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /orgs", p.orgs)
	m.HandleFunc("POST /orgs", p.orgCreate)
	m.HandleFunc("GET /orgs/{org}", p.org)
	m.HandleFunc("POST /orgs/{org}/services", p.serviceCreate)
	m.HandleFunc("POST /orgs/{org}/members", p.memberSet)
	m.HandleFunc("GET /services/{svc}", p.service)
	m.HandleFunc("POST /services/{svc}/{action}", p.serviceAction)
}

func (p *Pages) orgs(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Organizations")
	if me == nil {
		return
	}
	p.renderOrgs(w, r, http.StatusOK, view{Title: "Organizations", Nav: "orgs", Me: me})
}

func (p *Pages) renderOrgs(w http.ResponseWriter, r *http.Request, status int, v view) {
	ms, err := p.auth.Orgs(r.Context(), v.Me)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v.Data = ms
	p.render(w, r, status, "orgs.html", v)
}

func (p *Pages) orgCreate(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Organizations")
	if me == nil {
		return
	}
	o, err := p.auth.CreateOrg(r.Context(), me, r.PostFormValue("id"), r.PostFormValue("name"), r.PostFormValue("email"))
	if err != nil {
		status, _ := statusOf(err)
		p.renderOrgs(w, r, status, view{Title: "Organizations", Nav: "orgs", Me: me, Error: "The organization was not created: " + mtlsid.ErrorMessage(err) + "."})
		return
	}
	http.Redirect(w, r, "/orgs/"+url.PathEscape(o.ID), http.StatusSeeOther)
}

type orgData struct {
	ID       string
	Role     mtlsid.OrgRole
	Services []mtlsid.Service
	Roles    []mtlsid.OrgRole
	Members  []authority.Person
	// Invites are listed to administrators only; Invite is a link just
	// made, shown once.
	Invites []inviteRow
	Invite  *inviteData
}

// inviteRow is an invite as the organization page lists it (never its
// link: only its hash is stored).
type inviteRow struct {
	mtlsid.Invite
	Status string // "open", "used" or "expired"
}

func (p *Pages) org(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Organization")
	if me == nil {
		return
	}
	p.renderOrg(w, r, http.StatusOK, view{Title: "Organization " + r.PathValue("org"), Nav: "orgs", Me: me, Done: doneMessage(r)})
}

func (p *Pages) renderOrg(w http.ResponseWriter, r *http.Request, status int, v view) {
	p.renderOrgWith(w, r, status, v, nil)
}

func (p *Pages) renderOrgWith(w http.ResponseWriter, r *http.Request, status int, v view, extra func(*orgData)) {
	id := r.PathValue("org")
	svcs, err := p.auth.Services(r.Context(), v.Me, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	d := orgData{ID: id, Services: svcs, Roles: []mtlsid.OrgRole{mtlsid.OrgMember, mtlsid.OrgManager, mtlsid.OrgAdministrator}}
	if ms, err := p.auth.Orgs(r.Context(), v.Me); err == nil {
		for _, m := range ms {
			if m.OrgID == id {
				d.Role = m.Role
			}
		}
	}
	if d.Members, err = p.auth.OrgMembers(r.Context(), v.Me, id); err != nil {
		p.fail(w, r, err)
		return
	}
	if d.Role == mtlsid.OrgAdministrator {
		ins, err := p.auth.OrgInvites(r.Context(), v.Me, id)
		if err != nil {
			p.fail(w, r, err)
			return
		}
		now := p.now()
		for _, in := range ins {
			row := inviteRow{Invite: in, Status: "open"}
			if !in.UsedAt.IsZero() {
				row.Status = "used"
			} else if !now.Before(in.ExpiresAt) {
				row.Status = "expired"
			}
			d.Invites = append(d.Invites, row)
		}
	}
	if extra != nil {
		extra(&d)
	}
	v.Data = d
	p.render(w, r, status, "org.html", v)
}

func (p *Pages) serviceCreate(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Organization")
	if me == nil {
		return
	}
	svc, err := p.auth.CreateService(r.Context(), me, r.PathValue("org"), r.PostFormValue("name"))
	if err != nil {
		p.orgError(w, r, me, err)
		return
	}
	http.Redirect(w, r, "/services/"+url.PathEscape(svc.ID), http.StatusSeeOther)
}

func (p *Pages) memberSet(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Organization")
	if me == nil {
		return
	}
	if err := p.auth.SetMember(r.Context(), me, r.PathValue("org"), r.PostFormValue("serial"), mtlsid.OrgRole(r.PostFormValue("role"))); err != nil {
		p.orgError(w, r, me, err)
		return
	}
	http.Redirect(w, r, "/orgs/"+url.PathEscape(r.PathValue("org"))+"?done=member", http.StatusSeeOther)
}

func (p *Pages) orgError(w http.ResponseWriter, r *http.Request, me *mtlsid.Certificate, err error) {
	status, _ := statusOf(err)
	if status == http.StatusForbidden || status == http.StatusInternalServerError {
		p.fail(w, r, err)
		return
	}
	p.renderOrg(w, r, status, view{Title: "Organization " + r.PathValue("org"), Nav: "orgs", Me: me, Error: "That did not work: " + mtlsid.ErrorMessage(err) + "."})
}

// domainRow is a domain with what to publish to verify it.
type domainRow struct {
	mtlsid.Domain
	TXTName, TXTValue, FileURL string
}

type serviceData struct {
	ID       string
	Domains  []domainRow
	APICerts []deviceRow
	Roles    []string
	Grants   []mtlsid.RoleGrant
	// People are those roles may be granted to by name (managers see
	// them); Journals are, by serial, what revoking each active
	// development certificate undoes.
	People   []authority.Person
	Journals map[string][]journalRow
	// Issued is a just-issued API certificate or agent token, shown once.
	Issued *certData
	Agent  *tokenData
}

func (p *Pages) service(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Service")
	if me == nil {
		return
	}
	p.renderService(w, r, http.StatusOK, view{Title: "Service " + r.PathValue("svc"), Nav: "orgs", Me: me, Done: doneMessage(r)}, nil)
}

func (p *Pages) renderService(w http.ResponseWriter, r *http.Request, status int, v view, extra func(*serviceData)) {
	ctx, id := r.Context(), r.PathValue("svc")
	doms, err := p.auth.Domains(ctx, v.Me, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	certs, err := p.auth.APICerts(ctx, v.Me, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	roles, grants, err := p.auth.ServiceGrants(ctx, v.Me, id)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	d := serviceData{ID: id, Roles: roles, Grants: grants, Journals: map[string][]journalRow{}}
	if people, err := p.auth.GrantCandidates(ctx, v.Me, id); err == nil {
		d.People = people
	} else if mtlsid.ErrorKind(err) != mtlsid.KindForbidden {
		p.fail(w, r, err)
		return
	}
	for _, dm := range doms {
		row := domainRow{Domain: dm}
		if !dm.Verified() && dm.Challenge != "" {
			row.TXTName, row.TXTValue = domainverify.RecordName(dm.Name), dm.Challenge
			row.FileURL = "http://" + dm.Name + domainverify.WellKnownPath(dm.Challenge)
		}
		d.Domains = append(d.Domains, row)
	}
	now := p.now()
	for _, c := range certs {
		row := deviceRow{Certificate: c, Status: c.Status(now)}
		if row.Status == mtlsid.StatusActive {
			row.DaysLeft = int(c.NotAfter.Sub(now).Hours() / 24)
			if c.Development {
				es, err := p.auth.DevelopmentJournal(ctx, v.Me, c.Serial)
				if err != nil {
					p.fail(w, r, err)
					return
				}
				for _, e := range es {
					d.Journals[c.Serial] = append(d.Journals[c.Serial], describeJournal(e))
				}
			}
		}
		d.APICerts = append(d.APICerts, row)
	}
	sort.SliceStable(d.APICerts, func(i, j int) bool { return d.APICerts[i].CreatedAt.After(d.APICerts[j].CreatedAt) })
	if extra != nil {
		extra(&d)
	}
	v.Data = d
	p.render(w, r, status, "service.html", v)
}

// serviceAction runs one form of the service page.
func (p *Pages) serviceAction(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "Service")
	if me == nil {
		return
	}
	ctx, id := r.Context(), r.PathValue("svc")
	v := view{Title: "Service " + id, Nav: "orgs", Me: me}
	var err error
	var extra func(*serviceData)
	done := ""
	switch r.PathValue("action") {
	case "domains":
		_, err = p.auth.AddDomain(ctx, me, id, r.PostFormValue("domain"))
		done = "Domain added. Publish one of the challenges below, then verify."
	case "verify":
		var d *mtlsid.Domain
		if d, err = p.auth.VerifyDomain(ctx, me, r.PostFormValue("domain")); err == nil {
			done = "Domain " + d.Name + " is verified (" + d.Method + ")."
		}
	case "apicerts":
		var out *authority.Issued
		dev := r.PostFormValue("development") == "yes"
		if out, err = p.auth.IssueAPICert(ctx, me, authority.APICertRequest{ServiceID: id, Name: r.PostFormValue("name"), Development: dev}); err == nil {
			cd := p.certData("API certificate issued", out)
			extra = func(d *serviceData) { d.Issued = &cd }
			done = "API certificate issued. Download it and note the password now: neither is shown again."
		}
	case "revoke":
		if err = p.auth.RevokeAPICert(ctx, me, r.PostFormValue("serial")); err == nil {
			done = "API certificate revoked."
		}
	case "roles":
		err = p.auth.DefineRole(ctx, me, id, r.PostFormValue("role"))
		done = "Role defined."
	case "grant":
		err = p.auth.GrantRole(ctx, me, id, r.PostFormValue("serial"), r.PostFormValue("role"))
		done = "Role granted."
	case "grantto":
		err = p.auth.GrantRoleTo(ctx, me, id, r.PostFormValue("identity"), r.PostFormValue("role"))
		done = "Role granted."
	case "ungrant":
		err = p.auth.RevokeGrant(ctx, me, id, r.PostFormValue("identity"), r.PostFormValue("role"))
		done = "Role taken away."
	case "agent":
		var secret string
		var tok *mtlsid.Token
		if secret, tok, err = p.auth.Assist(ctx, me, id); err == nil {
			td := tokenData{Token: secret, ExpiresAt: tok.ExpiresAt, Command: "mtlsid enroll " + secret + " --server https://" + r.Host + " --ca mtlsid-root.crt"}
			extra = func(d *serviceData) { d.Agent = &td }
			done = "Agent token created, valid for five minutes."
		}
	default:
		p.notFound(w, r)
		return
	}
	status := http.StatusOK
	if err != nil {
		status, _ = statusOf(err)
		if status == http.StatusForbidden || status == http.StatusInternalServerError {
			p.fail(w, r, err)
			return
		}
		v.Error = "That did not work: " + mtlsid.ErrorMessage(err) + "."
	} else {
		v.Done = done
	}
	p.renderService(w, r, status, v, extra)
}

func doneMessage(r *http.Request) string {
	switch r.URL.Query().Get("done") {
	case "member":
		return "Member saved."
	case "joined":
		return "You joined the organization."
	}
	return ""
}

// journalRow is one change a development certificate made, as the
// service page describes it.
type journalRow struct {
	At      time.Time
	Kind    string
	Subject string
	Undo    string // what revoking does to it
}

func describeJournal(e mtlsid.JournalEntry) journalRow {
	row := journalRow{At: e.At, Kind: e.Kind, Subject: e.IdentityID}
	what := map[string]string{"role": "role " + e.Key, "local_user": "local user", "trust": "trust tokens",
		"secret": "secret", "intrusion": "intrusion report " + e.Key}[e.Kind]
	if what == "" {
		what = e.Kind
	}
	row.Kind = what
	if e.Created {
		row.Undo = "removed"
	} else {
		row.Undo = "put back as before"
	}
	return row
}
