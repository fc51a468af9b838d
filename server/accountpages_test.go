package server_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// intentRef asks for a redirect sign-on to the service's default domain.
func (e *env) intentRef(api *device) string {
	e.t.Helper()
	r := e.call(api, http.MethodPut, idwire.ObjIntent, idwire.Intent{ReturnURL: "https://shop.acme.mtls.test/back"})
	var ref idwire.IntentReference
	if err := r.Decode(&ref); err != nil || ref.Value == "" {
		e.t.Fatalf("intent: %s %s", r.Object, r.Body)
	}
	return ref.Value
}

// lastAuditType returns the type of the newest audit entry.
func (e *env) lastAuditType() string {
	e.t.Helper()
	n := e.auditLen()
	log, err := e.store.AuditLog(context.Background(), int64(n-1), 1)
	if err != nil || len(log) != 1 {
		e.t.Fatalf("audit log: %v %v", log, err)
	}
	return log[0].Type
}

// TestSharedServicesPage: "my identity" lists the services the person
// shared their identity with; withdrawing makes the service's inquiries
// answer PB 0003 again at once and the next sign-on ask again.
func TestSharedServicesPage(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		admin := e.enroll("admin", mtlsid.TokenDevice)
		svc := e.org(admin, "acme", "shop")
		api := e.apiCert(admin, svc.ID, false)
		person := e.enroll("anna", mtlsid.TokenDevice)
		hc := e.browser(person)

		if _, body := getPage(t, hc, e.url+"/my"); !strings.Contains(body, "not shared your identity with any service") {
			t.Errorf("before sharing:\n%s", body)
		}
		e.signon(person, e.intentRef(api))
		if r, _ := e.inquire(api, person.serial); r.Outcome() == idwire.PB0003 {
			t.Fatalf("inquiry after sharing: %s", r.Outcome())
		}
		_, body := getPage(t, hc, e.url+"/my")
		if !strings.Contains(body, `data-service="shop.acme"`) || !strings.Contains(body, "Stop sharing with shop.acme") {
			t.Fatalf("shared service not listed:\n%s", body)
		}

		st, body := submit(t, hc, e.url, "/my", "/my/unshare", url.Values{"service": {svc.ID}})
		if st != http.StatusOK || !strings.Contains(body, "asks again") || strings.Contains(body, `data-service="shop.acme"`) {
			t.Fatalf("withdraw: %d\n%s", st, body)
		}
		if got := e.lastAuditType(); got != mtlsid.AuditConsentWithdrawn {
			t.Errorf("audit after withdrawing: %s", got)
		}
		// The read cache dropped the relation: no wait for its TTL.
		if r, _ := e.inquire(api, person.serial); r.Outcome() != idwire.PB0003 {
			t.Errorf("inquiry after withdrawing: %s, want PB 0003", r.Outcome())
		}
		if st, body := getPage(t, hc, e.url+"/signon/"+e.intentRef(api)); st != http.StatusOK || !strings.Contains(body, "Share") {
			t.Errorf("sign-on after withdrawing did not ask again: %d\n%s", st, body)
		}
		if st, body := submit(t, hc, e.url, "/my", "/my/unshare", url.Values{"service": {svc.ID}}); st != http.StatusNotFound || !strings.Contains(body, "not shared") {
			t.Errorf("withdrawing twice: %d\n%s", st, body)
		}
	})
}

var inviteLinkRE = regexp.MustCompile(`id="invite-link">https://[^/]+(/join\?invite=[^<]+)<`)

