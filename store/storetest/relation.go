package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// prod is a change made with app's production certificate at minute m.
func prod(m int, typ, subject string) mtlsid.Change {
	return mtlsid.Change{At: at(m), By: prodSerial, Audit: event(typ, subject)}
}

// dev is a change made with app's development certificate at minute m.
func dev(m int, typ, subject string) mtlsid.Change {
	return mtlsid.Change{At: at(m), By: devSerial, Development: true, Audit: event(typ, subject)}
}

func grant(serviceID, identityID, role string, m int) mtlsid.RoleGrant {
	return mtlsid.RoleGrant{ServiceID: serviceID, IdentityID: identityID, Role: role, CreatedAt: at(m)}
}

func localUser(serviceID, identityID, name string, m int) mtlsid.LocalUser {
	return mtlsid.LocalUser{ServiceID: serviceID, IdentityID: identityID, Name: name, AgeDays: 100 + m, CreatedAt: at(m)}
}

func intrusion(ref, serviceID, identityID, serial string, m int) mtlsid.Intrusion {
	return mtlsid.Intrusion{Ref: ref, ServiceID: serviceID, IdentityID: identityID, Serial: serial,
		Severity: "high", Message: "report " + ref, Detail: `{"ref":"` + ref + `"}`, CreatedAt: at(m)}
}

// mustRelation returns Relation's answer, having checked that Inquiry,
// through the identity's certificate in the world, reads the same.
func mustRelation(t testing.TB, s mtlsid.Store, serviceID, identityID string) mtlsid.Relation {
	t.Helper()
	r, err := s.Relation(t.Context(), serviceID, identityID)
	if err != nil {
		t.Fatalf("Relation(%s, %s): %v", serviceID, identityID, err)
	}
	if i := slices.Index([]string{"alice", "bob", "carol"}, identityID); i >= 0 {
		rec, err := s.Inquiry(t.Context(), serviceID, serialOf(i))
		if err != nil {
			t.Fatalf("Inquiry(%s, %s): %v", serviceID, serialOf(i), err)
		}
		diff(t, "Inquiry's relation of "+serviceID+" and "+identityID, rec.Relation, *r)
	}
	return *r
}

// testInquiry: Inquiry reads the certificate and the identity's creation
// as Certificate and Identity do (the relation is checked with every
// mustRelation).
func testInquiry(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 10), prod(10, mtlsid.AuditRoleGranted, "bob")))
	for _, serial := range []string{bobSerial, prodSerial} {
		rec, err := s.Inquiry(ctx, appID, serial)
		must(t, "Inquiry("+serial+")", err)
		c, err := s.Certificate(ctx, serial)
		must(t, "Certificate", err)
		diff(t, "Inquiry's certificate "+serial, rec.Certificate, *c)
		id, err := s.Identity(ctx, c.IdentityID)
		must(t, "Identity", err)
		if !rec.IdentityCreated.Equal(id.CreatedAt) {
			t.Errorf("Inquiry(%s): identity created %v; want %v", serial, rec.IdentityCreated, id.CreatedAt)
		}
	}
	if rec, err := s.Inquiry(ctx, appID, bobSerial); err != nil || !slices.Equal(rec.Relation.Roles, []string{"viewer"}) {
		t.Errorf("Inquiry(app, bob): roles %v, %v; want [viewer]", rec.Relation.Roles, err)
	}
	rec, err := s.Inquiry(ctx, "nope.acme", bobSerial)
	must(t, "Inquiry for a service that does not exist", err)
	diff(t, "relation to a service that does not exist", rec.Relation, mtlsid.Relation{})
	for _, serial := range []string{"999999", "", "\xff", "1\x00"} {
		_, err := s.Inquiry(ctx, appID, serial)
		wantErr(t, fmt.Sprintf("Inquiry(%q)", serial), err, mtlsid.ErrNotFound)
	}
}

