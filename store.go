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
	// if it already is. Revoking a development certificate also undoes, in
	// the same transaction and newest first, every change journaled under
	// its serial (see Change).
	Revoke(ctx context.Context, r Revocation) error
	// RevokedCertificates returns the revoked certificates that have not
	// expired at now, for the CRL.
	RevokedCertificates(ctx context.Context, now time.Time) ([]Certificate, error)
	// NextCRLNumber returns a number larger than any it returned before.
	NextCRLNumber(ctx context.Context) (int64, error)

	// Identity returns the identity with this ID: ErrNotFound.
	Identity(ctx context.Context, id string) (*Identity, error)

	// Organizations, members, services, domains and service role names.
	OrgStore
	// What services know of identities, and the changes to it.
	RelationStore
	// Redirect sign-on.
	IntentStore
	// Contacts, expiry notices, their delivery log, and job leases.
	NoticeStore
	// Consents, development journals, invites and device names.
	AccountStore
	// Events between nodes, the shared CRL and shared secrets.
	FleetStore

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
	// renewal that retires the old certificate), with RevokeReason. If it
	// is a development certificate, its journal passes to Certificate when
	// that is a development certificate renewing it (RenewedFrom ==
	// RevokeSerial), so the changes live on until the renewal is revoked;
	// otherwise the journal is undone as by Revoke, with its
	// AuditJournalUndone event after Audit.
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

// OrgStore keeps organizations and their services. Write methods are one
// transaction each, with their audit event, appended whenever the call
// succeeds. A write naming an unknown organization, service or identity:
// ErrNotFound.
type OrgStore interface {
	// CreateOrg stores a new organization with its first member (its
	// administrator): ErrConflict if the ID is taken.
	CreateOrg(ctx context.Context, o Organization, admin Member, audit AuditEvent) error
	// Org returns an organization: ErrNotFound.
	Org(ctx context.Context, id string) (*Organization, error)
	// SetMember adds a member or changes its role.
	SetMember(ctx context.Context, m Member, audit AuditEvent) error
	// Member returns an identity's membership of an organization:
	// ErrNotFound if it is not a member.
	Member(ctx context.Context, orgID, identityID string) (*Member, error)
	// OrgMembers lists an organization's members, oldest first.
	OrgMembers(ctx context.Context, orgID string) ([]Member, error)
	// Memberships lists the organizations an identity belongs to.
	Memberships(ctx context.Context, identityID string) ([]Member, error)

	// CreateService stores a service, the identity of its agents (ID =
	// s.ID, KindService) and its default domain (verified): ErrConflict if
	// the service ID or the domain is taken; ErrNotFound if the org is
	// unknown.
	CreateService(ctx context.Context, s Service, def Domain, audit AuditEvent) error
	// Service returns a service: ErrNotFound.
	Service(ctx context.Context, id string) (*Service, error)
	// OrgServices lists an organization's services by name.
	OrgServices(ctx context.Context, orgID string) ([]Service, error)

	// AddDomain adds an unverified domain: ErrConflict if any service has it.
	AddDomain(ctx context.Context, d Domain, audit AuditEvent) error
	// Domain returns a domain by name: ErrNotFound.
	Domain(ctx context.Context, name string) (*Domain, error)
	// ServiceDomains lists a service's domains by name.
	ServiceDomains(ctx context.Context, serviceID string) ([]Domain, error)
	// VerifyDomain marks a domain verified by method at at: ErrNotFound.
	VerifyDomain(ctx context.Context, name, method string, at time.Time, audit AuditEvent) error

	// DefineRole adds a role name to a service; defining one twice is no
	// error.
	DefineRole(ctx context.Context, serviceID, role string, audit AuditEvent) error
	// ServiceRoles lists the role names a service defined, sorted.
	ServiceRoles(ctx context.Context, serviceID string) ([]string, error)
}

