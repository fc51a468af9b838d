package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// newIntent returns an unresolved intent of app that expires at at(60).
func newIntent(ref string) mtlsid.Intent {
	return mtlsid.Intent{
		Hash: mtlsid.HashToken(ref), ServiceID: appID, Type: mtlsid.IntentBind, ReturnURL: "https://app.example.com/back?x=1",
		StrictMassl: true, LocalUserName: "bobby", CreatedAt: at(10), ExpiresAt: at(60),
	}
}

func mustIntent(t testing.TB, s mtlsid.Store, hash []byte) mtlsid.Intent {
	t.Helper()
	in, err := s.Intent(t.Context(), hash)
	must(t, "Intent", err)
	return *in
}

func testIntent(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	resolve := func(s mtlsid.Store, ref string, m int) error {
		return s.ResolveIntent(t.Context(), mtlsid.HashToken(ref), "bob", bobSerial, at(m), event(mtlsid.AuditIntentResolved, ref))
	}
	t.Run("create and get", func(t *testing.T) {
		s := newWorld(t, open)
		n := chainLen(t, s)
		in := newIntent("a")
		must(t, "CreateIntent", s.CreateIntent(t.Context(), in))
		diff(t, "intent", mustIntent(t, s, in.Hash), in)
		plain := newIntent("b")
		plain.Type, plain.StrictMassl, plain.LocalUserName = mtlsid.IntentDiscover, false, ""
		must(t, "CreateIntent", s.CreateIntent(t.Context(), plain))
		diff(t, "intent", mustIntent(t, s, plain.Hash), plain)
		wantChainLen(t, s, n) // intents are not audited until resolved
	})
	t.Run("create refused", func(t *testing.T) {
		s := newWorld(t, open)
		must(t, "CreateIntent", s.CreateIntent(t.Context(), newIntent("a")))
		again := newIntent("a")
		again.ReturnURL = "https://other.example.com/"
		wantErr(t, "CreateIntent of a known hash", s.CreateIntent(t.Context(), again), mtlsid.ErrConflict)
		diff(t, "intent", mustIntent(t, s, again.Hash), newIntent("a"))
		unknown := newIntent("b")
		unknown.ServiceID = "nope.acme"
		wantErr(t, "CreateIntent of an unknown service", s.CreateIntent(t.Context(), unknown), mtlsid.ErrNotFound)
		noHash := newIntent("c")
		noHash.Hash = nil
		wantKind(t, "CreateIntent without a hash", s.CreateIntent(t.Context(), noHash), mtlsid.KindInvalid)
		noExpiry := newIntent("d")
		noExpiry.ExpiresAt = time.Time{}
		wantKind(t, "CreateIntent without an expiry", s.CreateIntent(t.Context(), noExpiry), mtlsid.KindInvalid)
		badURL := newIntent("e")
		badURL.ReturnURL = "https://\x00"
		wantKind(t, "CreateIntent with a NUL", s.CreateIntent(t.Context(), badURL), mtlsid.KindInvalid)
		for _, ref := range []string{"b", "c", "d", "e"} {
			_, err := s.Intent(t.Context(), mtlsid.HashToken(ref))
			wantErr(t, "Intent of a refused intent", err, mtlsid.ErrNotFound)
		}
	})
	t.Run("resolve", func(t *testing.T) {
		s := newWorld(t, open)
		must(t, "CreateIntent", s.CreateIntent(t.Context(), newIntent("a")))
		n := chainLen(t, s)
		must(t, "ResolveIntent", resolve(s, "a", 20))
		want := newIntent("a")
		want.IdentityID, want.Serial, want.ResolvedAt = "bob", bobSerial, at(20)
		diff(t, "resolved intent", mustIntent(t, s, want.Hash), want)
		diff(t, "newest audit event", lastAudit(t, s).AuditEvent, event(mtlsid.AuditIntentResolved, "a"))
		wantChainLen(t, s, n+1)
	})
	t.Run("resolve refused", func(t *testing.T) {
		s := newWorld(t, open)
		must(t, "CreateIntent", s.CreateIntent(t.Context(), newIntent("a")))
		must(t, "CreateIntent", s.CreateIntent(t.Context(), newIntent("b")))
		must(t, "ResolveIntent", resolve(s, "b", 20))
		n := chainLen(t, s)
		wantErr(t, "ResolveIntent of an unknown intent", resolve(s, "x", 20), mtlsid.ErrNotFound)
		wantErr(t, "ResolveIntent at its expiry", resolve(s, "a", 60), mtlsid.ErrIntentExpired)
		wantErr(t, "ResolveIntent after its expiry", resolve(s, "a", 61), mtlsid.ErrIntentExpired)
		wantErr(t, "ResolveIntent of a resolved intent", resolve(s, "b", 21), mtlsid.ErrIntentUsed)
		wantErr(t, "ResolveIntent of a resolved, expired intent", resolve(s, "b", 61), mtlsid.ErrIntentExpired)
		wantKind(t, "ResolveIntent without an identity", s.ResolveIntent(t.Context(), mtlsid.HashToken("a"), "", "", at(20), event("x", "a")), mtlsid.KindInvalid)
		diff(t, "unresolved intent", mustIntent(t, s, mtlsid.HashToken("a")), newIntent("a"))
		if got := mustIntent(t, s, mtlsid.HashToken("b")); !got.ResolvedAt.Equal(at(20)) {
			t.Errorf("resolved at %v; want %v", got.ResolvedAt, at(20))
		}
		// Just before expiry is still in time.
		must(t, "ResolveIntent a microsecond before expiry", s.ResolveIntent(t.Context(), mtlsid.HashToken("a"), "bob", bobSerial,
			at(60).Add(-time.Microsecond), event(mtlsid.AuditIntentResolved, "a")))
		wantChainLen(t, s, n+1)
	})
	t.Run("consume", func(t *testing.T) {
		s := newWorld(t, open)
		must(t, "CreateIntent", s.CreateIntent(t.Context(), newIntent("a")))
		n := chainLen(t, s)
		consume := func(serviceID string, m int) (*mtlsid.Intent, error) {
			return s.ConsumeIntent(t.Context(), mtlsid.HashToken("a"), serviceID, at(m))
		}
		_, err := consume(appID, 15)
		wantKind(t, "ConsumeIntent of an unresolved intent", err, mtlsid.KindConflict)
		must(t, "ResolveIntent", resolve(s, "a", 20))
		_, err = consume(webID, 21)
		wantErr(t, "ConsumeIntent by another service", err, mtlsid.ErrNotFound)
		_, err = s.ConsumeIntent(t.Context(), mtlsid.HashToken("x"), appID, at(21))
		wantErr(t, "ConsumeIntent of an unknown intent", err, mtlsid.ErrNotFound)
		got, err := consume(appID, 22)
		must(t, "ConsumeIntent", err)
		want := newIntent("a")
		want.IdentityID, want.Serial, want.ResolvedAt, want.ConsumedAt = "bob", bobSerial, at(20), at(22)
		diff(t, "consumed intent", *got, want)
		diff(t, "stored intent", mustIntent(t, s, want.Hash), want)
		_, err = consume(appID, 23)
		wantErr(t, "ConsumeIntent again", err, mtlsid.ErrIntentUsed)
		_, err = consume(appID, 61)
		wantErr(t, "ConsumeIntent again after expiry", err, mtlsid.ErrIntentExpired)
		wantChainLen(t, s, n+1) // the resolution; consuming is not audited
	})
	t.Run("consume expired", func(t *testing.T) {
		s := newWorld(t, open)
		must(t, "CreateIntent", s.CreateIntent(t.Context(), newIntent("a")))
		must(t, "ResolveIntent", resolve(s, "a", 20))
		_, err := s.ConsumeIntent(t.Context(), mtlsid.HashToken("a"), appID, at(60))
		wantErr(t, "ConsumeIntent at expiry", err, mtlsid.ErrIntentExpired)
		if got := mustIntent(t, s, mtlsid.HashToken("a")); !got.ConsumedAt.IsZero() {
			t.Errorf("expired intent consumed at %v", got.ConsumedAt)
		}
	})
	t.Run("concurrent consume", func(t *testing.T) {
		s := newWorld(t, open)
		const rounds, consumers = 3, 6
		for r := range rounds {
			ref := serialOf(r)
			must(t, "CreateIntent", s.CreateIntent(t.Context(), newIntent(ref)))
			must(t, "ResolveIntent", resolve(s, ref, 20))
			var wg sync.WaitGroup
			errs := make([]error, consumers)
			for g := range consumers {
				wg.Go(func() {
					_, errs[g] = s.ConsumeIntent(t.Context(), mtlsid.HashToken(ref), appID, at(30))
				})
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				default:
					wantErr(t, "losing ConsumeIntent", err, mtlsid.ErrIntentUsed)
				}
			}
			if won != 1 {
				t.Errorf("round %d: %d consumers won; want 1", r, won)
			}
		}
	})
}