func testRelation(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("never seen", func(t *testing.T) {
		s := newWorld(t, open)
		for _, pair := range [][2]string{{appID, "bob"}, {"nope.acme", "ghost"}, {"\xff", "\x00"}} {
			diff(t, "relation of "+pair[0]+" and "+pair[1], mustRelation(t, s, pair[0], pair[1]), mtlsid.Relation{})
		}
	})
	t.Run("everything", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 10), prod(10, mtlsid.AuditRoleGranted, "bob")))
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "admin", 11), prod(11, mtlsid.AuditRoleGranted, "bob")))
		must(t, "GrantRole", s.GrantRole(ctx, grant(webID, "bob", "other", 11), prod(11, mtlsid.AuditRoleGranted, "bob")))
		must(t, "BindLocalUser", s.BindLocalUser(ctx, localUser(appID, "bob", "bobby", 12), 0, prod(12, mtlsid.AuditLocalUserBound, "bob")))
		must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 30, prod(13, mtlsid.AuditTrustAdded, "bob")))
		must(t, "AddTrust", s.AddTrust(ctx, webID, "bob", 12, prod(13, mtlsid.AuditTrustAdded, "bob")))
		must(t, "SetSecret", s.SetSecret(ctx, appID, "bob", "s3cret", prod(14, mtlsid.AuditSecretSet, "bob")))
		must(t, "ReportIntrusion", s.ReportIntrusion(ctx, intrusion("ir_1", appID, "bob", bobSerial, 15), prod(15, mtlsid.AuditIntrusionReported, "bob")))
		must(t, "ReportIntrusion", s.ReportIntrusion(ctx, intrusion("ir_2", webID, "bob", bobSerial, 15), prod(15, mtlsid.AuditIntrusionReported, "bob")))
		must(t, "RecordConsent", s.RecordConsent(ctx, appID, "bob", at(16), event(mtlsid.AuditConsent, "bob")))
		must(t, "RecordConsent", s.RecordConsent(ctx, webID, "bob", at(17), event(mtlsid.AuditConsent, "bob")))
		// Another identity's relations count for nothing here.
		must(t, "AddTrust", s.AddTrust(ctx, appID, "carol", 99, prod(13, mtlsid.AuditTrustAdded, "carol")))
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "carol", "carol", 11), prod(11, mtlsid.AuditRoleGranted, "carol")))

		lu := localUser(appID, "bob", "bobby", 12)
		diff(t, "app's relation to bob", mustRelation(t, s, appID, "bob"), mtlsid.Relation{
			Roles: []string{"admin", "viewer"}, LocalUser: &lu, TrustTokens: 30, Secret: "s3cret", Intrusions: 1,
			SharedAt: at(16), TrustTotal: 42, TrustSponsors: []string{appID, webID}, SitesFrequented: 2,
		})
		// A service that knows nothing of carol still sees the totals.
		diff(t, "web's relation to carol", mustRelation(t, s, webID, "carol"), mtlsid.Relation{
			TrustTotal: 99, TrustSponsors: []string{appID},
		})
	})
	t.Run("grant and revoke", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		n := chainLen(t, s)
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "carol", "viewer", 10), prod(10, mtlsid.AuditRoleGranted, "carol")))
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 11), prod(11, mtlsid.AuditRoleGranted, "bob")))
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "admin", 12), prod(12, mtlsid.AuditRoleGranted, "bob")))
		must(t, "GrantRole", s.GrantRole(ctx, grant(webID, "bob", "admin", 12), prod(12, mtlsid.AuditRoleGranted, "bob")))
		// Granting a held role keeps the grant as it was, and is audited.
		must(t, "GrantRole of a held role", s.GrantRole(ctx, grant(appID, "bob", "viewer", 30), prod(30, mtlsid.AuditRoleGranted, "bob")))
		// A zero CreatedAt is the change's time.
		g := grant(webID, "carol", "x", 31)
		g.CreatedAt = time.Time{}
		must(t, "GrantRole", s.GrantRole(ctx, g, prod(31, mtlsid.AuditRoleGranted, "carol")))

		grants, err := s.ServiceGrants(ctx, appID)
		must(t, "ServiceGrants", err)
		diff(t, "app's grants by identity and role", grants, []mtlsid.RoleGrant{
			grant(appID, "bob", "admin", 12), grant(appID, "bob", "viewer", 11), grant(appID, "carol", "viewer", 10)})
		grants, err = s.IdentityGrants(ctx, "bob")
		must(t, "IdentityGrants", err)
		diff(t, "bob's grants by service and role", grants, []mtlsid.RoleGrant{
			grant(appID, "bob", "admin", 12), grant(appID, "bob", "viewer", 11), grant(webID, "bob", "admin", 12)})
		grants, err = s.IdentityGrants(ctx, "carol")
		must(t, "IdentityGrants", err)
		diff(t, "carol's grants", grants, []mtlsid.RoleGrant{grant(appID, "carol", "viewer", 10), grant(webID, "carol", "x", 31)})

		must(t, "RevokeRole", s.RevokeRole(ctx, appID, "bob", "admin", prod(40, mtlsid.AuditRoleRevoked, "bob")))
		wantErr(t, "RevokeRole of a role not held", s.RevokeRole(ctx, appID, "bob", "admin", prod(41, mtlsid.AuditRoleRevoked, "bob")), mtlsid.ErrNotFound)
		wantErr(t, "RevokeRole of another service's role", s.RevokeRole(ctx, appID, "carol", "x", prod(41, mtlsid.AuditRoleRevoked, "carol")), mtlsid.ErrNotFound)
		if got := mustRelation(t, s, appID, "bob").Roles; len(got) != 1 || got[0] != "viewer" {
			t.Errorf("bob's roles at app after a revocation: %q; want [viewer]", got)
		}
		none, err := s.ServiceGrants(ctx, "nope.acme")
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("ServiceGrants of an unknown service = %#v, %v; want an empty list", none, err)
		}
		wantChainLen(t, s, n+7)
	})
	t.Run("unknown service or identity", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		n := chainLen(t, s)
		for _, pair := range [][2]string{{"nope.acme", "bob"}, {appID, "ghost"}} {
			svc, id := pair[0], pair[1]
			c := prod(10, "x", id)
			wantErr(t, "GrantRole", s.GrantRole(ctx, grant(svc, id, "r", 1), c), mtlsid.ErrNotFound)
			wantErr(t, "BindLocalUser", s.BindLocalUser(ctx, localUser(svc, id, "u", 1), 0, c), mtlsid.ErrNotFound)
			wantErr(t, "AddTrust", s.AddTrust(ctx, svc, id, 5, c), mtlsid.ErrNotFound)
			wantErr(t, "AddTrust of nothing", s.AddTrust(ctx, svc, id, 0, c), mtlsid.ErrNotFound)
			wantErr(t, "SetSecret", s.SetSecret(ctx, svc, id, "x", c), mtlsid.ErrNotFound)
			wantErr(t, "SetSecret clearing nothing", s.SetSecret(ctx, svc, id, "", c), mtlsid.ErrNotFound)
			wantErr(t, "ReportIntrusion", s.ReportIntrusion(ctx, intrusion("ir_"+id, svc, id, "5", 1), c), mtlsid.ErrNotFound)
			wantErr(t, "RecordConsent", s.RecordConsent(ctx, svc, id, at(1), c.Audit), mtlsid.ErrNotFound)
		}
		wantChainLen(t, s, n)
	})
	t.Run("invalid", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		n := chainLen(t, s)
		c := prod(10, "x", "bob")
		bad := prod(10, "x", "bob")
		bad.Audit.Detail = "\x00"
		for _, tc := range []struct {
			name string
			err  error
		}{
			{"GrantRole of no role", s.GrantRole(ctx, grant(appID, "bob", "", 1), c)},
			{"GrantRole with a NUL", s.GrantRole(ctx, grant(appID, "bob", "a\x00", 1), c)},
			{"GrantRole with a NUL in the audit", s.GrantRole(ctx, grant(appID, "bob", "a", 1), bad)},
			{"RevokeRole with invalid UTF-8", s.RevokeRole(ctx, appID, "bob", "\xff", c)},
			{"BindLocalUser of no name", s.BindLocalUser(ctx, localUser(appID, "bob", "", 1), 0, c)},
			{"BindLocalUser with a NUL", s.BindLocalUser(ctx, localUser(appID, "bob", "a\x00", 1), 0, c)},
			{"UnbindLocalUser with a NUL", s.UnbindLocalUser(ctx, appID, "a\x00", c)},
			{"AddTrust with a NUL", s.AddTrust(ctx, appID, "b\x00b", 1, c)},
			{"SetSecret with a NUL", s.SetSecret(ctx, appID, "bob", "a\x00", c)},
			{"ReportIntrusion of no ref", s.ReportIntrusion(ctx, intrusion("", appID, "bob", "1", 1), c)},
			{"ReportIntrusion with a NUL", s.ReportIntrusion(ctx, mtlsid.Intrusion{Ref: "r", ServiceID: appID, IdentityID: "bob", Message: "\x00"}, c)},
			{"WithdrawIntrusion with invalid UTF-8", s.WithdrawIntrusion(ctx, appID, "\xff", c)},
			{"RecordConsent with a NUL", s.RecordConsent(ctx, appID, "bob", at(1), bad.Audit)},
		} {
			wantKind(t, tc.name, tc.err, mtlsid.KindInvalid)
		}
		diff(t, "relation", mustRelation(t, s, appID, "bob"), mtlsid.Relation{})
		wantChainLen(t, s, n)
	})
	t.Run("local users", func(t *testing.T) { testLocalUsers(t, open) })
	t.Run("trust", func(t *testing.T) { testTrust(t, open) })
	t.Run("binding with trust", func(t *testing.T) { testBindWithTrust(t, open) })
	t.Run("inquiry", func(t *testing.T) { testInquiry(t, open) })
	t.Run("secret", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		n := chainLen(t, s)
		must(t, "SetSecret", s.SetSecret(ctx, appID, "bob", "one", prod(10, mtlsid.AuditSecretSet, "bob")))
		must(t, "SetSecret", s.SetSecret(ctx, appID, "bob", "two", prod(11, mtlsid.AuditSecretSet, "bob")))
		must(t, "SetSecret", s.SetSecret(ctx, webID, "bob", "web", prod(11, mtlsid.AuditSecretSet, "bob")))
		if got := mustRelation(t, s, appID, "bob").Secret; got != "two" {
			t.Errorf("secret %q; want %q", got, "two")
		}
		must(t, "SetSecret of the same secret", s.SetSecret(ctx, appID, "bob", "two", prod(12, mtlsid.AuditSecretSet, "bob")))
		must(t, "SetSecret clearing", s.SetSecret(ctx, appID, "bob", "", prod(13, mtlsid.AuditSecretSet, "bob")))
		must(t, "SetSecret clearing again", s.SetSecret(ctx, appID, "bob", "", prod(14, mtlsid.AuditSecretSet, "bob")))
		if got := mustRelation(t, s, appID, "bob").Secret; got != "" {
			t.Errorf("secret %q after clearing; want none", got)
		}
		if got := mustRelation(t, s, webID, "bob").Secret; got != "web" {
			t.Errorf("web's secret %q; want %q", got, "web")
		}
		wantChainLen(t, s, n+6)
	})
	t.Run("intrusions", func(t *testing.T) { testIntrusions(t, open) })
	t.Run("consent", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		n := chainLen(t, s)
		must(t, "RecordConsent", s.RecordConsent(ctx, appID, "bob", at(10), event(mtlsid.AuditConsent, "bob")))
		// Later consents change nothing, and are not audited.
		must(t, "RecordConsent again", s.RecordConsent(ctx, appID, "bob", at(20), event(mtlsid.AuditConsent, "bob")))
		must(t, "RecordConsent", s.RecordConsent(ctx, webID, "bob", at(30), event(mtlsid.AuditConsent, "bob")))
		must(t, "RecordConsent", s.RecordConsent(ctx, webID, "carol", at(30), event(mtlsid.AuditConsent, "carol")))
		r := mustRelation(t, s, appID, "bob")
		if !r.SharedAt.Equal(at(10)) || r.SitesFrequented != 2 {
			t.Errorf("after consents: SharedAt %v, SitesFrequented %d; want %v, 2", r.SharedAt, r.SitesFrequented, at(10))
		}
		wantChainLen(t, s, n+3)
	})
}

