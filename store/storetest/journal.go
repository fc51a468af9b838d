package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mtlsid/mtlsid"
)

// snapshot is everything the world's services know of its people.
type snapshot struct {
	Relations map[string]mtlsid.Relation
	Grants    map[string][]mtlsid.RoleGrant
}

func snap(t testing.TB, s mtlsid.Store) snapshot {
	t.Helper()
	sn := snapshot{Relations: map[string]mtlsid.Relation{}, Grants: map[string][]mtlsid.RoleGrant{}}
	for _, svc := range []string{appID, webID} {
		for _, id := range []string{"alice", "bob", "carol"} {
			sn.Relations[svc+" "+id] = mustRelation(t, s, svc, id)
		}
		grants, err := s.ServiceGrants(t.Context(), svc)
		must(t, "ServiceGrants", err)
		sn.Grants[svc] = grants
	}
	return sn
}

// revokeDev revokes app's development certificate at minute 50.
func revokeDev(t testing.TB, s mtlsid.Store) {
	t.Helper()
	must(t, "Revoke", s.Revoke(t.Context(), mtlsid.Revocation{Serial: devSerial, At: at(50), Reason: mtlsid.ReasonCessationOfOperation,
		Audit: mtlsid.AuditEvent{Time: at(50), Type: mtlsid.AuditCertRevoked, Actor: "alice", Subject: devSerial}}))
}

// lastAudit returns the newest entry of the audit chain, which it verifies.
func lastAudit(t testing.TB, s mtlsid.Store) mtlsid.AuditEntry {
	t.Helper()
	n := chainLen(t, s)
	log, err := s.AuditLog(t.Context(), n-1, 1)
	if err != nil || len(log) != 1 {
		t.Fatalf("AuditLog = %v, %v", log, err)
	}
	return log[0]
}

// wantUndone checks that the newest audit entry records the undoing of
// n changes of serial, right after the revocation's own entry.
func wantUndone(t testing.TB, s mtlsid.Store, serial string, n int, at2 int, actor string) {
	t.Helper()
	last := lastAudit(t, s)
	want := mtlsid.AuditEvent{Time: at(at2), Type: mtlsid.AuditJournalUndone, Actor: actor, Subject: serial, Detail: fmt.Sprintf("undone=%d", n)}
	diff(t, "undo audit event", last.AuditEvent, want)
}

