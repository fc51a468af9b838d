package mtlsid

import (
	"context"
	"time"
)

// Audit event types of the account pages.
const (
	AuditConsentWithdrawn = "identity.unshared"
	AuditInviteCreated    = "org.invite_created"
	AuditInviteAccepted   = "org.invite_accepted"
	AuditDeviceRenamed    = "certificate.renamed"
)

// Consent is a person's sharing of their identity with a service, as the
// "my identity" page lists it.
type Consent struct {
	ServiceID  string
	IdentityID string
	OrgID      string
	OrgName    string
	SharedAt   time.Time
}

// JournalEntry is one change a development certificate made, which
// revoking the certificate undoes.
type JournalEntry struct {
	Serial string
	Seq    int64 // 1 for the certificate's first change
	At     time.Time
	// Kind names the row changed: "role" (Key is the role), "local_user",
	// "trust", "secret" or "intrusion" (Key is the report's reference).
	Kind       string
	ServiceID  string
	IdentityID string
	Key        string
	// Created says the change created the row, so the undo removes it;
	// otherwise the undo puts the row back as it was.
	Created bool
}

// Invite is a one-time link to join an organization. The secret in the
// link is never stored: Hash is its SHA-256 (HashToken).
type Invite struct {
	Hash      []byte
	OrgID     string
	Role      OrgRole
	CreatedBy string // the inviting identity's ID
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is zero until someone accepts; UsedBy is then their identity.
	UsedAt time.Time
	UsedBy string
}

// AccountStore keeps what the account pages add: consents a person may
// withdraw, a development certificate's journal, organization invites,
// and display names of devices. Write methods are one transaction each,
// with their audit event.
type AccountStore interface {
	// IdentityConsents lists the services an identity shared itself with,
	// newest first, with their organization's name.
	IdentityConsents(ctx context.Context, identityID string) ([]Consent, error)
	// ServiceConsents lists the identities that shared themselves with a
	// service, newest first (OrgName empty).
	ServiceConsents(ctx context.Context, serviceID string) ([]Consent, error)
	// WithdrawConsent forgets that the identity shared itself with the
	// service: ErrNotFound if it had not. The next sign-on asks again.
	WithdrawConsent(ctx context.Context, serviceID, identityID string, audit AuditEvent) error

	// DevelopmentJournal lists the changes journaled under a development
	// certificate's serial, newest first: what revoking it undoes. An
	// unknown or revoked certificate has none.
	DevelopmentJournal(ctx context.Context, serial string) ([]JournalEntry, error)

	// CreateInvite stores an unused invite: ErrConflict on a duplicate
	// hash, ErrNotFound for an unknown organization.
	CreateInvite(ctx context.Context, in Invite, audit AuditEvent) error
	// OrgInvites lists an organization's invites, used or not, newest
	// first.
	OrgInvites(ctx context.Context, orgID string) ([]Invite, error)
	// AcceptInvite uses the invite with this hash at at, making identityID
	// a member with the invite's role (one already a member keeps their
	// role), and returns the invite: ErrTokenUnknown,
	// ErrTokenUsed, ErrTokenExpired (ExpiresAt <= at).
	AcceptInvite(ctx context.Context, hash []byte, identityID string, at time.Time, audit AuditEvent) (*Invite, error)

	// SetDeviceName sets the name a person gave a certificate of theirs
	// on the pages ("" clears it): ErrNotFound for an unknown serial.
	SetDeviceName(ctx context.Context, serial, name string, audit AuditEvent) error
	// DeviceNames returns the names set for an identity's certificates,
	// by serial.
	DeviceNames(ctx context.Context, identityID string) (map[string]string, error)
}