func testLocalUsers(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	n := chainLen(t, s)
	lookup := func(serviceID, name, want string) {
		t.Helper()
		got, err := s.LocalUserIdentity(ctx, serviceID, name)
		if want == "" {
			wantErr(t, "LocalUserIdentity("+name+")", err, mtlsid.ErrNotFound)
			return
		}
		if err != nil || got != want {
			t.Errorf("LocalUserIdentity(%s, %s) = %q, %v; want %q", serviceID, name, got, err, want)
		}
	}
	bobby := localUser(appID, "bob", "bobby", 10)
	must(t, "BindLocalUser", s.BindLocalUser(ctx, bobby, 0, prod(10, mtlsid.AuditLocalUserBound, "bob")))
	must(t, "BindLocalUser at web", s.BindLocalUser(ctx, localUser(webID, "carol", "bobby", 10), 0, prod(10, mtlsid.AuditLocalUserBound, "carol")))
	lookup(appID, "bobby", "bob")
	lookup(webID, "bobby", "carol")

	again := localUser(appID, "bob", "bobby", 11)
	wantErr(t, "BindLocalUser of the same binding", s.BindLocalUser(ctx, again, 0, prod(11, mtlsid.AuditLocalUserBound, "bob")), mtlsid.ErrLocalUserBound)
	wantErr(t, "BindLocalUser of another's name", s.BindLocalUser(ctx, localUser(appID, "carol", "bobby", 11), 0, prod(11, mtlsid.AuditLocalUserBound, "carol")), mtlsid.ErrLocalUserTaken)
	diff(t, "binding after refusals", mustRelation(t, s, appID, "bob").LocalUser, &bobby)

	// Binding another name replaces the identity's binding.
	robert := localUser(appID, "bob", "robert", 12)
	robert.CreatedAt = time.Time{}
	must(t, "BindLocalUser of a new name", s.BindLocalUser(ctx, robert, 0, prod(12, mtlsid.AuditLocalUserBound, "bob")))
	robert.CreatedAt = at(12) // the change's time
	lookup(appID, "bobby", "")
	lookup(appID, "robert", "bob")
	diff(t, "new binding", mustRelation(t, s, appID, "bob").LocalUser, &robert)
	// The freed name may go to another identity.
	must(t, "BindLocalUser of a freed name", s.BindLocalUser(ctx, localUser(appID, "carol", "bobby", 13), 0, prod(13, mtlsid.AuditLocalUserBound, "carol")))
	lookup(appID, "bobby", "carol")

	must(t, "UnbindLocalUser", s.UnbindLocalUser(ctx, appID, "robert", prod(14, mtlsid.AuditLocalUserUnbound, "bob")))
	wantErr(t, "UnbindLocalUser again", s.UnbindLocalUser(ctx, appID, "robert", prod(15, mtlsid.AuditLocalUserUnbound, "bob")), mtlsid.ErrNotFound)
	wantErr(t, "UnbindLocalUser at another service", s.UnbindLocalUser(ctx, webID, "nobody", prod(15, mtlsid.AuditLocalUserUnbound, "x")), mtlsid.ErrNotFound)
	lookup(appID, "robert", "")
	if lu := mustRelation(t, s, appID, "bob").LocalUser; lu != nil {
		t.Errorf("binding after UnbindLocalUser: %+v", lu)
	}
	lookup(webID, "bobby", "carol")
	wantChainLen(t, s, n+5)
}

