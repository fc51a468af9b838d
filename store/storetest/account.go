package storetest

import (
	"testing"

	"github.com/mtlsid/mtlsid"
)

// RunAccount runs the conformance tests of the AccountStore: consents
// listed and withdrawn, development journals listed, invites, and device
// names. open is as for Run.
func RunAccount(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("Consents", func(t *testing.T) { testConsents(t, open) })
	t.Run("DevelopmentJournal", func(t *testing.T) { testDevelopmentJournal(t, open) })
	t.Run("Invites", func(t *testing.T) { testInvites(t, open) })
	t.Run("DeviceNames", func(t *testing.T) { testDeviceNames(t, open) })
}

func testConsents(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	must(t, "RecordConsent", s.RecordConsent(ctx, appID, "bob", at(16), event(mtlsid.AuditConsent, "bob")))
	must(t, "RecordConsent", s.RecordConsent(ctx, webID, "bob", at(17), event(mtlsid.AuditConsent, "bob")))
	must(t, "RecordConsent", s.RecordConsent(ctx, appID, "carol", at(18), event(mtlsid.AuditConsent, "carol")))

	cs, err := s.IdentityConsents(ctx, "bob")
	must(t, "IdentityConsents", err)
	diff(t, "bob's consents", cs, []mtlsid.Consent{
		{ServiceID: webID, IdentityID: "bob", OrgID: orgID, OrgName: "Org " + orgID, SharedAt: at(17)},
		{ServiceID: appID, IdentityID: "bob", OrgID: orgID, OrgName: "Org " + orgID, SharedAt: at(16)},
	})
	cs, err = s.ServiceConsents(ctx, appID)
	must(t, "ServiceConsents", err)
	diff(t, "app's consents", cs, []mtlsid.Consent{
		{ServiceID: appID, IdentityID: "carol", OrgID: orgID, SharedAt: at(18)},
		{ServiceID: appID, IdentityID: "bob", OrgID: orgID, SharedAt: at(16)},
	})

	n := chainLen(t, s)
	must(t, "WithdrawConsent", s.WithdrawConsent(ctx, appID, "bob", event(mtlsid.AuditConsentWithdrawn, appID)))
	if e := lastAudit(t, s); e.Seq != n+1 || e.Type != mtlsid.AuditConsentWithdrawn {
		t.Errorf("audit after withdrawing = %d %s; want %d %s", e.Seq, e.Type, n+1, mtlsid.AuditConsentWithdrawn)
	}
	rel := mustRelation(t, s, appID, "bob")
	if !rel.SharedAt.IsZero() || rel.SitesFrequented != 1 {
		t.Errorf("after withdrawing: SharedAt %v, SitesFrequented %d; want zero, 1", rel.SharedAt, rel.SitesFrequented)
	}
	cs, err = s.IdentityConsents(ctx, "bob")
	must(t, "IdentityConsents", err)
	if len(cs) != 1 || cs[0].ServiceID != webID {
		t.Errorf("bob's consents after withdrawing = %+v; want web's only", cs)
	}
	wantKind(t, "WithdrawConsent again", s.WithdrawConsent(ctx, appID, "bob", event(mtlsid.AuditConsentWithdrawn, appID)), mtlsid.KindNotFound)
	if got := chainLen(t, s); got != n+1 {
		t.Errorf("a refused withdrawal appended audit: chain %d; want %d", got, n+1)
	}
	// Sharing again counts from the new time.
	must(t, "RecordConsent", s.RecordConsent(ctx, appID, "bob", at(30), event(mtlsid.AuditConsent, "bob")))
	if rel := mustRelation(t, s, appID, "bob"); !rel.SharedAt.Equal(at(30)) {
		t.Errorf("shared again at %v; want %v", rel.SharedAt, at(30))
	}
	for _, id := range []string{"ghost", "\xff"} {
		cs, err := s.IdentityConsents(ctx, id)
		if err != nil || len(cs) != 0 {
			t.Errorf("IdentityConsents(%q) = %v, %v; want none", id, cs, err)
		}
	}
}