// TestInvitesAndPeople: the organization page lists members and makes
// one-time invite links; a person with a device certificate accepts one
// and is a member; the service page offers the people who identified to
// it or are members, and lists what revoking a development certificate
// undoes.
func TestInvitesAndPeople(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		admin := e.enroll("admin", mtlsid.TokenDevice)
		svc := e.org(admin, "acme", "shop")
		hc := e.browser(admin)
		anna := e.enroll("anna", mtlsid.TokenDevice)
		annaID := e.record(anna).IdentityID

		st, body := submit(t, hc, e.url, "/orgs/acme", "/orgs/acme/invites", url.Values{"role": {string(mtlsid.OrgManager)}, "days": {"7"}})
		m := inviteLinkRE.FindStringSubmatch(body)
		if st != http.StatusOK || m == nil {
			t.Fatalf("make invite: %d\n%s", st, body)
		}
		if got := e.lastAuditType(); got != mtlsid.AuditInviteCreated {
			t.Errorf("audit after inviting: %s", got)
		}
		link := strings.ReplaceAll(m[1], "&amp;", "&")
		if strings.Contains(body, "/join?invite=") && strings.Count(body, "/join?invite=") != 1 {
			t.Error("the invite link is listed besides being shown once")
		}
		// Only administrators invite.
		if st, _ := submit(t, e.browser(anna), e.url, "/my", "/orgs/acme/invites", url.Values{"role": {string(mtlsid.OrgMember)}}); st != http.StatusForbidden {
			t.Errorf("a stranger inviting: %d", st)
		}

		// Without a certificate the link explains what to do.
		if st, body := getPage(t, e.browser(nil), e.url+link); st != http.StatusUnauthorized || !strings.Contains(body, "/signup") {
			t.Errorf("invite without a certificate: %d\n%s", st, body)
		}
		ahc := e.browser(anna)
		if _, body := getPage(t, ahc, e.url+link); !strings.Contains(body, "Accept the invite") {
			t.Fatalf("invite page:\n%s", body)
		}
		if ms, _ := e.store.Memberships(ctx, annaID); len(ms) != 0 {
			t.Fatal("opening the link made a member before accepting")
		}
		u, _ := url.Parse(link)
		st, body = submit(t, ahc, e.url, link, "/join", url.Values{"invite": {u.Query().Get("invite")}})
		if st != http.StatusOK || !strings.Contains(body, "You joined") || !strings.Contains(body, `data-member="`+annaID+`"`) {
			t.Fatalf("accept: %d\n%s", st, body)
		}
		if m, err := e.store.Member(ctx, "acme", annaID); err != nil || m.Role != mtlsid.OrgManager {
			t.Errorf("anna's membership: %+v %v", m, err)
		}
		bob := e.enroll("bob", mtlsid.TokenDevice)
		if st, body := submit(t, e.browser(bob), e.url, link, "/join", url.Values{"invite": {u.Query().Get("invite")}}); st != http.StatusGone || !strings.Contains(body, "already used") {
			t.Errorf("invite used twice: %d\n%s", st, body)
		}
		if _, body := getPage(t, hc, e.url+"/orgs/acme"); !strings.Contains(body, "used by") {
			t.Errorf("used invite not listed as used:\n%s", body)
		}

		// Carol identifies to the service by a redirect sign-on; the
		// picker offers her and anna, not bob.
		api := e.apiCert(admin, svc.ID, false)
		carol := e.enroll("carol", mtlsid.TokenDevice)
		carolID := e.record(carol).IdentityID
		e.signon(carol, e.intentRef(api))
		if err := e.auth.DefineRole(ctx, e.record(admin), svc.ID, "editor"); err != nil {
			t.Fatal(err)
		}
		page := "/services/" + svc.ID
		_, body = getPage(t, hc, e.url+page)
		for _, id := range []string{carolID, annaID} {
			if !strings.Contains(body, `<option value="`+id+`">`) {
				t.Errorf("picker lacks %s", id)
			}
		}
		if strings.Contains(body, `<option value="`+e.record(bob).IdentityID+`">`) {
			t.Error("picker offers someone unknown to the service")
		}
		st, body = submit(t, hc, e.url, page, page+"/grantto", url.Values{"identity": {carolID}, "role": {"editor"}})
		if st != http.StatusOK || !strings.Contains(body, `data-grant="`+carolID+`/editor"`) {
			t.Fatalf("grant to carol: %d\n%s", st, body)
		}
		if st, _ := submit(t, hc, e.url, page, page+"/grantto", url.Values{"identity": {e.record(bob).IdentityID}, "role": {"editor"}}); st != http.StatusBadRequest {
			t.Errorf("grant to a stranger by ID: %d", st)
		}

		// A development certificate's changes, listed before revoking.
		dev := e.apiCert(admin, svc.ID, true)
		if err := e.auth.GrantRole(ctx, e.record(dev), svc.ID, anna.serial, "editor"); err != nil {
			t.Fatal(err)
		}
		if err := e.auth.RevokeGrant(ctx, e.record(dev), svc.ID, carolID, "editor"); err != nil {
			t.Fatal(err)
		}
		_, body = getPage(t, hc, e.url+page)
		if !strings.Contains(body, "Revoking 2 changes") || !strings.Contains(body, "role editor of <code>"+annaID+"</code>, removed") ||
			!strings.Contains(body, "role editor of <code>"+carolID+"</code>, put back") {
			t.Fatalf("journal not listed:\n%s", body)
		}
		if strings.Index(body, carolID+"</code>, put back") > strings.Index(body, annaID+"</code>, removed") {
			t.Error("journal not newest first")
		}
		st, body = submit(t, hc, e.url, page, page+"/revoke", url.Values{"serial": {dev.serial}})
		if st != http.StatusOK || strings.Contains(body, "Revoking 2 changes") || !strings.Contains(body, `data-grant="`+carolID+`/editor"`) ||
			strings.Contains(body, `data-grant="`+annaID+`/editor"`) {
			t.Errorf("after revoking the development certificate: %d\n%s", st, body)
		}
	})
}

