package web

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/notify"
)

// NoticeAuthority is what the "Expiry notices" section of "my identity"
// needs: the person's contact details (the webhook secret hidden unless
// just made) and the delivery log of their notices.
type NoticeAuthority interface {
	SetContact(ctx context.Context, caller *mtlsid.Certificate, req authority.ContactRequest) (*mtlsid.Contact, error)
	Contact(ctx context.Context, caller *mtlsid.Certificate) (*mtlsid.Contact, error)
	NoticeDeliveries(ctx context.Context, caller *mtlsid.Certificate, limit int) ([]mtlsid.Delivery, error)
}

// deliveriesShown is how many delivery log entries "my identity" lists.
const deliveriesShown = 20

// noticeData is the "Expiry notices" section of "my identity".
type noticeData struct {
	// Email and WebhookURL fill the form: the stored values, or what was
	// typed when the form was refused.
	Email      string
	WebhookURL string
	// SecretSet tells that a webhook secret is stored.
	SecretSet bool
	// NewSecret is a webhook secret just made, shown this once.
	NewSecret  string
	Expiries   []expiryRow
	Deliveries []mtlsid.Delivery
}

// expiryRow is one active certificate in the upcoming expiries.
type expiryRow struct {
	mtlsid.Certificate
	DaysLeft  int
	RenewalAt time.Time
	Due       bool
	Command   string
}

func (p *Pages) noticeRoutes(m *http.ServeMux) {
	m.HandleFunc("POST /my/contact", p.myContact)
	m.HandleFunc("POST /my/contact/secret", p.myContactSecret)
}

// loadNotices fills the section from the person's certificates (active
// ones, soonest expiry first), contact details and delivery log.
func (p *Pages) loadNotices(r *http.Request, me *mtlsid.Certificate, certs []mtlsid.Certificate) (noticeData, error) {
	ctx := r.Context()
	d := noticeData{}
	c, err := p.auth.Contact(ctx, me)
	switch {
	case err == nil:
		d.Email, d.WebhookURL, d.SecretSet = c.Email, c.WebhookURL, c.WebhookSecret != ""
	case mtlsid.ErrorKind(err) != mtlsid.KindNotFound:
		return d, err
	}
	if d.Deliveries, err = p.auth.NoticeDeliveries(ctx, me, deliveriesShown); err != nil {
		return d, err
	}
	now := p.now()
	server := "https://" + r.Host
	for _, c := range certs {
		if c.Status(now) != mtlsid.StatusActive {
			continue
		}
		d.Expiries = append(d.Expiries, expiryRow{Certificate: c, DaysLeft: int(c.NotAfter.Sub(now).Hours() / 24),
			RenewalAt: mtlsid.RenewalPoint(c.NotBefore, c.NotAfter), Due: c.RenewalDue(now), Command: notify.RenewCommand(&c, server)})
	}
	sort.SliceStable(d.Expiries, func(i, j int) bool { return d.Expiries[i].NotAfter.Before(d.Expiries[j].NotAfter) })
	return d, nil
}

// myContact stores where the person's expiry notices go. A refused form
// stores nothing and is shown again as typed, with the reason.
func (p *Pages) myContact(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "My identity")
	if me == nil {
		return
	}
	req := authority.ContactRequest{Email: r.PostFormValue("email"), WebhookURL: r.PostFormValue("webhook")}
	p.setContact(w, r, me, req)
}

// myContactSecret replaces the webhook's signing secret, keeping the
// stored address and URL.
func (p *Pages) myContactSecret(w http.ResponseWriter, r *http.Request) {
	me := p.requireMe(w, r, "My identity")
	if me == nil {
		return
	}
	c, err := p.auth.Contact(r.Context(), me)
	if err != nil && mtlsid.ErrorKind(err) != mtlsid.KindNotFound {
		p.fail(w, r, err)
		return
	}
	if c == nil || c.WebhookURL == "" {
		p.renderMy(w, r, http.StatusBadRequest, view{Title: "My identity", Nav: "my", Me: me,
			Error: "There is no webhook to make a new secret for. Save a webhook URL first."})
		return
	}
	p.setContact(w, r, me, authority.ContactRequest{Email: c.Email, WebhookURL: c.WebhookURL, NewSecret: true})
}

func (p *Pages) setContact(w http.ResponseWriter, r *http.Request, me *mtlsid.Certificate, req authority.ContactRequest) {
	c, err := p.auth.SetContact(r.Context(), me, req)
	if err != nil {
		status, msg := statusOf(err)
		if status >= http.StatusInternalServerError {
			p.fail(w, r, err)
			return
		}
		p.renderMyWith(w, r, status, view{Title: "My identity", Nav: "my", Me: me, Error: "Contact details not saved: " + msg + "."},
			func(d *noticeData) { d.Email, d.WebhookURL = req.Email, req.WebhookURL })
		return
	}
	v := view{Title: "My identity", Nav: "my", Me: me, Done: "Contact details saved. Expiry notices go there from now on."}
	if c.Email == "" && c.WebhookURL == "" {
		v.Done = "Contact details removed. You get no expiry notices until you add some."
	}
	secret := ""
	if c.WebhookSecret != "" && c.WebhookSecret != authority.SecretHidden {
		secret = c.WebhookSecret
		v.Done += " Copy the webhook's signing secret now: it is shown only once."
	}
	p.renderMyWith(w, r, http.StatusOK, v, func(d *noticeData) { d.NewSecret = secret })
}
