package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

func testToken(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("create and get", func(t *testing.T) {
		s := open(t)
		tok := token("a")
		tok.IdentityID = "alice"
		mustCreateToken(t, s, tok)
		diff(t, "token", mustToken(t, s, tok.Hash), tok)
		wantChainLen(t, s, 1)
	})
	t.Run("duplicate hash", func(t *testing.T) {
		s := open(t)
		mustCreateToken(t, s, token("a"))
		again := token("a")
		again.Label = "other"
		err := s.CreateToken(t.Context(), again, event(mtlsid.AuditTokenCreated, "other"))
		wantErr(t, "CreateToken of a known hash", err, mtlsid.ErrConflict)
		diff(t, "token", mustToken(t, s, again.Hash), token("a"))
		wantChainLen(t, s, 1)
	})
	t.Run("not found", func(t *testing.T) {
		s := open(t)
		mustCreateToken(t, s, token("a"))
		_, err := s.Token(t.Context(), mtlsid.HashToken("b"))
		wantErr(t, "Token of an unknown hash", err, mtlsid.ErrNotFound)
	})
	t.Run("no hash", func(t *testing.T) {
		s := open(t)
		tok := token("a")
		tok.Hash = nil
		err := s.CreateToken(t.Context(), tok, event(mtlsid.AuditTokenCreated, "a"))
		if mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("CreateToken without a hash: %v; want KindInvalid", err)
		}
		wantChainLen(t, s, 0)
	})
}