// testBindWithTrust: a binding's tokens of trust are added in its
// transaction, so that a refused binding adds none, and a development
// certificate's binding is undone with its trust.
func testBindWithTrust(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	n := chainLen(t, s)
	tokens := func(identityID string) int {
		t.Helper()
		return mustRelation(t, s, appID, identityID).TrustTokens
	}
	must(t, "BindLocalUser with trust", s.BindLocalUser(ctx, localUser(appID, "bob", "bobby", 10), 12, prod(10, mtlsid.AuditLocalUserBound, "bob")))
	if got := tokens("bob"); got != 12 {
		t.Errorf("bob's trust after binding with 12: %d", got)
	}
	wantErr(t, "BindLocalUser of another's name with trust",
		s.BindLocalUser(ctx, localUser(appID, "carol", "bobby", 11), 40, prod(11, mtlsid.AuditLocalUserBound, "carol")), mtlsid.ErrLocalUserTaken)
	wantErr(t, "BindLocalUser of the same binding with trust",
		s.BindLocalUser(ctx, localUser(appID, "bob", "bobby", 11), 40, prod(11, mtlsid.AuditLocalUserBound, "bob")), mtlsid.ErrLocalUserBound)
	if got := tokens("carol"); got != 0 {
		t.Errorf("carol's trust after a refused binding: %d; want 0", got)
	}
	if got := tokens("bob"); got != 12 {
		t.Errorf("bob's trust after a refused binding: %d; want 12", got)
	}
	wantChainLen(t, s, n+1)

	must(t, "BindLocalUser with trust, development", s.BindLocalUser(ctx, localUser(appID, "carol", "carrie", 12), 15, dev(12, mtlsid.AuditLocalUserBound, "carol")))
	if got := tokens("carol"); got != 15 {
		t.Errorf("carol's trust after binding with 15: %d", got)
	}
	revokeDev(t, s)
	wantUndone(t, s, devSerial, 2, 50, "alice")
	if r := mustRelation(t, s, appID, "carol"); r.LocalUser != nil || r.TrustTokens != 0 {
		t.Errorf("carol after the undo: binding %+v, trust %d; want neither", r.LocalUser, r.TrustTokens)
	}
	if got := tokens("bob"); got != 12 {
		t.Errorf("bob's production trust after the undo: %d; want 12", got)
	}
}

