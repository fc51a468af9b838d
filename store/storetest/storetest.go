// Package storetest is the conformance suite that every mtlsid.Store
// passes: Run for behaviour, Bench for Issue throughput. Each store package
// runs it from its tests against a real database.
//
// Only the tests of store packages import it.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mtlsid/mtlsid"
)

// Run runs the conformance suite against stores made by open. Every call of
// open must return a new, empty store and close it at the end of the test
// it is given (t.Cleanup).
func Run(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("Ping", func(t *testing.T) {
		if err := open(t).Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Token", func(t *testing.T) { testToken(t, open) })
	t.Run("Issue", func(t *testing.T) { testIssue(t, open) })
	t.Run("Renewal", func(t *testing.T) { testRenewal(t, open) })
	t.Run("Revoke", func(t *testing.T) { testRevoke(t, open) })
	t.Run("RevokedCertificates", func(t *testing.T) { testRevokedCertificates(t, open) })
	t.Run("NextCRLNumber", func(t *testing.T) { testNextCRLNumber(t, open) })
	t.Run("IdentityCertificates", func(t *testing.T) { testIdentityCertificates(t, open) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, open) })
	t.Run("TimeRoundTrip", func(t *testing.T) { testTimeRoundTrip(t, open) })
	t.Run("ZeroTimes", func(t *testing.T) { testZeroTimes(t, open) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, open) })
	t.Run("Org", func(t *testing.T) { testOrg(t, open) })
	t.Run("Service", func(t *testing.T) { testService(t, open) })
	t.Run("Domain", func(t *testing.T) { testDomain(t, open) })
	t.Run("Roles", func(t *testing.T) { testRoles(t, open) })
	t.Run("Relation", func(t *testing.T) { testRelation(t, open) })
	t.Run("Journal", func(t *testing.T) { testJournal(t, open) })
	t.Run("Intent", func(t *testing.T) { testIntent(t, open) })
	t.Run("PurgeIntents", func(t *testing.T) { testPurgeIntents(t, open) })
	t.Run("Concurrency", func(t *testing.T) { testConcurrency(t, open) })
}

// VerifyChain reads the whole audit log of s in pages of pageSize and
// checks it with an mtlsid.AuditVerifier. It returns how many entries
// verified and the first broken link (an *mtlsid.AuditChainError) or read
// failure.
func VerifyChain(ctx context.Context, s mtlsid.Store, pageSize int) (int64, error) {
	var v mtlsid.AuditVerifier
	var after int64
	for {
		page, err := s.AuditLog(ctx, after, pageSize)
		if err != nil {
			return v.Checked(), err
		}
		for _, e := range page {
			if err := v.Next(e); err != nil {
				return v.Checked(), err
			}
			after = e.Seq
		}
		if len(page) < pageSize {
			return v.Checked(), nil
		}
	}
}

// at returns a fixed moment plus minutes. Its sub-microsecond part is zero,
// so stored values compare equal to it.
func at(minutes int) time.Time {
	return time.Date(2030, time.March, 4, 5, 6, 7, 891234000, time.UTC).Add(time.Duration(minutes) * time.Minute)
}

func identity(id string) *mtlsid.Identity {
	return &mtlsid.Identity{ID: id, Kind: mtlsid.KindPerson, Name: "Name of " + id, CreatedAt: at(0)}
}

func certificate(serial, identityID string) mtlsid.Certificate {
	return mtlsid.Certificate{
		Serial:     serial,
		IdentityID: identityID,
		Profile:    mtlsid.ProfileDevice,
		Name:       "device " + serial,
		DeviceType: mtlsid.DeviceBrowser,
		NotBefore:  at(0),
		NotAfter:   at(90 * 24 * 60),
		DER:        []byte("DER of " + serial),
		CreatedAt:  at(0),
	}
}