// TestRenameOtherDevice: another device gets a name on the pages; the
// certificate keeps its own, and another identity's device is refused.
func TestRenameOtherDevice(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		laptop := e.enroll("laptop", mtlsid.TokenDevice)
		hc := e.browser(laptop)
		_, body := submit(t, hc, e.url, "/my", "/my/token", url.Values{})
		m := regexp.MustCompile(`id="token">(mtid_[^<]+)<`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no token:\n%s", body)
		}
		_, body = submit(t, e.browser(nil), e.url, "/signup?token="+m[1], "/signup", url.Values{"token": {m[1]}, "name": {"phone"}, "type": {"Mobile"}})
		phone := browserCert(t, body)
		st, body := submit(t, hc, e.url, "/my", "/my/rename", url.Values{"serial": {phone.serial}, "name": {"work phone"}})
		if st != http.StatusOK || !strings.Contains(body, "The device was renamed") || !strings.Contains(body, "work phone <span class=\"muted\">(certificate: phone)") {
			t.Fatalf("rename: %d\n%s", st, body)
		}
		if got := e.lastAuditType(); got != mtlsid.AuditDeviceRenamed {
			t.Errorf("audit after renaming: %s", got)
		}
		if rec := e.record(phone); rec.Name != "phone" {
			t.Errorf("the certificate's name changed to %q", rec.Name)
		}
		// Back to the certificate's name.
		if _, body = submit(t, hc, e.url, "/my", "/my/rename", url.Values{"serial": {phone.serial}, "name": {""}}); strings.Contains(body, "(certificate: phone)") {
			t.Errorf("name not cleared:\n%s", body)
		}
		other := e.enroll("other", mtlsid.TokenDevice)
		if st, _ := submit(t, hc, e.url, "/my", "/my/rename", url.Values{"serial": {other.serial}, "name": {"mine"}}); st != http.StatusForbidden {
			t.Errorf("renaming another identity's device: %d", st)
		}
		if st, _ := submit(t, hc, e.url, "/my", "/my/rename", url.Values{"serial": {phone.serial}, "name": {"bad\x01"}}); st != http.StatusBadRequest {
			t.Errorf("a name with a control character: %d", st)
		}
	})
}
