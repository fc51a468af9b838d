package postgres

import (
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/storetest"
)

func TestFleet(t *testing.T) {
	admin(t, testURL(t), `SELECT 1`) // skip or fail once, not in every subtest
	storetest.RunFleet(t, func(t *testing.T) mtlsid.Store { return openTest(t) })
}

// TestFollowAcrossNodes: two stores on one schema are two nodes; each
// hears the other's changes, and a store on another schema of the same
// database hears neither.
func TestFollowAcrossNodes(t *testing.T) {
	u, _ := newSchema(t)
	a, b := openURL(t, u), openURL(t, u)
	other := openTest(t)
	fb, fo := storetest.Follow(t, b), storetest.Follow(t, other)

	mustIssueOne(t, a, "alice", "1001")
	if err := a.Revoke(t.Context(), mtlsid.Revocation{Serial: "1001", Reason: mtlsid.ReasonKeyCompromise,
		Audit: mtlsid.AuditEvent{Type: mtlsid.AuditCertRevoked, Actor: "local", Subject: "1001"}}); err != nil {
		t.Fatal(err)
	}
	fb.Want(t, "node b", mtlsid.Event{Kind: mtlsid.EventRevoked, Serial: "1001"})

	// The other schema's first event is its own change, not a's.
	mustIssueOne(t, other, "bob", "2002")
	if _, err := other.SaveCRL(t.Context(), mtlsid.CRL{Number: 1, DER: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	fo.Want(t, "other schema", mtlsid.Event{Kind: mtlsid.EventCRL})
}

// TestFollowReconnects kills the LISTEN connection on the server side:
// Follow reconnects by itself and says so with EventReset, and events
// flow again.
func TestFollowReconnects(t *testing.T) {
	u, _ := newSchema(t)
	s := openURL(t, u)
	f := storetest.Follow(t, s)
	admin(t, testURL(t), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND query LIKE '%`+s.channel+`%'`)
	f.Want(t, "after the connection was killed", mtlsid.Event{Kind: mtlsid.EventReset})
	if _, err := s.SaveCRL(t.Context(), mtlsid.CRL{Number: 7, DER: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	f.Want(t, "after reconnecting", mtlsid.Event{Kind: mtlsid.EventCRL})
}

func mustIssueOne(t *testing.T, s *Store, identity, serial string) {
	t.Helper()
	errs, err := s.Issue(t.Context(), []mtlsid.Issuance{{
		Identity:    &mtlsid.Identity{ID: identity, Kind: mtlsid.KindPerson, Name: identity},
		Certificate: mtlsid.Certificate{Serial: serial, IdentityID: identity, Profile: mtlsid.ProfileDevice, Name: "d", DER: []byte("der")},
	}})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		t.Fatalf("Issue %s: %v", serial, err)
	}
}