// RelationStore keeps what services know of identities. Each change takes
// a Change: it is one transaction with c.Audit (appended whenever the call
// succeeds, even if nothing changed), and when c.Development is set it is
// journaled under c.By so that revoking that certificate undoes it (a
// grant is removed, a revocation re-granted, a binding restored to what it
// was, and so on). A change that changes nothing journals nothing. The
// undo restores each row as it was before the development change, even
// if a later change wrote it too: the undo is the last writer.
//
// A development change whose c.By is not a stored development
// certificate is refused (ErrNotFound, or KindInvalid), and so is one by a
// revoked certificate (ErrRevoked): it would never be undone. A change
// naming an unknown service or identity: ErrNotFound.
type RelationStore interface {
	// GrantRole grants a role; granting a held role is no error.
	GrantRole(ctx context.Context, g RoleGrant, c Change) error
	// RevokeRole takes a role away: ErrNotFound if it was not held.
	RevokeRole(ctx context.Context, serviceID, identityID, role string, c Change) error
	// ServiceGrants lists a service's role grants by identity and role.
	ServiceGrants(ctx context.Context, serviceID string) ([]RoleGrant, error)
	// IdentityGrants lists an identity's role grants in every service.
	IdentityGrants(ctx context.Context, identityID string) ([]RoleGrant, error)

	// BindLocalUser binds u.Name at the service to u.IdentityID, replacing
	// the identity's earlier binding there, and adds trust tokens of trust
	// (as AddTrust does) in the same transaction: ErrLocalUserBound if
	// exactly this binding exists, ErrLocalUserTaken if the name belongs to
	// another identity, and then nothing changes.
	BindLocalUser(ctx context.Context, u LocalUser, trust int, c Change) error
	// LocalUserIdentity returns the identity a service bound a local name
	// to: ErrNotFound.
	LocalUserIdentity(ctx context.Context, serviceID, name string) (string, error)
	// UnbindLocalUser removes a service's binding of a local name:
	// ErrNotFound.
	UnbindLocalUser(ctx context.Context, serviceID, name string, c Change) error
	// AddTrust adds tokens of trust (negative takes away; the total stays
	// within 0..10000).
	AddTrust(ctx context.Context, serviceID, identityID string, tokens int, c Change) error
	// SetSecret stores the service's secret for an identity ("" clears it).
	SetSecret(ctx context.Context, serviceID, identityID, secret string, c Change) error
	// ReportIntrusion stores a report: ErrConflict if the service already
	// reported this certificate.
	ReportIntrusion(ctx context.Context, in Intrusion, c Change) error
	// WithdrawIntrusion removes the service's own report: ErrNotFound.
	WithdrawIntrusion(ctx context.Context, serviceID, ref string, c Change) error

	// Relation returns what the service knows of the identity (a zero
	// Relation if nothing).
	Relation(ctx context.Context, serviceID, identityID string) (*Relation, error)
	// Inquiry reads, in one query, what an Identity-Inquiry needs of a
	// serial nobody has asked about lately: the certificate, what the
	// service knows of its identity, and when the identity was created.
	// Unknown serial: ErrNotFound.
	Inquiry(ctx context.Context, serviceID, serial string) (*InquiryRecord, error)
	// RecordConsent notes that the person shared their identity with the
	// service; the first time counts, and only it appends audit (later
	// calls change nothing and succeed).
	RecordConsent(ctx context.Context, serviceID, identityID string, at time.Time, audit AuditEvent) error
}

// IntentStore keeps redirect sign-ons in flight.
type IntentStore interface {
	// CreateIntent stores an intent: ErrConflict on a duplicate hash.
	CreateIntent(ctx context.Context, in Intent) error
	// Intent returns an intent by hash, in any state: ErrNotFound.
	Intent(ctx context.Context, hash []byte) (*Intent, error)
	// ResolveIntent records who completed the sign-on page: ErrNotFound,
	// ErrIntentExpired (ExpiresAt <= at), ErrIntentUsed (already resolved).
	ResolveIntent(ctx context.Context, hash []byte, identityID, serial string, at time.Time, audit AuditEvent) error
	// ConsumeIntent hands the resolved intent to its service once:
	// ErrNotFound (also for another service's intent), ErrIntentExpired,
	// ErrIntentUsed (already consumed), or KindConflict if not resolved yet.
	ConsumeIntent(ctx context.Context, hash []byte, serviceID string, at time.Time) (*Intent, error)
	// PurgeIntents deletes the intents, in any state, whose ExpiresAt is
	// before before, and reports how many. It works in batches of at most
	// limit rows, each its own transaction, so that it never holds a lock
	// for long; if ctx ends between batches it returns what it deleted
	// and ctx's error.
	PurgeIntents(ctx context.Context, before time.Time, limit int) (int64, error)
}