func testDevelopmentJournal(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 10), prod(10, mtlsid.AuditRoleGranted, "bob")))
	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "carol", "admin", 11), dev(11, mtlsid.AuditRoleGranted, "carol")))
	must(t, "RevokeRole", s.RevokeRole(ctx, appID, "bob", "viewer", dev(12, mtlsid.AuditRoleRevoked, "bob")))
	must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 5, dev(13, mtlsid.AuditTrustAdded, "bob")))
	// A change that changes nothing journals nothing.
	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "carol", "admin", 14), dev(14, mtlsid.AuditRoleGranted, "carol")))

	es, err := s.DevelopmentJournal(ctx, devSerial)
	must(t, "DevelopmentJournal", err)
	diff(t, "journal", es, []mtlsid.JournalEntry{
		{Serial: devSerial, Seq: 3, At: at(13), Kind: "trust", ServiceID: appID, IdentityID: "bob", Created: true},
		{Serial: devSerial, Seq: 2, At: at(12), Kind: "role", ServiceID: appID, IdentityID: "bob", Key: "viewer"},
		{Serial: devSerial, Seq: 1, At: at(11), Kind: "role", ServiceID: appID, IdentityID: "carol", Key: "admin", Created: true},
	})
	for _, serial := range []string{prodSerial, "404", "\xff"} {
		es, err := s.DevelopmentJournal(ctx, serial)
		if err != nil || len(es) != 0 {
			t.Errorf("DevelopmentJournal(%q) = %v, %v; want none", serial, es, err)
		}
	}
	revokeDev(t, s)
	es, err = s.DevelopmentJournal(ctx, devSerial)
	if err != nil || len(es) != 0 {
		t.Errorf("journal after revoking = %v, %v; want none (undone)", es, err)
	}
}

func invite(secret, orgID string, role mtlsid.OrgRole) mtlsid.Invite {
	return mtlsid.Invite{Hash: mtlsid.HashToken(secret), OrgID: orgID, Role: role, CreatedBy: "alice", CreatedAt: at(10), ExpiresAt: at(70)}
}

