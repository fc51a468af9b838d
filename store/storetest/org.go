package storetest

import (
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// The world most tests of organizations, relations and intents start
// from: organization acme, administered by alice, with services app and
// web; people alice, bob and carol; for app a development API certificate
// and a production one, and for web a production one.
const (
	orgID      = "acme"
	appID      = "app.acme"
	webID      = "web.acme"
	devSerial  = "900" // app's development certificate
	prodSerial = "901" // app's production certificate
	webSerial  = "911" // web's production certificate
)

func org(id string) mtlsid.Organization {
	return mtlsid.Organization{ID: id, Name: "Org " + id, Email: "admin@" + id + ".test", CreatedAt: at(1)}
}

func service(name, orgID string, minutes int) (mtlsid.Service, mtlsid.Domain) {
	id := mtlsid.ServiceID(name, orgID)
	return mtlsid.Service{ID: id, OrgID: orgID, Name: name, CreatedAt: at(minutes)},
		mtlsid.Domain{Name: id + ".mtlsid.test", ServiceID: id, Default: true, VerifiedAt: at(minutes),
			Method: "default", CreatedAt: at(minutes)}
}

// apiCert is an agent certificate of a service's identity.
func apiCert(serial, serviceID string, dev bool) mtlsid.Certificate {
	c := certificate(serial, serviceID)
	c.Profile, c.DeviceType, c.Development = mtlsid.ProfileAgent, mtlsid.DeviceAgent, dev
	return c
}

// newWorld opens a store and builds the world in it.
func newWorld(t *testing.T, open func(t *testing.T) mtlsid.Store) mtlsid.Store {
	t.Helper()
	s := open(t)
	buildWorld(t, s)
	return s
}

// buildWorld builds the world in an empty store.
func buildWorld(t testing.TB, s mtlsid.Store) {
	t.Helper()
	for i, id := range []string{"alice", "bob", "carol"} {
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity(id), Certificate: certificate(serialOf(i), id)})
	}
	must(t, "CreateOrg", s.CreateOrg(t.Context(), org(orgID), mtlsid.Member{IdentityID: "alice", CreatedAt: at(1)},
		event(mtlsid.AuditOrgCreated, orgID)))
	for i, name := range []string{"app", "web"} {
		svc, def := service(name, orgID, 2+i)
		must(t, "CreateService", s.CreateService(t.Context(), svc, def, event(mtlsid.AuditServiceCreated, svc.ID)))
	}
	mustIssue(t, s,
		mtlsid.Issuance{At: at(4), Certificate: apiCert(devSerial, appID, true)},
		mtlsid.Issuance{At: at(4), Certificate: apiCert(prodSerial, appID, false)},
		mtlsid.Issuance{At: at(4), Certificate: apiCert(webSerial, webID, false)})
}

// bobSerial is the serial of bob's certificate in the world.
var bobSerial = serialOf(1)

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantKind(t testing.TB, what string, err error, kind mtlsid.Kind) {
	t.Helper()
	if got := mtlsid.ErrorKind(err); got != kind {
		t.Errorf("%s: error %v (kind %q); want kind %q", what, err, got, kind)
	}
}

