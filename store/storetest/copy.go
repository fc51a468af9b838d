package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// RunCopy checks a copy of one store into another (`mtlsid migrate`). It
// fills src through the Store interface so that every table the copy
// carries holds rows, calls copy to copy src into a new store, and checks
// that the copy reads back as src does through every read method, that
// its audit chain verifies, and that it goes on working: it extends the
// chain, numbers new rows after the copied ones, and undoes a development
// certificate's journal exactly as src does.
func RunCopy(t *testing.T, src mtlsid.Store, copy func(t *testing.T) mtlsid.Store) {
	Populate(t, src)
	dst := copy(t)
	SameContents(t, src, dst)

	ctx := t.Context()
	if n, err := VerifyChain(ctx, dst, 7); err != nil {
		t.Fatalf("copied chain: %v after %d entries", err, n)
	}
	for _, s := range []mtlsid.Store{src, dst} {
		must(t, "AppendAudit", s.AppendAudit(ctx, event("copy.checked", "both")))
		must(t, "LogDelivery", s.LogDelivery(ctx, mtlsid.Delivery{Serial: "100", IdentityID: "dave", Threshold: "third",
			Channel: "email", Target: "dave@example.test", Status: "sent", At: at(50)}))
		mustIssue(t, s, mtlsid.Issuance{At: at(51), Certificate: certificate("101", "dave")})
		// The undo of the journal reads the images the copy carried.
		must(t, "Revoke", s.Revoke(ctx, mtlsid.Revocation{Serial: devSerial, At: at(52), Reason: mtlsid.ReasonKeyCompromise,
			Audit: event(mtlsid.AuditCertRevoked, devSerial)}))
	}
	SameContents(t, src, dst)
	if _, err := VerifyChain(ctx, dst, 1000); err != nil {
		t.Fatalf("chain extended after the copy: %v", err)
	}
}

