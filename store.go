package mtlsid

import (
	"context"
	"time"
)

// Store keeps everything the authority knows. Each method that writes is
// one transaction: it applies all of its change or none of it, and the
// audit events it is given join the audit chain in that same transaction.
// Implementations are safe for concurrent use. Times are kept to the
// microsecond, in UTC.
//
// Methods return *Error values with the kinds their docs name; a database
// that cannot be reached gives KindUnavailable.
type Store interface {
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the store's connections.
	Close() error

	// CreateToken stores a new token. A token with the same hash: ErrConflict.
	CreateToken(ctx context.Context, t Token, audit AuditEvent) error
	// Token returns the token with this hash, used or not: ErrNotFound.
	Token(ctx context.Context, hash []byte) (*Token, error)

	// Issue persists a batch of issuances in one transaction. Each item is
	// applied whole or not at all; errs[i] says why item i was not (a token
	// that is unknown, used or expired at the item's At: ErrTokenUnknown,
	// ErrTokenUsed, ErrTokenExpired; a serial already stored: ErrConflict; a
	// certificate to revoke that is unknown or revoked: ErrNotFound or
	// ErrRevoked). err is set only when the whole batch failed, and then
	// nothing was stored.
	Issue(ctx context.Context, items []Issuance) (errs []error, err error)
	// Certificate returns the certificate with this decimal serial:
	// ErrNotFound.
	Certificate(ctx context.Context, serial string) (*Certificate, error)
	// IdentityCertificates returns an identity's certificates, oldest first.
	IdentityCertificates(ctx context.Context, identityID string) ([]Certificate, error)
	// Revoke marks a certificate revoked at r.At: ErrNotFound, or ErrRevoked
	// if it already is.
	Revoke(ctx context.Context, r Revocation) error
	// RevokedCertificates returns the revoked certificates that have not
	// expired at now, for the CRL.
	RevokedCertificates(ctx context.Context, now time.Time) ([]Certificate, error)
	// NextCRLNumber returns a number larger than any it returned before.
	NextCRLNumber(ctx context.Context) (int64, error)

	// Identity returns the identity with this ID: ErrNotFound.
	Identity(ctx context.Context, id string) (*Identity, error)

	// AppendAudit adds events to the audit chain, in order.
	AppendAudit(ctx context.Context, events ...AuditEvent) error
	// AuditLog returns up to limit entries with Seq > after, in order.
	AuditLog(ctx context.Context, after int64, limit int) ([]AuditEntry, error)
}

// Issuance is one certificate to persist, with what must change with it.
type Issuance struct {
	At time.Time
	// TokenHash, if set, names a token the issuance uses up: it must be
	// unused and unexpired at At, and is marked used by the certificate.
	TokenHash []byte
	// Identity, if set, is created unless an identity with its ID exists.
	Identity    *Identity
	Certificate Certificate
	// RevokeSerial, if set, is a certificate revoked by this issuance (a
	// renewal that retires the old certificate), with RevokeReason.
	RevokeSerial string
	RevokeReason int
	Audit        []AuditEvent
}

// Revocation is a request to revoke one certificate.
type Revocation struct {
	Serial string
	At     time.Time
	Reason int // RFC 5280 CRLReason
	Audit  AuditEvent
}

// RFC 5280 CRL reason codes used by mtlsid.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
)
