package storetest

import (
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// testTimeRoundTrip stores times with nanoseconds in a zone other than UTC,
// and expects them back in UTC, cut to the microsecond.
func testTimeRoundTrip(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	odd := func(minutes int) time.Time { return at(minutes).In(zone).Add(999 * time.Nanosecond) }
	stored := func(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

	tok := token("a")
	tok.CreatedAt, tok.ExpiresAt = odd(0), odd(60)
	mustCreateToken(t, s, tok)

	id := identity("alice")
	id.CreatedAt = odd(1)
	c := certificate("1", "alice")
	// Before 1970, and the latest time RFC 5280 allows: both must survive.
	c.NotBefore = time.Date(1969, time.December, 31, 23, 59, 59, 999999999, zone)
	c.NotAfter = time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC)
	c.CreatedAt = odd(2)
	ev := event(mtlsid.AuditCertIssued, "1")
	ev.Time = odd(3)
	mustIssue(t, s, mtlsid.Issuance{At: odd(4), TokenHash: tok.Hash, Identity: id, Certificate: c, Audit: []mtlsid.AuditEvent{ev}})
	if err := s.Revoke(t.Context(), mtlsid.Revocation{Serial: "1", At: odd(5), Reason: mtlsid.ReasonCessationOfOperation}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}

	wantTok := tok
	wantTok.CreatedAt, wantTok.ExpiresAt = stored(tok.CreatedAt), stored(tok.ExpiresAt)
	wantTok.UsedAt, wantTok.UsedBy = stored(odd(4)), "1"
	diff(t, "token", mustToken(t, s, tok.Hash), wantTok)

	wantID := *id
	wantID.CreatedAt = stored(id.CreatedAt)
	gotID, err := s.Identity(t.Context(), "alice")
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	diff(t, "identity", *gotID, wantID)

	wantCert := c
	wantCert.NotBefore, wantCert.NotAfter, wantCert.CreatedAt = stored(c.NotBefore), stored(c.NotAfter), stored(c.CreatedAt)
	wantCert.RevokedAt, wantCert.RevocationReason = stored(odd(5)), mtlsid.ReasonCessationOfOperation
	diff(t, "certificate", mustCertificate(t, s, "1"), wantCert)

	log, err := s.AuditLog(t.Context(), 1, 1)
	if err != nil || len(log) != 1 {
		t.Fatalf("AuditLog = %v, %v", log, err)
	}
	wantEv := ev
	wantEv.Time = stored(ev.Time)
	diff(t, "audit event", log[0].AuditEvent, wantEv)
	chainLen(t, s)
}

// testZeroTimes checks that zero times become the write's own time.
func testZeroTimes(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	before := time.Now().UTC().Truncate(time.Microsecond)
	tok := token("a")
	tok.CreatedAt, tok.ExpiresAt = time.Time{}, time.Now().Add(time.Hour)
	if err := s.CreateToken(t.Context(), tok, mtlsid.AuditEvent{Type: mtlsid.AuditTokenCreated}); err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	id := identity("alice")
	id.CreatedAt = time.Time{}
	c := certificate("1", "alice")
	c.CreatedAt = time.Time{}
	mustIssue(t, s, mtlsid.Issuance{TokenHash: tok.Hash, Identity: id, Certificate: c,
		Audit: []mtlsid.AuditEvent{{Type: mtlsid.AuditCertIssued, Subject: "1"}}})
	if err := s.Revoke(t.Context(), mtlsid.Revocation{Serial: "1"}); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	after := time.Now().UTC()

	check := func(what string, got time.Time) {
		t.Helper()
		if got.Before(before) || got.After(after) || got.Location() != time.UTC {
			t.Errorf("%s = %v; want a UTC time within [%v, %v]", what, got, before, after)
		}
	}
	gotTok := mustToken(t, s, tok.Hash)
	check("token CreatedAt", gotTok.CreatedAt)
	check("token UsedAt", gotTok.UsedAt)
	gotID, err := s.Identity(t.Context(), "alice")
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	check("identity CreatedAt", gotID.CreatedAt)
	gotCert := mustCertificate(t, s, "1")
	check("certificate CreatedAt", gotCert.CreatedAt)
	check("certificate RevokedAt", gotCert.RevokedAt)
	log, err := s.AuditLog(t.Context(), 0, 10)
	if err != nil {
		t.Fatalf("AuditLog: %v", err)
	}
	for _, e := range log {
		check("audit time of "+e.Type, e.Time)
	}
	chainLen(t, s)
}