// token returns an unused token that expires at at(60).
func token(secret string) mtlsid.Token {
	return mtlsid.Token{
		Hash:      mtlsid.HashToken(secret),
		Purpose:   mtlsid.TokenDevice,
		Label:     "token " + secret,
		CreatedBy: "local",
		CreatedAt: at(0),
		ExpiresAt: at(60),
	}
}

func event(typ, subject string) mtlsid.AuditEvent {
	return mtlsid.AuditEvent{Time: at(0), Type: typ, Actor: "local", Subject: subject, Detail: `{"test":true}`}
}

// enroll is the item of a device enrollment: a token creates an identity
// with its first certificate.
func enroll(at time.Time, secret, identityID, serial string) mtlsid.Issuance {
	return mtlsid.Issuance{
		At:          at,
		TokenHash:   mtlsid.HashToken(secret),
		Identity:    identity(identityID),
		Certificate: certificate(serial, identityID),
		Audit: []mtlsid.AuditEvent{
			event(mtlsid.AuditTokenUsed, "token "+secret),
			event(mtlsid.AuditCertIssued, serial),
		},
	}
}

// issue issues a batch and fails the test if the batch as a whole failed.
func issue(t testing.TB, s mtlsid.Store, items ...mtlsid.Issuance) []error {
	t.Helper()
	errs, err := s.Issue(t.Context(), items)
	if err != nil {
		t.Fatalf("Issue: whole batch failed: %v", err)
	}
	if len(errs) != len(items) {
		t.Fatalf("Issue: %d errors for %d items", len(errs), len(items))
	}
	return errs
}

// mustIssue issues a batch and fails the test if any item failed.
func mustIssue(t testing.TB, s mtlsid.Store, items ...mtlsid.Issuance) {
	t.Helper()
	for i, err := range issue(t, s, items...) {
		if err != nil {
			t.Fatalf("Issue: item %d (serial %s): %v", i, items[i].Certificate.Serial, err)
		}
	}
}

func mustCreateToken(t testing.TB, s mtlsid.Store, tok mtlsid.Token) {
	t.Helper()
	if err := s.CreateToken(t.Context(), tok, event(mtlsid.AuditTokenCreated, tok.Label)); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
}

func mustToken(t testing.TB, s mtlsid.Store, hash []byte) mtlsid.Token {
	t.Helper()
	tok, err := s.Token(t.Context(), hash)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return *tok
}

func mustCertificate(t testing.TB, s mtlsid.Store, serial string) mtlsid.Certificate {
	t.Helper()
	c, err := s.Certificate(t.Context(), serial)
	if err != nil {
		t.Fatalf("Certificate(%s): %v", serial, err)
	}
	return *c
}

// wantAbsent fails the test unless the certificate is not stored.
func wantAbsent(t testing.TB, s mtlsid.Store, serial string) {
	t.Helper()
	if c, err := s.Certificate(t.Context(), serial); !errors.Is(err, mtlsid.ErrNotFound) {
		t.Errorf("Certificate(%s) = %+v, %v; want ErrNotFound", serial, c, err)
	}
}

// wantErr fails the test unless errors.Is(got, want) and got has want's Kind.
func wantErr(t testing.TB, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: error %v; want %v", what, got, want)
		return
	}
	if gk, wk := mtlsid.ErrorKind(got), mtlsid.ErrorKind(want); gk != wk {
		t.Errorf("%s: error kind %q; want %q", what, gk, wk)
	}
}

// chainLen verifies the audit chain and returns its length.
func chainLen(t testing.TB, s mtlsid.Store) int64 {
	t.Helper()
	n, err := VerifyChain(t.Context(), s, 100)
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return n
}

func wantChainLen(t testing.TB, s mtlsid.Store, want int64) {
	t.Helper()
	if n := chainLen(t, s); n != want {
		t.Errorf("audit chain has %d entries; want %d", n, want)
	}
}

func diff(t testing.TB, what string, got, want any) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

func serialOf(i int) string { return fmt.Sprint(1000 + i) }