func testOrg(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	setup := func(t *testing.T) mtlsid.Store {
		s := open(t)
		for i, id := range []string{"alice", "bob", "carol"} {
			mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity(id), Certificate: certificate(serialOf(i), id)})
		}
		return s
	}
	admin := mtlsid.Member{OrgID: orgID, IdentityID: "alice", Role: mtlsid.OrgAdministrator, CreatedAt: at(1)}
	t.Run("create and read", func(t *testing.T) {
		s := setup(t)
		must(t, "CreateOrg", s.CreateOrg(t.Context(), org(orgID), admin, event(mtlsid.AuditOrgCreated, orgID)))
		got, err := s.Org(t.Context(), orgID)
		must(t, "Org", err)
		diff(t, "org", *got, org(orgID))
		m, err := s.Member(t.Context(), orgID, "alice")
		must(t, "Member", err)
		diff(t, "admin", *m, admin)
		wantChainLen(t, s, 1)
	})
	t.Run("admin defaults", func(t *testing.T) {
		s := setup(t)
		o := org(orgID)
		o.CreatedAt = at(7)
		must(t, "CreateOrg", s.CreateOrg(t.Context(), o, mtlsid.Member{IdentityID: "alice"}, event(mtlsid.AuditOrgCreated, orgID)))
		m, err := s.Member(t.Context(), orgID, "alice")
		must(t, "Member", err)
		want := admin
		want.CreatedAt = at(7)
		diff(t, "admin", *m, want)
	})
	t.Run("duplicate ID", func(t *testing.T) {
		s := setup(t)
		must(t, "CreateOrg", s.CreateOrg(t.Context(), org(orgID), admin, event(mtlsid.AuditOrgCreated, orgID)))
		other := org(orgID)
		other.Name = "Other"
		bob := mtlsid.Member{OrgID: orgID, IdentityID: "bob", Role: mtlsid.OrgAdministrator}
		wantErr(t, "CreateOrg of a taken ID", s.CreateOrg(t.Context(), other, bob, event(mtlsid.AuditOrgCreated, orgID)), mtlsid.ErrConflict)
		got, err := s.Org(t.Context(), orgID)
		must(t, "Org", err)
		diff(t, "org", *got, org(orgID))
		_, err = s.Member(t.Context(), orgID, "bob")
		wantErr(t, "Member added by a refused CreateOrg", err, mtlsid.ErrNotFound)
		wantChainLen(t, s, 1)
	})
	t.Run("unknown admin identity", func(t *testing.T) {
		s := setup(t)
		err := s.CreateOrg(t.Context(), org(orgID), mtlsid.Member{IdentityID: "ghost"}, event(mtlsid.AuditOrgCreated, orgID))
		wantErr(t, "CreateOrg with an unknown admin", err, mtlsid.ErrNotFound)
		_, err = s.Org(t.Context(), orgID)
		wantErr(t, "Org after a refused CreateOrg", err, mtlsid.ErrNotFound)
		wantChainLen(t, s, 0)
	})
	t.Run("invalid", func(t *testing.T) {
		s := setup(t)
		for _, tc := range []struct {
			name  string
			o     mtlsid.Organization
			admin mtlsid.Member
		}{
			{"no ID", mtlsid.Organization{Name: "x"}, mtlsid.Member{IdentityID: "alice"}},
			{"NUL in name", mtlsid.Organization{ID: orgID, Name: "a\x00b"}, mtlsid.Member{IdentityID: "alice"}},
			{"admin of another org", org(orgID), mtlsid.Member{OrgID: "other", IdentityID: "alice"}},
			{"admin not administrator", org(orgID), mtlsid.Member{IdentityID: "alice", Role: mtlsid.OrgMember}},
		} {
			wantKind(t, tc.name, s.CreateOrg(t.Context(), tc.o, tc.admin, event(mtlsid.AuditOrgCreated, orgID)), mtlsid.KindInvalid)
		}
		wantChainLen(t, s, 0)
	})
	t.Run("not found", func(t *testing.T) {
		s := setup(t)
		must(t, "CreateOrg", s.CreateOrg(t.Context(), org(orgID), admin, event(mtlsid.AuditOrgCreated, orgID)))
		_, err := s.Org(t.Context(), "other")
		wantErr(t, "Org of an unknown ID", err, mtlsid.ErrNotFound)
		_, err = s.Member(t.Context(), orgID, "bob")
		wantErr(t, "Member of a non-member", err, mtlsid.ErrNotFound)
		_, err = s.Org(t.Context(), "\xff")
		wantErr(t, "Org of invalid UTF-8", err, mtlsid.ErrNotFound)
	})
	t.Run("members", func(t *testing.T) {
		s := setup(t)
		must(t, "CreateOrg", s.CreateOrg(t.Context(), org(orgID), admin, event(mtlsid.AuditOrgCreated, orgID)))
		other := org("beta")
		must(t, "CreateOrg", s.CreateOrg(t.Context(), other, mtlsid.Member{IdentityID: "bob", CreatedAt: at(3)}, event(mtlsid.AuditOrgCreated, "beta")))
		// carol and bob join acme at one moment: they list by identity ID.
		carol := mtlsid.Member{OrgID: orgID, IdentityID: "carol", Role: mtlsid.OrgMember, CreatedAt: at(2)}
		bob := mtlsid.Member{OrgID: orgID, IdentityID: "bob", Role: mtlsid.OrgMember, CreatedAt: at(2)}
		must(t, "SetMember", s.SetMember(t.Context(), carol, event(mtlsid.AuditMemberSet, "carol")))
		must(t, "SetMember", s.SetMember(t.Context(), bob, event(mtlsid.AuditMemberSet, "bob")))
		// A role change keeps the member's age.
		bob.Role = mtlsid.OrgManager
		changed := bob
		changed.CreatedAt = at(9)
		must(t, "SetMember", s.SetMember(t.Context(), changed, event(mtlsid.AuditMemberSet, "bob")))
		m, err := s.Member(t.Context(), orgID, "bob")
		must(t, "Member", err)
		diff(t, "bob after a role change", *m, bob)

		members, err := s.OrgMembers(t.Context(), orgID)
		must(t, "OrgMembers", err)
		diff(t, "members, oldest first", members, []mtlsid.Member{admin, bob, carol})
		ms, err := s.Memberships(t.Context(), "bob")
		must(t, "Memberships", err)
		betaAdmin := mtlsid.Member{OrgID: "beta", IdentityID: "bob", Role: mtlsid.OrgAdministrator, CreatedAt: at(3)}
		diff(t, "bob's memberships", ms, []mtlsid.Member{bob, betaAdmin})
		none, err := s.OrgMembers(t.Context(), "nope")
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("OrgMembers of an unknown org = %#v, %v; want an empty list", none, err)
		}
		none, err = s.Memberships(t.Context(), "ghost")
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("Memberships of an unknown identity = %#v, %v; want an empty list", none, err)
		}
		wantChainLen(t, s, 5)
	})
	t.Run("set member refused", func(t *testing.T) {
		s := setup(t)
		must(t, "CreateOrg", s.CreateOrg(t.Context(), org(orgID), admin, event(mtlsid.AuditOrgCreated, orgID)))
		ev := event(mtlsid.AuditMemberSet, "x")
		wantErr(t, "SetMember of an unknown org", s.SetMember(t.Context(), mtlsid.Member{OrgID: "nope", IdentityID: "bob", Role: mtlsid.OrgMember}, ev), mtlsid.ErrNotFound)
		wantErr(t, "SetMember of an unknown identity", s.SetMember(t.Context(), mtlsid.Member{OrgID: orgID, IdentityID: "ghost", Role: mtlsid.OrgMember}, ev), mtlsid.ErrNotFound)
		wantKind(t, "SetMember with an unknown role", s.SetMember(t.Context(), mtlsid.Member{OrgID: orgID, IdentityID: "bob", Role: "owner"}, ev), mtlsid.KindInvalid)
		wantKind(t, "SetMember with a NUL", s.SetMember(t.Context(), mtlsid.Member{OrgID: orgID, IdentityID: "b\x00b", Role: mtlsid.OrgMember}, ev), mtlsid.KindInvalid)
		wantChainLen(t, s, 1)
	})
}