func testIssue(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("empty batch", func(t *testing.T) {
		s := open(t)
		if errs := issue(t, s); len(errs) != 0 {
			t.Errorf("Issue of no items: errs %v", errs)
		}
	})
	t.Run("new identity with token", func(t *testing.T) {
		s := open(t)
		mustCreateToken(t, s, token("a"))
		it := enroll(at(10), "a", "alice", "101")
		mustIssue(t, s, it)

		diff(t, "certificate", mustCertificate(t, s, "101"), it.Certificate)
		id, err := s.Identity(t.Context(), "alice")
		if err != nil {
			t.Fatalf("Identity: %v", err)
		}
		diff(t, "identity", *id, *it.Identity)
		want := token("a")
		want.UsedAt, want.UsedBy = at(10), "101"
		diff(t, "token", mustToken(t, s, want.Hash), want)
		wantChainLen(t, s, 3)
	})
	t.Run("existing identity kept", func(t *testing.T) {
		s := open(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
		other := identity("alice")
		other.Name, other.CreatedAt = "Someone else", at(5)
		mustIssue(t, s, mtlsid.Issuance{At: at(5), Identity: other, Certificate: certificate("2", "alice")})
		id, err := s.Identity(t.Context(), "alice")
		if err != nil {
			t.Fatalf("Identity: %v", err)
		}
		diff(t, "identity", *id, *identity("alice"))
	})
	t.Run("existing identity without Identity", func(t *testing.T) {
		s := open(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
		mustIssue(t, s, mtlsid.Issuance{At: at(2), Certificate: certificate("2", "alice")})
	})
	t.Run("unknown identity", func(t *testing.T) {
		s := open(t)
		errs := issue(t, s, mtlsid.Issuance{At: at(1), Certificate: certificate("1", "ghost")})
		wantErr(t, "certificate of an unknown identity", errs[0], mtlsid.ErrNotFound)
		// Creating one identity does not vouch for another.
		errs = issue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("2", "ghost")})
		wantErr(t, "certificate of another identity", errs[0], mtlsid.ErrNotFound)
		wantAbsent(t, s, "1")
		wantAbsent(t, s, "2")
		if _, err := s.Identity(t.Context(), "alice"); !errors.Is(err, mtlsid.ErrNotFound) {
			t.Errorf("identity of a failed item: %v; want ErrNotFound", err)
		}
	})
	t.Run("used token", func(t *testing.T) {
		s := open(t)
		mustCreateToken(t, s, token("a"))
		mustIssue(t, s, enroll(at(10), "a", "alice", "101"))
		errs := issue(t, s, enroll(at(11), "a", "bob", "102"))
		wantErr(t, "second use of a token", errs[0], mtlsid.ErrTokenUsed)
		wantAbsent(t, s, "102")
		if got := mustToken(t, s, mtlsid.HashToken("a")); got.UsedBy != "101" || !got.UsedAt.Equal(at(10)) {
			t.Errorf("token used by %q at %v; want 101 at %v", got.UsedBy, got.UsedAt, at(10))
		}
	})
	t.Run("expired token", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			at   time.Time
			want error
		}{
			{"a microsecond before expiry", at(60).Add(-time.Microsecond), nil},
			{"at expiry", at(60), mtlsid.ErrTokenExpired},
			{"after expiry", at(61), mtlsid.ErrTokenExpired},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t)
				mustCreateToken(t, s, token("a"))
				errs := issue(t, s, enroll(tc.at, "a", "alice", "101"))
				if tc.want == nil {
					if errs[0] != nil {
						t.Fatalf("Issue: %v", errs[0])
					}
					return
				}
				wantErr(t, "Issue", errs[0], tc.want)
				wantAbsent(t, s, "101")
				diff(t, "token", mustToken(t, s, mtlsid.HashToken("a")), token("a"))
			})
		}
	})
	t.Run("unknown token", func(t *testing.T) {
		s := open(t)
		errs := issue(t, s, enroll(at(1), "nope", "alice", "101"))
		wantErr(t, "Issue with an unknown token", errs[0], mtlsid.ErrTokenUnknown)
		wantAbsent(t, s, "101")
		wantChainLen(t, s, 0)
	})
	t.Run("duplicate serial in a later batch", func(t *testing.T) {
		s := open(t)
		first := mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("7", "alice")}
		mustIssue(t, s, first)
		mustCreateToken(t, s, token("b"))
		errs := issue(t, s, enroll(at(2), "b", "bob", "7"))
		wantErr(t, "Issue of a stored serial", errs[0], mtlsid.ErrConflict)
		diff(t, "certificate", mustCertificate(t, s, "7"), first.Certificate)
		diff(t, "token", mustToken(t, s, mtlsid.HashToken("b")), token("b"))
	})
	t.Run("duplicate serial in the same batch", func(t *testing.T) {
		s := open(t)
		mustCreateToken(t, s, token("b"))
		first := mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("7", "alice"),
			Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertIssued, "7")}}
		errs := issue(t, s, first, enroll(at(1), "b", "bob", "7"))
		if errs[0] != nil {
			t.Fatalf("first item: %v", errs[0])
		}
		wantErr(t, "second item with the same serial", errs[1], mtlsid.ErrConflict)
		diff(t, "certificate", mustCertificate(t, s, "7"), first.Certificate)
		diff(t, "token", mustToken(t, s, mtlsid.HashToken("b")), token("b"))
		if _, err := s.Identity(t.Context(), "bob"); !errors.Is(err, mtlsid.ErrNotFound) {
			t.Errorf("identity of the failed item: %v; want ErrNotFound", err)
		}
		wantChainLen(t, s, 2)
	})
	t.Run("failed item leaves nothing", func(t *testing.T) {
		s := open(t)
		mustCreateToken(t, s, token("b"))
		before := chainLen(t, s)
		bad := enroll(at(2), "b", "bob", "8")
		bad.RevokeSerial = "404"
		errs := issue(t, s,
			mtlsid.Issuance{At: at(2), Identity: identity("alice"), Certificate: certificate("7", "alice"),
				Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertIssued, "7")}},
			bad,
			mtlsid.Issuance{At: at(2), Certificate: certificate("9", "alice"),
				Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertIssued, "9")}},
		)
		if errs[0] != nil || errs[2] != nil {
			t.Fatalf("good items: %v, %v", errs[0], errs[2])
		}
		wantErr(t, "item revoking an unknown serial", errs[1], mtlsid.ErrNotFound)
		wantAbsent(t, s, "8")
		diff(t, "token", mustToken(t, s, mtlsid.HashToken("b")), token("b"))
		if _, err := s.Identity(t.Context(), "bob"); !errors.Is(err, mtlsid.ErrNotFound) {
			t.Errorf("identity of the failed item: %v; want ErrNotFound", err)
		}
		mustCertificate(t, s, "7")
		mustCertificate(t, s, "9")
		wantChainLen(t, s, before+2)
	})
	t.Run("batch", func(t *testing.T) { testIssueBatch(t, open) })
	t.Run("development certificate", func(t *testing.T) {
		s := open(t)
		prod := certificate("1", "svc")
		dev := certificate("2", "svc")
		dev.Development = true
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("svc"), Certificate: prod},
			mtlsid.Issuance{At: at(1), Certificate: dev})
		diff(t, "development certificate", mustCertificate(t, s, "2"), dev)
		diff(t, "production certificate", mustCertificate(t, s, "1"), prod)
		certs, err := s.IdentityCertificates(t.Context(), "svc")
		if err != nil {
			t.Fatalf("IdentityCertificates: %v", err)
		}
		diff(t, "identity certificates", certs, []mtlsid.Certificate{prod, dev})
		if err := s.Revoke(t.Context(), mtlsid.Revocation{Serial: "2", At: at(2)}); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		revoked, err := s.RevokedCertificates(t.Context(), at(3))
		if err != nil || len(revoked) != 1 || !revoked[0].Development {
			t.Errorf("RevokedCertificates = %+v, %v; want the development certificate", revoked, err)
		}
	})
	t.Run("invalid item", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			change func(*mtlsid.Issuance)
		}{
			{"no serial", func(it *mtlsid.Issuance) { it.Certificate.Serial = "" }},
			{"no identity", func(it *mtlsid.Issuance) { it.Certificate.IdentityID = "" }},
			{"identity without ID", func(it *mtlsid.Issuance) { it.Identity = &mtlsid.Identity{Name: "x"} }},
			{"NUL in audit detail", func(it *mtlsid.Issuance) { it.Audit[0].Detail = "a\x00b" }},
			{"invalid UTF-8 in name", func(it *mtlsid.Issuance) { it.Certificate.Name = "\xff" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := open(t)
				bad := mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice"),
					Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertIssued, "1")}}
				tc.change(&bad)
				good := mtlsid.Issuance{At: at(1), Identity: identity("bob"), Certificate: certificate("2", "bob")}
				errs := issue(t, s, bad, good)
				if mtlsid.ErrorKind(errs[0]) != mtlsid.KindInvalid {
					t.Errorf("invalid item: %v; want KindInvalid", errs[0])
				}
				if errs[1] != nil {
					t.Errorf("valid item: %v", errs[1])
				}
				wantChainLen(t, s, 0)
			})
		}
	})
	t.Run("token race", func(t *testing.T) {
		s := open(t)
		for round := range 4 {
			secret := "race" + serialOf(round)
			mustCreateToken(t, s, token(secret))
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for g := range errs {
				it := enroll(at(1), secret, "id-"+secret+serialOf(g), secret+"-"+serialOf(g))
				wg.Go(func() {
					es, err := s.Issue(t.Context(), []mtlsid.Issuance{it})
					if err == nil {
						err = es[0]
					}
					errs[g] = err
				})
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, mtlsid.ErrTokenUsed):
					t.Errorf("round %d: loser got %v; want ErrTokenUsed", round, err)
				}
			}
			if won != 1 {
				t.Errorf("round %d: %d issuances used one token; want 1", round, won)
			}
		}
		chainLen(t, s)
	})
}

