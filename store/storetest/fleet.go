package storetest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// RunFleet runs the conformance tests of mtlsid.FleetStore: the events
// Follow delivers, the shared CRL and shared secrets.
func RunFleet(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("Follow", func(t *testing.T) { testFollow(t, open) })
	t.Run("FollowUndo", func(t *testing.T) { testFollowUndo(t, open) })
	t.Run("CRL", func(t *testing.T) { testStoredCRL(t, open) })
	t.Run("SharedSecret", func(t *testing.T) { testSharedSecret(t, open) })
}

// EventWaitLimit bounds how long the fleet tests wait for an event. It is
// generous: the tests must pass on a loaded machine.
const EventWaitLimit = 20 * time.Second

// Follower collects the events of a store's Follow.
type Follower struct {
	ch     chan mtlsid.Event
	cancel context.CancelFunc
	done   chan struct{}
}

// Follow starts s.Follow and waits for its first EventReset, so that
// every change committed after it returns is seen. It stops at the end of
// the test.
func Follow(t testing.TB, s mtlsid.Store) *Follower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := &Follower{ch: make(chan mtlsid.Event, 1024), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		_ = s.Follow(ctx, func(ev mtlsid.Event) {
			select {
			case f.ch <- ev:
			case <-ctx.Done():
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	if ev := f.Next(t); ev.Kind != mtlsid.EventReset {
		t.Fatalf("first event %+v; want %s", ev, mtlsid.EventReset)
	}
	return f
}

// Next returns the next event, failing the test if none comes within
// EventWaitLimit.
func (f *Follower) Next(t testing.TB) mtlsid.Event {
	t.Helper()
	select {
	case ev := <-f.ch:
		return ev
	case <-time.After(EventWaitLimit):
		t.Fatalf("no event within %v", EventWaitLimit)
		return mtlsid.Event{}
	}
}

// Want fails the test unless the next events are want, in order.
func (f *Follower) Want(t testing.TB, what string, want ...mtlsid.Event) {
	t.Helper()
	for i, w := range want {
		if got := f.Next(t); got != w {
			t.Fatalf("%s: event %d is %+v; want %+v", what, i, got, w)
		}
	}
}

func revoked(serial string) mtlsid.Event {
	return mtlsid.Event{Kind: mtlsid.EventRevoked, Serial: serial}
}

func roles(serviceID, identityID string) mtlsid.Event {
	return mtlsid.Event{Kind: mtlsid.EventRoles, ServiceID: serviceID, IdentityID: identityID}
}

func relation(serviceID, identityID string) mtlsid.Event {
	return mtlsid.Event{Kind: mtlsid.EventRelation, ServiceID: serviceID, IdentityID: identityID}
}

// testFollow makes every kind of change and checks the one event each
// sends. A change that changes nothing, or is refused, sends nothing: the
// event after it is the next change's.
func testFollow(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	f := Follow(t, s)

	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 10), prod(10, mtlsid.AuditRoleGranted, "bob")))
	f.Want(t, "grant", roles(appID, "bob"))
	must(t, "GrantRole again", s.GrantRole(ctx, grant(appID, "bob", "viewer", 10), prod(10, mtlsid.AuditRoleGranted, "bob")))
	wantKind(t, "RevokeRole of a role not held", s.RevokeRole(ctx, appID, "bob", "nope", prod(11, mtlsid.AuditRoleRevoked, "bob")), mtlsid.KindNotFound)
	must(t, "RevokeRole", s.RevokeRole(ctx, appID, "bob", "viewer", prod(11, mtlsid.AuditRoleRevoked, "bob")))
	f.Want(t, "revoke role", roles(appID, "bob"))

	must(t, "BindLocalUser", s.BindLocalUser(ctx, localUser(appID, "bob", "bobby", 12), 0, prod(12, mtlsid.AuditLocalUserBound, "bob")))
	must(t, "AddTrust", s.AddTrust(ctx, appID, "carol", 5, prod(13, mtlsid.AuditTrustAdded, "carol")))
	must(t, "SetSecret", s.SetSecret(ctx, webID, "bob", "s", prod(14, mtlsid.AuditSecretSet, "bob")))
	must(t, "ReportIntrusion", s.ReportIntrusion(ctx, intrusion("ir_1", appID, "bob", bobSerial, 15), prod(15, mtlsid.AuditIntrusionReported, "bob")))
	must(t, "WithdrawIntrusion", s.WithdrawIntrusion(ctx, appID, "ir_1", prod(16, mtlsid.AuditIntrusionWithdrawn, "bob")))
	must(t, "UnbindLocalUser", s.UnbindLocalUser(ctx, appID, "bobby", prod(17, mtlsid.AuditLocalUserUnbound, "bob")))
	f.Want(t, "relation changes",
		relation(appID, "bob"), relation(appID, "carol"), relation(webID, "bob"),
		relation(appID, "bob"), relation(appID, "bob"), relation(appID, "bob"))

	must(t, "RecordConsent", s.RecordConsent(ctx, appID, "carol", at(18), event(mtlsid.AuditConsent, "carol")))
	must(t, "RecordConsent again", s.RecordConsent(ctx, appID, "carol", at(19), event(mtlsid.AuditConsent, "carol")))
	must(t, "WithdrawConsent", s.WithdrawConsent(ctx, appID, "carol", event(mtlsid.AuditConsentWithdrawn, "carol")))
	f.Want(t, "consent", relation(appID, "carol"), relation(appID, "carol"))

	revoke := func(serial string) error {
		return s.Revoke(ctx, mtlsid.Revocation{Serial: serial, At: at(20), Reason: mtlsid.ReasonKeyCompromise,
			Audit: event(mtlsid.AuditCertRevoked, serial)})
	}
	wantKind(t, "Revoke of an unknown serial", revoke("424242"), mtlsid.KindNotFound)
	must(t, "Revoke", revoke(serialOf(2)))
	wantKind(t, "Revoke again", revoke(serialOf(2)), mtlsid.KindRevoked)
	f.Want(t, "revoke", revoked(serialOf(2)))

	// A renewal retires the certificate it renews.
	renewal := mtlsid.Issuance{At: at(21), Certificate: certificate("7001", "bob"), RevokeSerial: bobSerial,
		RevokeReason: mtlsid.ReasonSuperseded}
	renewal.Certificate.RenewedFrom = bobSerial
	mustIssue(t, s, renewal)
	f.Want(t, "renewal", revoked(bobSerial))

	if ok, err := s.SaveCRL(ctx, mtlsid.CRL{Number: 1, DER: []byte("crl"), ThisUpdate: at(1), NextUpdate: at(100)}); err != nil || !ok {
		t.Fatalf("SaveCRL = %v, %v", ok, err)
	}
	f.Want(t, "CRL", mtlsid.Event{Kind: mtlsid.EventCRL})
}