func testInvites(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	for _, in := range []mtlsid.Invite{invite("i1", orgID, mtlsid.OrgManager), invite("i2", orgID, mtlsid.OrgMember)} {
		must(t, "CreateInvite", s.CreateInvite(ctx, in, event(mtlsid.AuditInviteCreated, orgID)))
	}
	i3 := invite("i3", orgID, mtlsid.OrgAdministrator)
	i3.CreatedAt = at(11)
	must(t, "CreateInvite", s.CreateInvite(ctx, i3, event(mtlsid.AuditInviteCreated, orgID)))
	wantKind(t, "CreateInvite duplicate", s.CreateInvite(ctx, invite("i1", orgID, mtlsid.OrgMember), event(mtlsid.AuditInviteCreated, orgID)), mtlsid.KindConflict)
	wantKind(t, "CreateInvite unknown org", s.CreateInvite(ctx, invite("i9", "nope", mtlsid.OrgMember), event(mtlsid.AuditInviteCreated, "nope")), mtlsid.KindNotFound)
	wantKind(t, "CreateInvite without hash", s.CreateInvite(ctx, mtlsid.Invite{OrgID: orgID, Role: mtlsid.OrgMember}, event(mtlsid.AuditInviteCreated, orgID)), mtlsid.KindInvalid)

	n := chainLen(t, s)
	got, err := s.AcceptInvite(ctx, mtlsid.HashToken("i1"), "bob", at(20), event(mtlsid.AuditInviteAccepted, orgID))
	must(t, "AcceptInvite", err)
	want := invite("i1", orgID, mtlsid.OrgManager)
	want.UsedAt, want.UsedBy = at(20), "bob"
	diff(t, "accepted invite", *got, want)
	if c := chainLen(t, s); c != n+1 {
		t.Errorf("accepting appended %d audit entries; want 1", c-n)
	}
	m, err := s.Member(ctx, orgID, "bob")
	must(t, "Member", err)
	diff(t, "bob's membership", *m, mtlsid.Member{OrgID: orgID, IdentityID: "bob", Role: mtlsid.OrgManager, CreatedAt: at(20)})

	cases := []struct {
		name   string
		secret string
		who    string
		at     int
		kind   mtlsid.Kind
	}{
		{"used", "i1", "carol", 21, mtlsid.KindUsed},
		{"unknown", "nope", "carol", 21, mtlsid.KindUnauthorized},
		{"expired", "i2", "carol", 70, mtlsid.KindExpired},
		{"unknown identity", "i2", "ghost", 21, mtlsid.KindNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := chainLen(t, s)
			_, err := s.AcceptInvite(ctx, mtlsid.HashToken(c.secret), c.who, at(c.at), event(mtlsid.AuditInviteAccepted, orgID))
			wantKind(t, "AcceptInvite", err, c.kind)
			if got := chainLen(t, s); got != n {
				t.Errorf("a refused accept appended audit")
			}
		})
	}
	// The refused attempt by ghost left i2 unused; alice, already the
	// administrator, keeps her role when accepting a member's invite.
	_, err = s.AcceptInvite(ctx, mtlsid.HashToken("i2"), "alice", at(22), event(mtlsid.AuditInviteAccepted, orgID))
	must(t, "AcceptInvite by a member", err)
	if m, err := s.Member(ctx, orgID, "alice"); err != nil || m.Role != mtlsid.OrgAdministrator {
		t.Errorf("alice after accepting = %+v, %v; want administrator still", m, err)
	}

	ins, err := s.OrgInvites(ctx, orgID)
	must(t, "OrgInvites", err)
	if len(ins) != 3 || string(ins[0].Hash) != string(i3.Hash) {
		t.Fatalf("OrgInvites = %+v; want 3, i3 first", ins)
	}
	for _, in := range ins[1:] {
		if in.UsedAt.IsZero() {
			t.Errorf("invite for %s unused; want both older ones used", in.Role)
		}
	}
}

func testDeviceNames(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	mustIssue(t, s, mtlsid.Issuance{At: at(5), Certificate: certificate("2000", "bob")})
	must(t, "SetDeviceName", s.SetDeviceName(ctx, bobSerial, "old laptop", event(mtlsid.AuditDeviceRenamed, bobSerial)))
	must(t, "SetDeviceName", s.SetDeviceName(ctx, "2000", "phone", event(mtlsid.AuditDeviceRenamed, "2000")))
	must(t, "SetDeviceName", s.SetDeviceName(ctx, "2000", "work phone", event(mtlsid.AuditDeviceRenamed, "2000")))
	must(t, "SetDeviceName", s.SetDeviceName(ctx, serialOf(2), "carol's", event(mtlsid.AuditDeviceRenamed, serialOf(2))))
	names, err := s.DeviceNames(ctx, "bob")
	must(t, "DeviceNames", err)
	diff(t, "bob's names", names, map[string]string{bobSerial: "old laptop", "2000": "work phone"})

	must(t, "SetDeviceName clear", s.SetDeviceName(ctx, bobSerial, "", event(mtlsid.AuditDeviceRenamed, bobSerial)))
	names, err = s.DeviceNames(ctx, "bob")
	must(t, "DeviceNames", err)
	diff(t, "bob's names after clearing", names, map[string]string{"2000": "work phone"})

	n := chainLen(t, s)
	wantKind(t, "SetDeviceName unknown", s.SetDeviceName(ctx, "404", "x", event(mtlsid.AuditDeviceRenamed, "404")), mtlsid.KindNotFound)
	wantKind(t, "SetDeviceName clear unknown", s.SetDeviceName(ctx, "404", "", event(mtlsid.AuditDeviceRenamed, "404")), mtlsid.KindNotFound)
	if got := chainLen(t, s); got != n {
		t.Errorf("refused renames appended audit")
	}
}
