package mtlsid

import "time"

// Service is an application of an organization that identifies people
// through mtlsid. Its ID, "<name>.<org>", is also the ID of the identity
// that holds its API (agent) certificates.
type Service struct {
	ID        string
	OrgID     string
	Name      string // slug
	CreatedAt time.Time
}

// ServiceID returns the ID of service name in org.
func ServiceID(name, org string) string { return name + "." + org }

// Domain is a DNS name of a service. The default domain
// <service>.<org>.<base-domain> is verified from the start; others need
// their challenge published (DNS TXT or HTTP file) and checked.
type Domain struct {
	Name       string // lower case, unique across services
	ServiceID  string
	Challenge  string // the token to publish
	Default    bool
	VerifiedAt time.Time // zero until verified
	Method     string    // "default", "dns" or "http" once verified
	CreatedAt  time.Time
}

// Verified reports whether the domain has been verified.
func (d *Domain) Verified() bool { return !d.VerifiedAt.IsZero() }

// RoleGrant is a service role held by an identity.
type RoleGrant struct {
	ServiceID  string
	IdentityID string
	Role       string
	CreatedAt  time.Time
}

// LocalUser binds an identity to a service's own account name.
type LocalUser struct {
	ServiceID  string
	IdentityID string
	Name       string
	AgeDays    int // the account's age at the service when bound, in days
	CreatedAt  time.Time
}

// Intrusion is a service's report against an identity.
type Intrusion struct {
	Ref        string // the Reference-Number returned to the reporter
	ServiceID  string
	IdentityID string
	Serial     string // the intruding certificate
	Severity   string
	Message    string
	Detail     string // the rest of the report, JSON
	CreatedAt  time.Time
}

// Relation is what one service knows of one identity: the rows the
// Identity API's profile is built from. Zero fields mean nothing is known.
type Relation struct {
	Roles       []string
	LocalUser   *LocalUser
	TrustTokens int
	Secret      string
	Intrusions  int
	// SharedAt is when the person first agreed to share their identity with
	// the service (sign-on consent); zero if never.
	SharedAt time.Time

	// Across all services: the identity's total tokens of trust, the
	// services that awarded them, and how many services it shared itself
	// with.
	TrustTotal      int
	TrustSponsors   []string
	SitesFrequented int
}

// InquiryRecord is what Store.Inquiry reads of a certificate.
type InquiryRecord struct {
	Certificate     Certificate
	Relation        Relation // of the certificate's identity, to the service asked about
	IdentityCreated time.Time
}

// Change says who makes a change to a service's relations and whether it
// is journaled: a change made with a development API certificate records
// how to undo itself, and revoking that certificate undoes every such
// change, newest first, in the revocation's transaction.
type Change struct {
	At time.Time
	// By is the serial of the certificate making the change.
	By string
	// Development journals the change under By.
	Development bool
	Audit       AuditEvent
}