// Populate fills an empty store with rows in every table the copy
// carries: identities, certificates (revoked, renewed, development),
// tokens, organizations, members, services, domains, roles, every kind of
// relation (some through a development journal whose images hold rows),
// intents, contacts, notices, deliveries, consents, invites, device names,
// CRL numbers, leases, and the audit chain of all of it.
func Populate(t *testing.T, s mtlsid.Store) {
	t.Helper()
	ctx := t.Context()
	buildWorld(t, s)

	mustCreateToken(t, s, token("unused"))
	mustCreateToken(t, s, token("dave"))
	mustIssue(t, s, enroll(at(5), "dave", "dave", "100"))
	renewal := certificate("1002b", "carol")
	renewal.RenewedFrom = serialOf(2)
	mustIssue(t, s, mtlsid.Issuance{At: at(6), Certificate: renewal, RevokeSerial: serialOf(2), RevokeReason: mtlsid.ReasonSuperseded,
		Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertRenewed, "1002b")}})
	must(t, "Revoke", s.Revoke(ctx, mtlsid.Revocation{Serial: webSerial, At: at(7), Reason: mtlsid.ReasonKeyCompromise,
		Audit: event(mtlsid.AuditCertRevoked, webSerial)}))

	must(t, "SetMember", s.SetMember(ctx, mtlsid.Member{OrgID: orgID, IdentityID: "bob", Role: mtlsid.OrgManager, CreatedAt: at(8)},
		event(mtlsid.AuditMemberSet, "bob")))
	must(t, "AddDomain", s.AddDomain(ctx, mtlsid.Domain{Name: "shop.example.test", ServiceID: appID, Challenge: "c1", CreatedAt: at(8)},
		event(mtlsid.AuditDomainAdded, "shop.example.test")))
	must(t, "AddDomain", s.AddDomain(ctx, mtlsid.Domain{Name: "api.example.test", ServiceID: appID, Challenge: "c2", CreatedAt: at(8)},
		event(mtlsid.AuditDomainAdded, "api.example.test")))
	must(t, "VerifyDomain", s.VerifyDomain(ctx, "api.example.test", "dns", at(9), event(mtlsid.AuditDomainVerified, "api.example.test")))
	for _, r := range []string{"admin", "editor", "viewer"} {
		must(t, "DefineRole", s.DefineRole(ctx, appID, r, event(mtlsid.AuditRoleDefined, r)))
	}

	// Production changes, then development ones over them, so that the
	// journal holds images of rows as well as "no row".
	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 10), prod(10, mtlsid.AuditRoleGranted, "bob")))
	must(t, "BindLocalUser", s.BindLocalUser(ctx, localUser(appID, "bob", "bobby", 10), 0, prod(10, mtlsid.AuditLocalUserBound, "bob")))
	must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 7, prod(10, mtlsid.AuditTrustAdded, "bob")))
	must(t, "SetSecret", s.SetSecret(ctx, appID, "bob", "s3cret", prod(10, mtlsid.AuditSecretSet, "bob")))
	must(t, "ReportIntrusion", s.ReportIntrusion(ctx, intrusion("r1", appID, "bob", bobSerial, 10), prod(10, mtlsid.AuditIntrusionReported, "r1")))
	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "carol", "admin", 11), dev(11, mtlsid.AuditRoleGranted, "carol")))
	must(t, "RevokeRole", s.RevokeRole(ctx, appID, "bob", "viewer", dev(12, mtlsid.AuditRoleRevoked, "bob")))
	must(t, "BindLocalUser", s.BindLocalUser(ctx, localUser(appID, "bob", "robert", 12), 0, dev(12, mtlsid.AuditLocalUserBound, "bob")))
	must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 5, dev(13, mtlsid.AuditTrustAdded, "bob")))
	must(t, "SetSecret", s.SetSecret(ctx, appID, "bob", "changed", dev(13, mtlsid.AuditSecretSet, "bob")))
	must(t, "WithdrawIntrusion", s.WithdrawIntrusion(ctx, appID, "r1", dev(14, mtlsid.AuditIntrusionWithdrawn, "r1")))
	must(t, "ReportIntrusion", s.ReportIntrusion(ctx, intrusion("r2", appID, "carol", "1002b", 14), dev(14, mtlsid.AuditIntrusionReported, "r2")))
	must(t, "RecordConsent", s.RecordConsent(ctx, appID, "bob", at(15), event(mtlsid.AuditConsent, "bob")))
	must(t, "RecordConsent", s.RecordConsent(ctx, webID, "alice", at(15), event(mtlsid.AuditConsent, "alice")))

	for _, ref := range []string{"open", "resolved"} {
		must(t, "CreateIntent", s.CreateIntent(ctx, newIntent(ref)))
	}
	must(t, "ResolveIntent", s.ResolveIntent(ctx, mtlsid.HashToken("resolved"), "bob", bobSerial, at(16), event(mtlsid.AuditIntentResolved, "resolved")))

	for _, id := range []string{"alice", "dave"} {
		must(t, "SetContact", s.SetContact(ctx, contact(id), event(mtlsid.AuditContactSet, id)))
	}
	must(t, "RecordNotice", s.RecordNotice(ctx, mtlsid.SentNotice{Serial: "100", Threshold: "third", SentAt: at(17)}))
	for i, status := range []string{"failed", "sent"} {
		must(t, "LogDelivery", s.LogDelivery(ctx, mtlsid.Delivery{Serial: "100", IdentityID: "dave", Threshold: "third", Channel: "webhook",
			Target: "https://hooks.example.test/dave", Status: status, Error: fmt.Sprint("try ", i), At: at(17 + i)}))
	}
	if ok, err := s.AcquireLease(ctx, "crl", "node-a", time.Hour, at(18)); err != nil || !ok {
		t.Fatalf("AcquireLease: %v %v", ok, err)
	}

	for _, secret := range []string{"inv1", "inv2"} {
		must(t, "CreateInvite", s.CreateInvite(ctx, invite(secret, orgID, mtlsid.OrgMember), event(mtlsid.AuditInviteCreated, orgID)))
	}
	if _, err := s.AcceptInvite(ctx, mtlsid.HashToken("inv2"), "dave", at(19), event(mtlsid.AuditInviteAccepted, "dave")); err != nil {
		t.Fatalf("AcceptInvite: %v", err)
	}
	must(t, "SetDeviceName", s.SetDeviceName(ctx, "100", "dave's laptop", event(mtlsid.AuditDeviceRenamed, "100")))
	for range 2 {
		if _, err := s.NextCRLNumber(ctx); err != nil {
			t.Fatalf("NextCRLNumber: %v", err)
		}
	}
	if f, ok := s.(secretStore); ok {
		if _, err := f.SharedSecret(ctx, "copy-test", []byte("key of the form tokens")); err != nil {
			t.Fatalf("SharedSecret: %v", err)
		}
	}
	must(t, "AppendAudit", s.AppendAudit(ctx, event(mtlsid.AuditAuthorityStarted, "node-a"), event("test.last", "end")))
}

// secretStore is the part of a fleet-ready store that keeps secrets the
// nodes share; a copy must carry them, or sessions and form tokens made
// before it would stop working.
type secretStore interface {
	SharedSecret(ctx context.Context, name string, fresh []byte) ([]byte, error)
}

