package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

func testRevoke(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	setup := func(t *testing.T) mtlsid.Store {
		s := open(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
		return s
	}
	revocation := func(serial string, minutes int) mtlsid.Revocation {
		return mtlsid.Revocation{Serial: serial, At: at(minutes), Reason: mtlsid.ReasonKeyCompromise,
			Audit: event(mtlsid.AuditCertRevoked, serial)}
	}
	t.Run("revoke", func(t *testing.T) {
		s := setup(t)
		if err := s.Revoke(t.Context(), revocation("1", 30)); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		want := certificate("1", "alice")
		want.RevokedAt, want.RevocationReason = at(30), mtlsid.ReasonKeyCompromise
		got := mustCertificate(t, s, "1")
		diff(t, "certificate", got, want)
		if !got.Revoked() || got.Status(at(31)) != mtlsid.StatusRevoked {
			t.Errorf("revoked certificate: Revoked %v, Status %q", got.Revoked(), got.Status(at(31)))
		}
		wantChainLen(t, s, 1)
	})
	t.Run("already revoked", func(t *testing.T) {
		s := setup(t)
		if err := s.Revoke(t.Context(), revocation("1", 30)); err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		wantErr(t, "second Revoke", s.Revoke(t.Context(), revocation("1", 40)), mtlsid.ErrRevoked)
		if got := mustCertificate(t, s, "1"); !got.RevokedAt.Equal(at(30)) {
			t.Errorf("revoked at %v after a second Revoke; want %v", got.RevokedAt, at(30))
		}
		wantChainLen(t, s, 1)
	})
	t.Run("not found", func(t *testing.T) {
		s := setup(t)
		wantErr(t, "Revoke of an unknown serial", s.Revoke(t.Context(), revocation("2", 30)), mtlsid.ErrNotFound)
		wantChainLen(t, s, 0)
	})
}

func testRevokedCertificates(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	now := at(1000)
	cert := func(serial string, notAfter time.Time) mtlsid.Issuance {
		c := certificate(serial, "alice")
		c.NotAfter = notAfter
		return mtlsid.Issuance{At: at(1), Certificate: c}
	}
	mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
	mustIssue(t, s,
		cert("2", at(2000)),                   // revoked, valid at now: listed
		cert("3", at(500)),                    // revoked, expired: not listed
		cert("4", now),                        // revoked, in its last moment (Status: active): listed
		cert("5", now.Add(-time.Microsecond)), // revoked, just expired: not listed
		cert("6", at(2000)),                   // not revoked: not listed
	)
	for i, serial := range []string{"5", "2", "3", "4"} {
		if err := s.Revoke(t.Context(), mtlsid.Revocation{Serial: serial, At: at(10 + i)}); err != nil {
			t.Fatalf("Revoke(%s): %v", serial, err)
		}
	}
	got, err := s.RevokedCertificates(t.Context(), now)
	if err != nil {
		t.Fatalf("RevokedCertificates: %v", err)
	}
	var serials []string
	for _, c := range got {
		if !c.Revoked() {
			t.Errorf("certificate %s listed but not revoked", c.Serial)
		}
		serials = append(serials, c.Serial)
	}
	slices.Sort(serials)
	diff(t, "revoked serials", serials, []string{"2", "4"})
}

func testNextCRLNumber(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	var last int64
	for i := range 5 {
		n, err := s.NextCRLNumber(t.Context())
		if err != nil {
			t.Fatalf("NextCRLNumber: %v", err)
		}
		if n <= last || n < 1 {
			t.Errorf("call %d: CRL number %d after %d", i, n, last)
		}
		last = n
	}
}

func testIdentityCertificates(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	item := func(serial, identityID string, created int) mtlsid.Issuance {
		c := certificate(serial, identityID)
		c.CreatedAt = at(created)
		return mtlsid.Issuance{At: at(created), Identity: identity(identityID), Certificate: c}
	}
	// Serials do not sort by age, and 2 and 4 were created at one moment.
	mustIssue(t, s, item("1", "alice", 3), item("2", "alice", 1), item("10", "bob", 0))
	mustIssue(t, s, item("3", "alice", 2), item("4", "alice", 1))
	got, err := s.IdentityCertificates(t.Context(), "alice")
	if err != nil {
		t.Fatalf("IdentityCertificates: %v", err)
	}
	var serials []string
	for _, c := range got {
		serials = append(serials, c.Serial)
	}
	diff(t, "serials, oldest first", serials, []string{"2", "4", "3", "1"})
	if len(got) == 4 {
		diff(t, "certificate", got[0], item("2", "alice", 1).Certificate)
	}

	none, err := s.IdentityCertificates(t.Context(), "nobody")
	if err != nil || len(none) != 0 {
		t.Errorf("IdentityCertificates of an unknown identity = %v, %v; want none", none, err)
	}
}

func testNotFound(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
	_, err := s.Certificate(t.Context(), "2")
	wantErr(t, "Certificate", err, mtlsid.ErrNotFound)
	_, err = s.Identity(t.Context(), "bob")
	wantErr(t, "Identity", err, mtlsid.ErrNotFound)
	_, err = s.Token(t.Context(), mtlsid.HashToken("x"))
	wantErr(t, "Token", err, mtlsid.ErrNotFound)
}