// testIssueBatch checks that each item sees what the items accepted before
// it in its batch changed, and nothing of those refused.
func testIssueBatch(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	newCert := func(serial string) mtlsid.Issuance {
		return mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate(serial, "alice")}
	}
	renew := func(serial, old string) mtlsid.Issuance {
		it := newCert(serial)
		it.Identity, it.RevokeSerial, it.RevokeReason = nil, old, mtlsid.ReasonSuperseded
		return it
	}
	withToken := func(it mtlsid.Issuance, secret string) mtlsid.Issuance {
		it.TokenHash = mtlsid.HashToken(secret)
		return it
	}
	for _, tc := range []struct {
		name  string
		items []mtlsid.Issuance
		want  []error
	}{
		{"one token twice",
			[]mtlsid.Issuance{enroll(at(1), "a", "alice", "1"), enroll(at(1), "a", "bob", "2")},
			[]error{nil, mtlsid.ErrTokenUsed}},
		{"identity created by an earlier item",
			[]mtlsid.Issuance{newCert("1"), renew("2", "")},
			[]error{nil, nil}},
		{"identity created twice",
			[]mtlsid.Issuance{newCert("1"), newCert("2")},
			[]error{nil, nil}},
		{"identity of a refused item",
			[]mtlsid.Issuance{withToken(newCert("1"), "nope"), renew("2", "")},
			[]error{mtlsid.ErrTokenUnknown, mtlsid.ErrNotFound}},
		{"serial of a refused item",
			[]mtlsid.Issuance{withToken(newCert("1"), "nope"), newCert("1")},
			[]error{mtlsid.ErrTokenUnknown, nil}},
		{"revoke an earlier item's certificate, twice",
			[]mtlsid.Issuance{newCert("1"), renew("2", "1"), renew("3", "1")},
			[]error{nil, nil, mtlsid.ErrRevoked}},
		{"revoke a refused item's certificate",
			[]mtlsid.Issuance{withToken(newCert("1"), "nope"), renew("2", "1")},
			[]error{mtlsid.ErrTokenUnknown, mtlsid.ErrNotFound}},
		{"token of a refused item",
			[]mtlsid.Issuance{renew("1", "404"), enroll(at(1), "a", "alice", "2")},
			[]error{mtlsid.ErrNotFound, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			mustCreateToken(t, s, token("a"))
			errs := issue(t, s, tc.items...)
			accepted := int64(1) // the token's creation
			for i, err := range errs {
				if tc.want[i] == nil {
					if err != nil {
						t.Errorf("item %d: %v", i, err)
					}
					mustCertificate(t, s, tc.items[i].Certificate.Serial)
					accepted += int64(len(tc.items[i].Audit))
					continue
				}
				wantErr(t, fmt.Sprintf("item %d", i), err, tc.want[i])
			}
			wantChainLen(t, s, accepted)
		})
	}
}