// SameContents checks that a and b read the same through every read
// method, for every key Populate wrote.
func SameContents(t *testing.T, a, b mtlsid.Store) {
	t.Helper()
	ctx := t.Context()
	same := func(what string, read func(s mtlsid.Store) (any, error)) {
		t.Helper()
		va, errA := read(a)
		vb, errB := read(b)
		if fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Errorf("%s: source error %v, copy error %v", what, errA, errB)
			return
		}
		diff(t, what+" (-source +copy)", vb, va)
	}
	identities := []string{"alice", "bob", "carol", "dave", appID, webID}
	serials := []string{serialOf(0), serialOf(1), serialOf(2), "1002b", "100", "101", devSerial, prodSerial, webSerial}
	services := []string{appID, webID}

	for _, secret := range []string{"unused", "dave"} {
		same("Token "+secret, func(s mtlsid.Store) (any, error) { return s.Token(ctx, mtlsid.HashToken(secret)) })
	}
	for _, serial := range serials {
		same("Certificate "+serial, func(s mtlsid.Store) (any, error) { return s.Certificate(ctx, serial) })
		same("DevelopmentJournal "+serial, func(s mtlsid.Store) (any, error) { return s.DevelopmentJournal(ctx, serial) })
		same("SentNotices "+serial, func(s mtlsid.Store) (any, error) { return s.SentNotices(ctx, serial) })
	}
	same("RevokedCertificates", func(s mtlsid.Store) (any, error) { return s.RevokedCertificates(ctx, at(0)) })
	same("NextCRLNumber", func(s mtlsid.Store) (any, error) { return s.NextCRLNumber(ctx) })
	for _, id := range identities {
		same("Identity "+id, func(s mtlsid.Store) (any, error) { return s.Identity(ctx, id) })
		same("IdentityCertificates "+id, func(s mtlsid.Store) (any, error) { return s.IdentityCertificates(ctx, id) })
		same("Memberships "+id, func(s mtlsid.Store) (any, error) { return s.Memberships(ctx, id) })
		same("IdentityGrants "+id, func(s mtlsid.Store) (any, error) { return s.IdentityGrants(ctx, id) })
		same("Contact "+id, func(s mtlsid.Store) (any, error) { return s.Contact(ctx, id) })
		same("Deliveries "+id, func(s mtlsid.Store) (any, error) { return s.Deliveries(ctx, id, 100) })
		same("IdentityConsents "+id, func(s mtlsid.Store) (any, error) { return s.IdentityConsents(ctx, id) })
		same("DeviceNames "+id, func(s mtlsid.Store) (any, error) { return s.DeviceNames(ctx, id) })
		for _, svc := range services {
			same("Relation "+svc+" "+id, func(s mtlsid.Store) (any, error) { return s.Relation(ctx, svc, id) })
		}
	}
	same("Org", func(s mtlsid.Store) (any, error) { return s.Org(ctx, orgID) })
	same("OrgMembers", func(s mtlsid.Store) (any, error) { return s.OrgMembers(ctx, orgID) })
	same("OrgServices", func(s mtlsid.Store) (any, error) { return s.OrgServices(ctx, orgID) })
	same("OrgInvites", func(s mtlsid.Store) (any, error) { return s.OrgInvites(ctx, orgID) })
	for _, svc := range services {
		same("Service "+svc, func(s mtlsid.Store) (any, error) { return s.Service(ctx, svc) })
		same("ServiceDomains "+svc, func(s mtlsid.Store) (any, error) { return s.ServiceDomains(ctx, svc) })
		same("ServiceRoles "+svc, func(s mtlsid.Store) (any, error) { return s.ServiceRoles(ctx, svc) })
		same("ServiceGrants "+svc, func(s mtlsid.Store) (any, error) { return s.ServiceGrants(ctx, svc) })
		same("ServiceConsents "+svc, func(s mtlsid.Store) (any, error) { return s.ServiceConsents(ctx, svc) })
		for _, name := range []string{"bobby", "robert"} {
			same("LocalUserIdentity "+svc+" "+name, func(s mtlsid.Store) (any, error) { return s.LocalUserIdentity(ctx, svc, name) })
		}
	}
	for _, d := range []string{"shop.example.test", "api.example.test", appID + ".mtlsid.test"} {
		same("Domain "+d, func(s mtlsid.Store) (any, error) { return s.Domain(ctx, d) })
	}
	for _, ref := range []string{"open", "resolved"} {
		same("Intent "+ref, func(s mtlsid.Store) (any, error) { return s.Intent(ctx, mtlsid.HashToken(ref)) })
	}
	if _, ok := a.(secretStore); ok {
		same("SharedSecret", func(s mtlsid.Store) (any, error) {
			f, ok := s.(secretStore)
			if !ok {
				return nil, fmt.Errorf("%T keeps no shared secrets", s)
			}
			return f.SharedSecret(ctx, "copy-test", []byte("a value that must not win"))
		})
	}
	same("AuditLog", func(s mtlsid.Store) (any, error) { return s.AuditLog(ctx, 0, 100000) })
}