func testPurgeIntents(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := newWorld(t, open)
	ctx := t.Context()
	var hashes [][]byte
	for i := range 5 {
		in := newIntent(fmt.Sprint("purge-", i))
		in.ExpiresAt = at(60 + i)
		must(t, "CreateIntent", s.CreateIntent(ctx, in))
		hashes = append(hashes, in.Hash)
	}
	must(t, "ResolveIntent", s.ResolveIntent(ctx, hashes[0], "bob", bobSerial, at(20), event(mtlsid.AuditIntentResolved, "purge-0")))
	// Strictly before: at(62) itself stays. Batches of one still delete all.
	n, err := s.PurgeIntents(ctx, at(62), 1)
	if err != nil || n != 2 {
		t.Fatalf("PurgeIntents = %d, %v; want 2", n, err)
	}
	for i, h := range hashes {
		_, err := s.Intent(ctx, h)
		if gone := mtlsid.ErrorKind(err) == mtlsid.KindNotFound; gone != (i < 2) {
			t.Errorf("intent %d: %v after the purge", i, err)
		}
	}
	if n, err := s.PurgeIntents(ctx, at(62), 10); err != nil || n != 0 {
		t.Errorf("PurgeIntents again = %d, %v; want 0", n, err)
	}
	if n, err := s.PurgeIntents(ctx, at(1000), 2); err != nil || n != 3 {
		t.Errorf("PurgeIntents of the rest = %d, %v; want 3", n, err)
	}
	if _, err := s.PurgeIntents(ctx, at(1000), 0); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
		t.Errorf("PurgeIntents with limit 0: %v; want KindInvalid", err)
	}
}