func testService(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	setup := func(t *testing.T) mtlsid.Store {
		s := open(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
		must(t, "CreateOrg", s.CreateOrg(t.Context(), org(orgID), mtlsid.Member{IdentityID: "alice"}, event(mtlsid.AuditOrgCreated, orgID)))
		return s
	}
	t.Run("create", func(t *testing.T) {
		s := setup(t)
		svc, def := service("web", orgID, 5)
		must(t, "CreateService", s.CreateService(t.Context(), svc, def, event(mtlsid.AuditServiceCreated, svc.ID)))
		app, appDef := service("app", orgID, 6)
		appDef.ServiceID, appDef.Default, appDef.VerifiedAt, appDef.Method = "", false, time.Time{}, "" // filled in
		must(t, "CreateService", s.CreateService(t.Context(), app, appDef, event(mtlsid.AuditServiceCreated, app.ID)))

		got, err := s.Service(t.Context(), svc.ID)
		must(t, "Service", err)
		diff(t, "service", *got, svc)
		id, err := s.Identity(t.Context(), svc.ID)
		must(t, "Identity", err)
		diff(t, "service identity", *id, mtlsid.Identity{ID: svc.ID, Kind: mtlsid.KindService, Name: "web", CreatedAt: at(5)})
		d, err := s.Domain(t.Context(), def.Name)
		must(t, "Domain", err)
		diff(t, "default domain", *d, def)
		if !d.Verified() {
			t.Error("default domain not verified")
		}
		_, wantAppDef := service("app", orgID, 6)
		ds, err := s.ServiceDomains(t.Context(), app.ID)
		must(t, "ServiceDomains", err)
		diff(t, "app's domains", ds, []mtlsid.Domain{wantAppDef})

		svcs, err := s.OrgServices(t.Context(), orgID)
		must(t, "OrgServices", err)
		diff(t, "services by name", svcs, []mtlsid.Service{app, svc})
		wantChainLen(t, s, 3)
	})
	t.Run("refused", func(t *testing.T) {
		s := setup(t)
		svc, def := service("web", orgID, 5)
		must(t, "CreateService", s.CreateService(t.Context(), svc, def, event(mtlsid.AuditServiceCreated, svc.ID)))
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("taken.acme"), Certificate: certificate("2", "taken.acme")})
		other, otherDef := service("other", orgID, 6)
		sameID, sameIDDef := service("web", orgID, 6)
		sameIDDef.Name = "fresh.mtlsid.test"
		takenID, takenIDDef := service("taken", orgID, 6)
		noOrg, noOrgDef := service("x", "nope", 6)
		for _, tc := range []struct {
			name string
			svc  mtlsid.Service
			def  mtlsid.Domain
			want error
		}{
			{"service ID taken", sameID, sameIDDef, mtlsid.ErrConflict},
			{"identity ID taken", takenID, takenIDDef, mtlsid.ErrConflict},
			{"domain taken", other, mtlsid.Domain{Name: def.Name}, mtlsid.ErrConflict},
			{"unknown org", noOrg, noOrgDef, mtlsid.ErrNotFound},
		} {
			wantErr(t, tc.name, s.CreateService(t.Context(), tc.svc, tc.def, event(mtlsid.AuditServiceCreated, tc.svc.ID)), tc.want)
		}
		for _, tc := range []struct {
			name string
			svc  mtlsid.Service
			def  mtlsid.Domain
		}{
			{"no ID", mtlsid.Service{OrgID: orgID, Name: "x"}, otherDef},
			{"domain of another service", other, mtlsid.Domain{Name: "x.test", ServiceID: webID}},
			{"upper-case domain", other, mtlsid.Domain{Name: "Other.test"}},
			{"NUL in name", mtlsid.Service{ID: "n.acme", OrgID: orgID, Name: "n\x00"}, mtlsid.Domain{Name: "n.test"}},
		} {
			wantKind(t, tc.name, s.CreateService(t.Context(), tc.svc, tc.def, event(mtlsid.AuditServiceCreated, tc.svc.ID)), mtlsid.KindInvalid)
		}
		svcs, err := s.OrgServices(t.Context(), orgID)
		must(t, "OrgServices", err)
		diff(t, "services after refusals", svcs, []mtlsid.Service{svc})
		_, err = s.Domain(t.Context(), otherDef.Name)
		wantErr(t, "domain of a refused service", err, mtlsid.ErrNotFound)
		_, err = s.Service(t.Context(), other.ID)
		wantErr(t, "refused service", err, mtlsid.ErrNotFound)
		if _, err := s.Identity(t.Context(), other.ID); err == nil {
			t.Error("identity of a refused service stored")
		}
		wantChainLen(t, s, 2)
	})
	t.Run("not found", func(t *testing.T) {
		s := setup(t)
		_, err := s.Service(t.Context(), "nope.acme")
		wantErr(t, "Service", err, mtlsid.ErrNotFound)
		for _, list := range []func() (int, error){
			func() (int, error) { l, err := s.OrgServices(t.Context(), "nope"); return len(l), err },
			func() (int, error) { l, err := s.ServiceDomains(t.Context(), "nope.acme"); return len(l), err },
			func() (int, error) { l, err := s.ServiceRoles(t.Context(), "nope.acme"); return len(l), err },
		} {
			if n, err := list(); n != 0 || err != nil {
				t.Errorf("list of an unknown service or org: %d items, %v; want none", n, err)
			}
		}
	})
}