func testRenewal(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	renewal := func(at time.Time) mtlsid.Issuance {
		c := certificate("2", "alice")
		c.RenewedFrom = "1"
		return mtlsid.Issuance{
			At: at, Certificate: c, RevokeSerial: "1", RevokeReason: mtlsid.ReasonSuperseded,
			Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertRenewed, "2")},
		}
	}
	setup := func(t *testing.T) mtlsid.Store {
		s := open(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
		return s
	}
	t.Run("revokes the old certificate", func(t *testing.T) {
		s := setup(t)
		it := renewal(at(20))
		mustIssue(t, s, it)
		old := certificate("1", "alice")
		old.RevokedAt, old.RevocationReason = at(20), mtlsid.ReasonSuperseded
		diff(t, "old certificate", mustCertificate(t, s, "1"), old)
		diff(t, "new certificate", mustCertificate(t, s, "2"), it.Certificate)
		wantChainLen(t, s, 1)
	})
	t.Run("old certificate revoked", func(t *testing.T) {
		s := setup(t)
		if err := s.Revoke(t.Context(), mtlsid.Revocation{Serial: "1", At: at(10), Audit: event(mtlsid.AuditCertRevoked, "1")}); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		errs := issue(t, s, renewal(at(20)))
		wantErr(t, "renewal of a revoked certificate", errs[0], mtlsid.ErrRevoked)
		wantAbsent(t, s, "2")
		if got := mustCertificate(t, s, "1"); !got.RevokedAt.Equal(at(10)) || got.RevocationReason != 0 {
			t.Errorf("old certificate revoked at %v for %d; want %v for 0", got.RevokedAt, got.RevocationReason, at(10))
		}
		wantChainLen(t, s, 1)
	})
	t.Run("old certificate unknown", func(t *testing.T) {
		s := open(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("3", "alice")})
		errs := issue(t, s, renewal(at(20)))
		wantErr(t, "renewal of an unknown certificate", errs[0], mtlsid.ErrNotFound)
		wantAbsent(t, s, "2")
	})
}