func testJournal(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("undo", func(t *testing.T) { testUndoKinds(t, open) })
	t.Run("production changes stay", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "admin", 10), dev(10, mtlsid.AuditRoleGranted, "bob")))
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 11), prod(11, mtlsid.AuditRoleGranted, "bob")))
		must(t, "AddTrust", s.AddTrust(ctx, appID, "carol", 4, prod(12, mtlsid.AuditTrustAdded, "carol")))
		must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 9, dev(13, mtlsid.AuditTrustAdded, "bob")))
		must(t, "SetSecret", s.SetSecret(ctx, webID, "bob", "web's", mtlsid.Change{At: at(14), By: webSerial, Audit: event(mtlsid.AuditSecretSet, "bob")}))
		revokeDev(t, s)
		wantUndone(t, s, devSerial, 2, 50, "alice")
		diff(t, "app's grants", mustGrants(t, s, appID), []mtlsid.RoleGrant{grant(appID, "bob", "viewer", 11)})
		if r := mustRelation(t, s, appID, "bob"); r.TrustTokens != 0 || r.TrustTotal != 0 {
			t.Errorf("bob's trust after the undo: %d of %d; want none", r.TrustTokens, r.TrustTotal)
		}
		if r := mustRelation(t, s, appID, "carol"); r.TrustTokens != 4 {
			t.Errorf("carol's trust after the undo: %d; want 4", r.TrustTokens)
		}
		if r := mustRelation(t, s, webID, "bob"); r.Secret != "web's" {
			t.Errorf("web's secret after the undo: %q", r.Secret)
		}
	})
	t.Run("later production change to the same row", func(t *testing.T) {
		// The undo restores the row as it was before the development
		// change, overwriting what production wrote since: last writer wins.
		s := newWorld(t, open)
		ctx := t.Context()
		must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 5, dev(10, mtlsid.AuditTrustAdded, "bob")))
		must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 10, prod(11, mtlsid.AuditTrustAdded, "bob")))
		must(t, "BindLocalUser", s.BindLocalUser(ctx, localUser(appID, "bob", "dev-bob", 12), 0, dev(12, mtlsid.AuditLocalUserBound, "bob")))
		must(t, "UnbindLocalUser", s.UnbindLocalUser(ctx, appID, "dev-bob", prod(13, mtlsid.AuditLocalUserUnbound, "bob")))
		must(t, "BindLocalUser", s.BindLocalUser(ctx, localUser(appID, "carol", "dev-bob", 14), 0, prod(14, mtlsid.AuditLocalUserBound, "carol")))
		if r := mustRelation(t, s, appID, "bob"); r.TrustTokens != 15 {
			t.Fatalf("trust before the undo: %d; want 15", r.TrustTokens)
		}
		revokeDev(t, s)
		if r := mustRelation(t, s, appID, "bob"); r.TrustTokens != 0 {
			t.Errorf("trust after the undo: %d; want 0, the row as it was before the development change", r.TrustTokens)
		}
		// bob had no binding before: his row is deleted; carol's binding
		// is another row, and stays.
		if lu := mustRelation(t, s, appID, "bob").LocalUser; lu != nil {
			t.Errorf("bob's binding after the undo: %+v", lu)
		}
		if id, err := s.LocalUserIdentity(ctx, appID, "dev-bob"); err != nil || id != "carol" {
			t.Errorf("LocalUserIdentity(dev-bob) = %q, %v; want carol", id, err)
		}
	})
	t.Run("production certificate undoes nothing", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 5, prod(10, mtlsid.AuditTrustAdded, "bob")))
		before := snap(t, s)
		must(t, "Revoke", s.Revoke(ctx, mtlsid.Revocation{Serial: prodSerial, At: at(50), Audit: event(mtlsid.AuditCertRevoked, prodSerial)}))
		diff(t, "state after revoking a production certificate", snap(t, s), before)
		if last := lastAudit(t, s); last.Type != mtlsid.AuditCertRevoked {
			t.Errorf("newest audit entry %q; want the revocation's alone", last.Type)
		}
	})
	t.Run("development certificate without changes", func(t *testing.T) {
		s := newWorld(t, open)
		n := chainLen(t, s)
		revokeDev(t, s)
		wantUndone(t, s, devSerial, 0, 50, "alice")
		wantChainLen(t, s, n+2)
	})
	t.Run("audit", func(t *testing.T) {
		s := newWorld(t, open)
		ctx := t.Context()
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "admin", 10), dev(10, mtlsid.AuditRoleGranted, "bob")))
		must(t, "AddTrust", s.AddTrust(ctx, appID, "bob", 5, dev(11, mtlsid.AuditTrustAdded, "bob")))
		n := chainLen(t, s)
		revokeDev(t, s)
		log, err := s.AuditLog(ctx, n, 10)
		must(t, "AuditLog", err)
		var types []string
		for _, e := range log {
			types = append(types, e.Type)
		}
		diff(t, "audit entries of the revocation", types, []string{mtlsid.AuditCertRevoked, mtlsid.AuditJournalUndone})
		wantUndone(t, s, devSerial, 2, 50, "alice")
		for _, pageSize := range []int{1, 3, 100} {
			if _, err := VerifyChain(ctx, s, pageSize); err != nil {
				t.Errorf("VerifyChain with pages of %d: %v", pageSize, err)
			}
		}
		// The journal is gone with the undo: revoking again is refused
		// and undoes nothing more.
		must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "admin", 60), prod(60, mtlsid.AuditRoleGranted, "bob")))
		wantErr(t, "second Revoke", s.Revoke(ctx, mtlsid.Revocation{Serial: devSerial, At: at(61)}), mtlsid.ErrRevoked)
		diff(t, "grants", mustGrants(t, s, appID), []mtlsid.RoleGrant{grant(appID, "bob", "admin", 60)})
	})
	t.Run("refused", func(t *testing.T) { testJournalRefused(t, open) })
	t.Run("renewal", func(t *testing.T) { testJournalRenewal(t, open) })
}

func mustGrants(t testing.TB, s mtlsid.Store, serviceID string) []mtlsid.RoleGrant {
	t.Helper()
	grants, err := s.ServiceGrants(t.Context(), serviceID)
	must(t, "ServiceGrants", err)
	return grants
}

// undoCase is what one case of testUndoKinds works on: two people of its
// own, and a development certificate of app of its own, so that the cases
// share one store and each revocation must undo its own journal alone.
type undoCase struct {
	person, other             string
	personSerial, otherSerial string
	dev                       string
}

// undoStep is a change of an undoCase, made in production or in
// development.
type undoStep func(ctx context.Context, s mtlsid.Store, k *undoCase) error

func (k *undoCase) change(m int, dev bool) mtlsid.Change {
	if dev {
		return mtlsid.Change{At: at(m), By: k.dev, Development: true, Audit: event(mtlsid.AuditTrustAdded, k.person)}
	}
	return prod(m, mtlsid.AuditTrustAdded, k.person)
}