func testTrust(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	n := chainLen(t, s)
	steps := []struct {
		service string
		add     int
		want    int // at app
		total   int
		sponsor []string
	}{
		{appID, 30, 30, 30, []string{appID}},
		{appID, -50, 0, 0, nil},
		{webID, 7, 0, 7, []string{webID}},
		{appID, 20000, 10000, 10007, []string{appID, webID}},
		{appID, 1, 10000, 10007, []string{appID, webID}},
		{appID, -1 << 62, 0, 7, []string{webID}},
		{appID, 1 << 62, 10000, 10007, []string{appID, webID}},
		{webID, 9999, 10000, 20000, []string{appID, webID}},
		{appID, -9990, 10, 10010, []string{appID, webID}},
	}
	for i, st := range steps {
		must(t, fmt.Sprintf("AddTrust step %d", i), s.AddTrust(ctx, st.service, "bob", st.add, prod(10+i, mtlsid.AuditTrustAdded, "bob")))
		r := mustRelation(t, s, appID, "bob")
		if r.TrustTokens != st.want || r.TrustTotal != st.total {
			t.Errorf("step %d (%+d at %s): tokens %d, total %d; want %d, %d", i, st.add, st.service, r.TrustTokens, r.TrustTotal, st.want, st.total)
		}
		diff(t, fmt.Sprintf("sponsors after step %d", i), r.TrustSponsors, st.sponsor)
	}
	must(t, "AddTrust of nothing", s.AddTrust(ctx, appID, "carol", 0, prod(30, mtlsid.AuditTrustAdded, "carol")))
	must(t, "AddTrust taking from nothing", s.AddTrust(ctx, appID, "carol", -5, prod(31, mtlsid.AuditTrustAdded, "carol")))
	diff(t, "carol's relation", mustRelation(t, s, appID, "carol"), mtlsid.Relation{})
	wantChainLen(t, s, n+int64(len(steps))+2)
}