func testDomain(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	ev := event(mtlsid.AuditDomainAdded, "d")
	extra := func(name, serviceID string) mtlsid.Domain {
		return mtlsid.Domain{Name: name, ServiceID: serviceID, Challenge: "challenge-" + name, CreatedAt: at(10)}
	}
	t.Run("add, list and verify", func(t *testing.T) {
		s := newWorld(t, open)
		n := chainLen(t, s)
		b, a := extra("b.example.com", appID), extra("a.example.com", appID)
		must(t, "AddDomain", s.AddDomain(t.Context(), b, ev))
		must(t, "AddDomain", s.AddDomain(t.Context(), a, ev))
		got, err := s.Domain(t.Context(), "a.example.com")
		must(t, "Domain", err)
		diff(t, "added domain", *got, a)
		if got.Verified() {
			t.Error("added domain is verified")
		}
		_, def := service("app", orgID, 2)
		ds, err := s.ServiceDomains(t.Context(), appID)
		must(t, "ServiceDomains", err)
		diff(t, "domains by name", ds, []mtlsid.Domain{a, def, b})

		must(t, "VerifyDomain", s.VerifyDomain(t.Context(), "A.Example.COM", "dns", at(11), event(mtlsid.AuditDomainVerified, "a")))
		got, err = s.Domain(t.Context(), "A.EXAMPLE.com")
		must(t, "Domain in upper case", err)
		a.VerifiedAt, a.Method = at(11), "dns"
		diff(t, "verified domain", *got, a)
		wantChainLen(t, s, n+3)
	})
	t.Run("refused", func(t *testing.T) {
		s := newWorld(t, open)
		n := chainLen(t, s)
		must(t, "AddDomain", s.AddDomain(t.Context(), extra("a.example.com", appID), ev))
		wantErr(t, "AddDomain taken by the same service", s.AddDomain(t.Context(), extra("a.example.com", appID), ev), mtlsid.ErrConflict)
		wantErr(t, "AddDomain taken by another service", s.AddDomain(t.Context(), extra("a.example.com", webID), ev), mtlsid.ErrConflict)
		_, def := service("app", orgID, 2)
		wantErr(t, "AddDomain of a default domain", s.AddDomain(t.Context(), extra(def.Name, webID), ev), mtlsid.ErrConflict)
		wantErr(t, "AddDomain to an unknown service", s.AddDomain(t.Context(), extra("b.example.com", "nope.acme"), ev), mtlsid.ErrNotFound)
		verified := extra("c.example.com", appID)
		verified.VerifiedAt, verified.Method = at(1), "dns"
		for _, tc := range []struct {
			name string
			d    mtlsid.Domain
		}{
			{"verified", verified},
			{"default", mtlsid.Domain{Name: "d.example.com", ServiceID: appID, Default: true}},
			{"upper case", extra("E.example.com", appID)},
			{"empty", extra("", appID)},
			{"invalid UTF-8", extra("\xff.example.com", appID)},
		} {
			wantKind(t, "AddDomain of a domain "+tc.name, s.AddDomain(t.Context(), tc.d, ev), mtlsid.KindInvalid)
		}
		wantErr(t, "VerifyDomain of an unknown domain", s.VerifyDomain(t.Context(), "z.example.com", "dns", at(1), ev), mtlsid.ErrNotFound)
		_, err := s.Domain(t.Context(), "z.example.com")
		wantErr(t, "Domain of an unknown name", err, mtlsid.ErrNotFound)
		wantChainLen(t, s, n+1)
	})
}