// snap is what app and web know of the case's people.
func (k *undoCase) snap(t testing.TB, s mtlsid.Store) snapshot {
	t.Helper()
	sn := snapshot{Relations: map[string]mtlsid.Relation{}, Grants: map[string][]mtlsid.RoleGrant{}}
	for _, svc := range []string{appID, webID} {
		for _, id := range []string{k.person, k.other} {
			sn.Relations[svc+" "+id] = mustRelation(t, s, svc, id)
		}
	}
	for _, id := range []string{k.person, k.other} {
		grants, err := s.IdentityGrants(t.Context(), id)
		must(t, "IdentityGrants", err)
		sn.Grants[id] = grants
	}
	return sn
}

// testUndoKinds makes production changes, then development ones, and
// expects revoking the development certificate to leave everything as
// before the development changes.
func testUndoKinds(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	grantRole := func(role string, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			return s.GrantRole(ctx, grant(appID, k.person, role, m), k.change(m, dev))
		}
	}
	revokeRole := func(role string, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			return s.RevokeRole(ctx, appID, k.person, role, k.change(m, dev))
		}
	}
	// Local user names and intrusion references are the case's own.
	bind := func(toOther bool, name string, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			who := k.person
			if toOther {
				who = k.other
			}
			return s.BindLocalUser(ctx, localUser(appID, who, k.person+"-"+name, m), 0, k.change(m, dev))
		}
	}
	unbind := func(name string, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			return s.UnbindLocalUser(ctx, appID, k.person+"-"+name, k.change(m, dev))
		}
	}
	trust := func(n int, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			return s.AddTrust(ctx, appID, k.person, n, k.change(m, dev))
		}
	}
	secret := func(v string, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			return s.SetSecret(ctx, appID, k.person, v, k.change(m, dev))
		}
	}
	report := func(ref string, otherSerial bool, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			serial := k.personSerial
			if otherSerial {
				serial = k.otherSerial
			}
			return s.ReportIntrusion(ctx, intrusion(k.person+"-"+ref, appID, k.person, serial, m), k.change(m, dev))
		}
	}
	withdraw := func(ref string, m int, dev bool) undoStep {
		return func(ctx context.Context, s mtlsid.Store, k *undoCase) error {
			return s.WithdrawIntrusion(ctx, appID, k.person+"-"+ref, k.change(m, dev))
		}
	}
	const p, d = false, true
	s := newWorld(t, open)
	for i, tc := range []struct {
		name   string
		setup  []undoStep // production
		dev    []undoStep
		undone int
		after  undoStep // run after the undo; must succeed
		hidden bool     // the development changes do not show in a snapshot
	}{
		{name: "grant", dev: []undoStep{grantRole("admin", 20, d)}, undone: 1},
		{name: "grant of a held role", setup: []undoStep{grantRole("admin", 10, p)}, dev: []undoStep{grantRole("admin", 20, d)}, undone: 0},
		{name: "revoke role", setup: []undoStep{grantRole("admin", 10, p), grantRole("viewer", 11, p)},
			dev: []undoStep{revokeRole("admin", 20, d)}, undone: 1},
		{name: "bind", dev: []undoStep{bind(false, "bobby", 20, d)}, undone: 1},
		{name: "bind replacing a binding", setup: []undoStep{bind(false, "bobby", 10, p)}, dev: []undoStep{bind(false, "robert", 20, d)}, undone: 1,
			after: unbind("bobby", 60, p)},
		{name: "unbind", setup: []undoStep{bind(false, "bobby", 10, p)}, dev: []undoStep{unbind("bobby", 20, d)}, undone: 1,
			after: unbind("bobby", 60, p)},
		{name: "unbind then bind the name to another", setup: []undoStep{bind(false, "bobby", 10, p)},
			dev: []undoStep{unbind("bobby", 20, d), bind(true, "bobby", 21, d)}, undone: 2},
		{name: "bind twice", setup: []undoStep{bind(false, "bobby", 10, p)},
			dev: []undoStep{bind(false, "robert", 20, d), bind(false, "rob", 21, d)}, undone: 2},
		{name: "trust on a new row", dev: []undoStep{trust(5, 20, d)}, undone: 1},
		{name: "trust added", setup: []undoStep{trust(3, 10, p)}, dev: []undoStep{trust(5, 20, d)}, undone: 1},
		{name: "trust taken away", setup: []undoStep{trust(30, 10, p)}, dev: []undoStep{trust(-50, 20, d)}, undone: 1},
		{name: "trust unchanged", setup: []undoStep{trust(10000, 10, p)}, dev: []undoStep{trust(5, 20, d)}, undone: 0},
		{name: "secret on a new row", dev: []undoStep{secret("dev", 20, d)}, undone: 1},
		{name: "secret replaced", setup: []undoStep{secret("prod", 10, p)}, dev: []undoStep{secret("dev", 20, d)}, undone: 1},
		{name: "secret cleared", setup: []undoStep{secret("prod", 10, p)}, dev: []undoStep{secret("", 20, d)}, undone: 1},
		{name: "report intrusion", dev: []undoStep{report("ir_dev", false, 20, d)}, undone: 1,
			after: report("ir_prod", false, 60, p)},
		{name: "withdraw intrusion", setup: []undoStep{report("ir_1", false, 10, p)}, dev: []undoStep{withdraw("ir_1", 20, d)}, undone: 1,
			after: withdraw("ir_1", 60, p)},
		{name: "withdraw then report again", setup: []undoStep{report("ir_1", false, 10, p)},
			dev: []undoStep{withdraw("ir_1", 20, d), report("ir_2", false, 21, d)}, undone: 2,
			after: withdraw("ir_1", 60, p), hidden: true},
		{name: "newest first on one row", setup: []undoStep{trust(3, 10, p), secret("prod", 10, p)},
			dev: []undoStep{trust(5, 20, d), trust(7, 21, d), secret("a", 22, d), secret("", 23, d), secret("b", 24, d)}, undone: 5},
		{name: "everything", setup: []undoStep{grantRole("viewer", 10, p), bind(false, "bobby", 10, p), trust(3, 10, p), report("ir_1", false, 10, p)},
			dev: []undoStep{grantRole("admin", 20, d), bind(false, "robert", 21, d), trust(5, 22, d), secret("x", 23, d),
				withdraw("ir_1", 24, d), report("ir_2", true, 25, d), grantRole("viewer", 26, d)}, undone: 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			k := &undoCase{person: fmt.Sprint("p", i), other: fmt.Sprint("q", i),
				personSerial: serialOf(100 + 3*i), otherSerial: serialOf(101 + 3*i), dev: serialOf(102 + 3*i)}
			mustIssue(t, s,
				mtlsid.Issuance{At: at(1), Identity: identity(k.person), Certificate: certificate(k.personSerial, k.person)},
				mtlsid.Issuance{At: at(1), Identity: identity(k.other), Certificate: certificate(k.otherSerial, k.other)},
				mtlsid.Issuance{At: at(4), Certificate: apiCert(k.dev, appID, true)})
			for i, st := range tc.setup {
				must(t, fmt.Sprintf("production step %d", i), st(ctx, s, k))
			}
			before := k.snap(t, s)
			n := chainLen(t, s)
			for i, st := range tc.dev {
				must(t, fmt.Sprintf("development step %d", i), st(ctx, s, k))
			}
			if tc.undone > 0 && !tc.hidden && cmp.Equal(k.snap(t, s), before) {
				t.Fatal("the development changes changed nothing")
			}
			must(t, "Revoke", s.Revoke(ctx, mtlsid.Revocation{Serial: k.dev, At: at(50),
				Audit: mtlsid.AuditEvent{Time: at(50), Type: mtlsid.AuditCertRevoked, Actor: "alice", Subject: k.dev}}))
			diff(t, "state after the undo", k.snap(t, s), before)
			wantUndone(t, s, k.dev, tc.undone, 50, "alice")
			wantChainLen(t, s, n+int64(len(tc.dev))+2)
			if tc.after != nil {
				must(t, "step after the undo", tc.after(ctx, s, k))
			}
		})
	}
}