func testIntrusions(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	n := chainLen(t, s)
	count := func(serviceID, identityID string, want int) {
		t.Helper()
		if got := mustRelation(t, s, serviceID, identityID).Intrusions; got != want {
			t.Errorf("%s's intrusions against %s: %d; want %d", serviceID, identityID, got, want)
		}
	}
	report := func(in mtlsid.Intrusion) error {
		return s.ReportIntrusion(ctx, in, prod(10, mtlsid.AuditIntrusionReported, in.Serial))
	}
	must(t, "ReportIntrusion", report(intrusion("ir_1", appID, "bob", bobSerial, 10)))
	must(t, "ReportIntrusion of another certificate", report(intrusion("ir_2", appID, "bob", "1777", 10)))
	must(t, "ReportIntrusion by another service", report(intrusion("ir_3", webID, "bob", bobSerial, 10)))
	wantErr(t, "ReportIntrusion of a reported certificate", report(intrusion("ir_4", appID, "bob", bobSerial, 11)), mtlsid.ErrConflict)
	wantErr(t, "ReportIntrusion with a taken ref", report(intrusion("ir_1", appID, "carol", "3", 11)), mtlsid.ErrConflict)
	count(appID, "bob", 2)
	count(webID, "bob", 1)
	count(appID, "carol", 0)

	withdraw := func(serviceID, ref string) error {
		return s.WithdrawIntrusion(ctx, serviceID, ref, prod(12, mtlsid.AuditIntrusionWithdrawn, ref))
	}
	wantErr(t, "WithdrawIntrusion of another service's report", withdraw(appID, "ir_3"), mtlsid.ErrNotFound)
	wantErr(t, "WithdrawIntrusion of an unknown ref", withdraw(appID, "ir_9"), mtlsid.ErrNotFound)
	must(t, "WithdrawIntrusion", withdraw(appID, "ir_1"))
	wantErr(t, "WithdrawIntrusion again", withdraw(appID, "ir_1"), mtlsid.ErrNotFound)
	count(appID, "bob", 1)
	count(webID, "bob", 1)
	// Once withdrawn, the certificate may be reported again.
	must(t, "ReportIntrusion after a withdrawal", report(intrusion("ir_5", appID, "bob", bobSerial, 13)))
	count(appID, "bob", 2)
	wantChainLen(t, s, n+5)
}