func testRoles(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	n := chainLen(t, s)
	for _, role := range []string{"viewer", "admin", "Zed", "admin"} {
		must(t, "DefineRole", s.DefineRole(t.Context(), appID, role, event(mtlsid.AuditRoleDefined, role)))
	}
	roles, err := s.ServiceRoles(t.Context(), appID)
	must(t, "ServiceRoles", err)
	diff(t, "roles, sorted by bytes", roles, []string{"Zed", "admin", "viewer"})
	web, err := s.ServiceRoles(t.Context(), webID)
	if err != nil || web == nil || len(web) != 0 {
		t.Errorf("ServiceRoles of a service without roles = %#v, %v; want an empty list", web, err)
	}
	wantErr(t, "DefineRole of an unknown service", s.DefineRole(t.Context(), "nope.acme", "x", event(mtlsid.AuditRoleDefined, "x")), mtlsid.ErrNotFound)
	wantKind(t, "DefineRole of an empty role", s.DefineRole(t.Context(), appID, "", event(mtlsid.AuditRoleDefined, "")), mtlsid.KindInvalid)
	wantKind(t, "DefineRole with a NUL", s.DefineRole(t.Context(), appID, "a\x00", event(mtlsid.AuditRoleDefined, "")), mtlsid.KindInvalid)
	// Defining a role again is no error, and the request is audited.
	wantChainLen(t, s, n+4)
}