func testJournalRefused(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	n := chainLen(t, s)
	withBy := func(by string) mtlsid.Change {
		c := dev(20, mtlsid.AuditTrustAdded, "bob")
		c.By = by
		return c
	}
	wantKind(t, "development change by no certificate", s.AddTrust(ctx, appID, "bob", 5, withBy("")), mtlsid.KindInvalid)
	wantErr(t, "development change by an unknown certificate", s.AddTrust(ctx, appID, "bob", 5, withBy("404")), mtlsid.ErrNotFound)
	wantKind(t, "development change by a production certificate", s.AddTrust(ctx, appID, "bob", 5, withBy(prodSerial)), mtlsid.KindInvalid)
	wantKind(t, "development change by invalid UTF-8", s.AddTrust(ctx, appID, "bob", 5, withBy("\xff")), mtlsid.KindInvalid)
	wantChainLen(t, s, n)
	diff(t, "relation after refusals", mustRelation(t, s, appID, "bob"), mtlsid.Relation{})

	// A change journaled under a revoked certificate would never be
	// undone: it is refused.
	revokeDev(t, s)
	n = chainLen(t, s)
	wantErr(t, "development change by a revoked certificate", s.GrantRole(ctx, grant(appID, "bob", "x", 60), dev(60, mtlsid.AuditRoleGranted, "bob")), mtlsid.ErrRevoked)
	wantErr(t, "development change by a revoked certificate", s.AddTrust(ctx, appID, "bob", 5, dev(60, mtlsid.AuditTrustAdded, "bob")), mtlsid.ErrRevoked)
	wantChainLen(t, s, n)
	diff(t, "relation after refusals", mustRelation(t, s, appID, "bob"), mtlsid.Relation{})
}