// testFollowUndo revokes a development certificate: the revocation, then
// one event per change undone, newest first.
func testFollowUndo(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	must(t, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", "viewer", 10), dev(10, mtlsid.AuditRoleGranted, "bob")))
	must(t, "AddTrust", s.AddTrust(ctx, appID, "carol", 5, dev(11, mtlsid.AuditTrustAdded, "carol")))
	f := Follow(t, s)
	revokeDev(t, s)
	f.Want(t, "undo", revoked(devSerial), relation(appID, "carol"), roles(appID, "bob"))
}

func testStoredCRL(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	ctx := t.Context()
	if _, err := s.CurrentCRL(ctx); mtlsid.ErrorKind(err) != mtlsid.KindNotFound {
		t.Fatalf("CurrentCRL of a new store: %v; want KindNotFound", err)
	}
	crl := func(n int64) mtlsid.CRL {
		return mtlsid.CRL{Number: n, DER: []byte(fmt.Sprint("CRL number ", n)), ThisUpdate: at(int(n)), NextUpdate: at(int(n) + 60)}
	}
	for _, step := range []struct {
		n    int64
		want bool
	}{{2, true}, {2, false}, {1, false}, {5, true}, {3, false}} {
		ok, err := s.SaveCRL(ctx, crl(step.n))
		if err != nil || ok != step.want {
			t.Errorf("SaveCRL(%d) = %v, %v; want %v", step.n, ok, err, step.want)
		}
	}
	got, err := s.CurrentCRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "current CRL", *got, crl(5))
	for _, bad := range []mtlsid.CRL{{Number: 9}, {Number: 0, DER: []byte("x")}} {
		if _, err := s.SaveCRL(ctx, bad); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("SaveCRL(%+v): %v; want KindInvalid", bad, err)
		}
	}
}

func testSharedSecret(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	ctx := t.Context()
	// Nodes starting at once all get the value of the first.
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			v, err := s.SharedSecret(ctx, "form-key", []byte(fmt.Sprint("candidate ", i)))
			if err != nil {
				t.Errorf("SharedSecret: %v", err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) == 0 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("SharedSecret answers differ: %q", got)
		}
	}
	if v, err := s.SharedSecret(ctx, "form-key", []byte("later")); err != nil || !bytes.Equal(v, got[0]) {
		t.Errorf("SharedSecret later = %q, %v; want %q", v, err, got[0])
	}
	if v, err := s.SharedSecret(ctx, "other", []byte("other value")); err != nil || string(v) != "other value" {
		t.Errorf("SharedSecret(other) = %q, %v", v, err)
	}
	for _, c := range []struct{ name, fresh string }{{"", "x"}, {"empty", ""}, {"\xff", "x"}} {
		if _, err := s.SharedSecret(ctx, c.name, []byte(c.fresh)); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("SharedSecret(%q, %q): %v; want KindInvalid", c.name, c.fresh, err)
		}
	}
}
