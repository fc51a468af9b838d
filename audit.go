package mtlsid

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// Audit event types.
const (
	AuditCACreated          = "ca.created"
	AuditTokenCreated       = "token.created"
	AuditTokenUsed          = "token.used"
	AuditCertIssued         = "certificate.issued"
	AuditCertRenewed        = "certificate.renewed"
	AuditCertRevoked        = "certificate.revoked"
	AuditServerCertIssued   = "server_certificate.issued"
	AuditAuthorityStarted   = "authority.started"
	AuditEnrollmentRejected = "enrollment.rejected"

	AuditOrgCreated         = "org.created"
	AuditMemberSet          = "org.member_set"
	AuditServiceCreated     = "service.created"
	AuditDomainAdded        = "domain.added"
	AuditDomainVerified     = "domain.verified"
	AuditRoleDefined        = "role.defined"
	AuditRoleGranted        = "role.granted"
	AuditRoleRevoked        = "role.revoked"
	AuditLocalUserBound     = "local_user.bound"
	AuditLocalUserUnbound   = "local_user.unbound"
	AuditTrustAdded         = "trust.added"
	AuditSecretSet          = "user_secret.set"
	AuditIntrusionReported  = "intrusion.reported"
	AuditIntrusionWithdrawn = "intrusion.withdrawn"
	AuditIntentResolved     = "intent.resolved"
	AuditConsent            = "identity.shared"
	AuditJournalUndone      = "development.undone"
)

// AuditEvent is one security event before it joins the chain.
type AuditEvent struct {
	Time    time.Time
	Type    string
	Actor   string // who did it: an identity ID, a serial, "local" or "system"
	Subject string // what it was done to: a serial, a token label, ...
	Detail  string // free text or JSON; part of the hash
}

// AuditEntry is an event in the append-only audit chain. Hash covers the
// entry's fields and PrevHash, so changing or removing any entry breaks
// every later link.
type AuditEntry struct {
	Seq int64
	AuditEvent
	PrevHash []byte
	Hash     []byte
}

// AuditGenesis returns the PrevHash of the first entry: all zeros. It is a
// function so that no caller can change the chain's anchor.
func AuditGenesis() []byte { return make([]byte, sha256.Size) }

// ComputeHash returns the hash of e chained to prev. Time counts to the
// microsecond, the precision both stores keep.
func (e *AuditEntry) ComputeHash(prev []byte) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field(prev)
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.Time.UnixMicro()))
	h.Write(n[:])
	field([]byte(e.Type))
	field([]byte(e.Actor))
	field([]byte(e.Subject))
	field([]byte(e.Detail))
	return h.Sum(nil)
}

// Chain fills in e's PrevHash and Hash as the entry after prev (nil for the
// first entry) and returns e.
func (e AuditEntry) Chain(prev *AuditEntry) AuditEntry {
	e.PrevHash = AuditGenesis()
	if prev != nil {
		e.PrevHash = prev.Hash
	}
	e.Hash = e.ComputeHash(e.PrevHash)
	return e
}

// AuditChainError reports the first broken link of an audit chain.
type AuditChainError struct {
	Seq    int64
	Reason string
}

func (e *AuditChainError) Error() string {
	return fmt.Sprintf("audit chain broken at entry %d: %s", e.Seq, e.Reason)
}

// AuditVerifier checks an audit chain entry by entry, in order. The zero
// value expects the chain to start at sequence 1.
type AuditVerifier struct {
	last    *AuditEntry
	checked int64
}

// Next checks e against the entry before it. It returns an *AuditChainError
// at the first broken link; the verifier must not be used after that.
func (v *AuditVerifier) Next(e AuditEntry) error {
	wantSeq, wantPrev := int64(1), AuditGenesis()
	if v.last != nil {
		wantSeq, wantPrev = v.last.Seq+1, v.last.Hash
	}
	switch {
	case e.Seq != wantSeq:
		return &AuditChainError{Seq: e.Seq, Reason: fmt.Sprintf("sequence %d follows %d: an entry is missing", e.Seq, wantSeq-1)}
	case !bytes.Equal(e.PrevHash, wantPrev):
		return &AuditChainError{Seq: e.Seq, Reason: "previous-hash field does not match the entry before"}
	case !bytes.Equal(e.Hash, e.ComputeHash(e.PrevHash)):
		return &AuditChainError{Seq: e.Seq, Reason: fmt.Sprintf("entry content does not match its hash %s", hex.EncodeToString(e.Hash))}
	}
	v.last = &e
	v.checked++
	return nil
}

// Checked returns how many entries have verified so far.
func (v *AuditVerifier) Checked() int64 { return v.checked }