func testJournalRenewal(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	renewal := func(serial, from string, dev bool) mtlsid.Issuance {
		c := apiCert(serial, appID, dev)
		c.RenewedFrom = from
		return mtlsid.Issuance{At: at(40), Certificate: c, RevokeSerial: from, RevokeReason: mtlsid.ReasonSuperseded,
			Audit: []mtlsid.AuditEvent{{Time: at(40), Type: mtlsid.AuditCertRenewed, Actor: from, Subject: serial}}}
	}
	setup := func(t *testing.T) mtlsid.Store {
		s := newWorld(t, open)
		must(t, "AddTrust", s.AddTrust(t.Context(), appID, "bob", 5, dev(10, mtlsid.AuditTrustAdded, "bob")))
		return s
	}
	trustOf := func(s mtlsid.Store) int { return mustRelation(t, s, appID, "bob").TrustTokens }
	t.Run("development renewal keeps the journal", func(t *testing.T) {
		s := setup(t)
		mustIssue(t, s, renewal("950", devSerial, true))
		if got := trustOf(s); got != 5 {
			t.Fatalf("trust after a development renewal: %d; want 5", got)
		}
		if last := lastAudit(t, s); last.Type != mtlsid.AuditCertRenewed {
			t.Errorf("newest audit entry %q; want the renewal's", last.Type)
		}
		// Changes by the renewal join the journal passed to it.
		must(t, "AddTrust", s.AddTrust(t.Context(), appID, "bob", 7, mtlsid.Change{At: at(41), By: "950", Development: true, Audit: event(mtlsid.AuditTrustAdded, "bob")}))
		must(t, "Revoke", s.Revoke(t.Context(), mtlsid.Revocation{Serial: "950", At: at(50), Audit: mtlsid.AuditEvent{Time: at(50), Type: mtlsid.AuditCertRevoked, Actor: "alice"}}))
		if got := trustOf(s); got != 0 {
			t.Errorf("trust after revoking the renewal: %d; want 0", got)
		}
		wantUndone(t, s, "950", 2, 50, "alice")
	})
	t.Run("production renewal undoes", func(t *testing.T) {
		s := setup(t)
		mustIssue(t, s, renewal("951", devSerial, false))
		if got := trustOf(s); got != 0 {
			t.Errorf("trust after a production renewal: %d; want 0", got)
		}
		wantUndone(t, s, devSerial, 1, 40, devSerial)
	})
	t.Run("revocation by a certificate that renews another", func(t *testing.T) {
		s := setup(t)
		it := renewal("952", devSerial, true)
		it.Certificate.RenewedFrom = ""
		mustIssue(t, s, it)
		if got := trustOf(s); got != 0 {
			t.Errorf("trust: %d; want 0", got)
		}
		wantUndone(t, s, devSerial, 1, 40, devSerial)
	})
	t.Run("renewal then revocation in one batch", func(t *testing.T) {
		s := setup(t)
		n := chainLen(t, s)
		mustIssue(t, s, renewal("950", devSerial, true), renewal("951", "950", false))
		if got := trustOf(s); got != 0 {
			t.Errorf("trust: %d; want 0", got)
		}
		wantUndone(t, s, "950", 1, 40, "950")
		wantChainLen(t, s, n+3)
	})
	t.Run("refused renewal undoes nothing", func(t *testing.T) {
		s := setup(t)
		bad := renewal("952", devSerial, false)
		bad.TokenHash = mtlsid.HashToken("nope")
		errs := issue(t, s, bad)
		wantErr(t, "renewal with an unknown token", errs[0], mtlsid.ErrTokenUnknown)
		if got := trustOf(s); got != 5 {
			t.Errorf("trust after a refused renewal: %d; want 5", got)
		}
	})
}
