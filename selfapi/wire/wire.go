// Package wire holds the self-authority API's wire types: the request and
// response envelopes, the arguments and the results, with the reference's
// field names. It imports only the standard library, so clients (sdk,
// cmd/mtlsid) use it without pulling in the server.
package wire

import "encoding/json"

// Path is where the self-authority API is served.
const Path = "/api/v1"

// MaxBody is the largest request body accepted, in bytes.
const MaxBody = 1 << 20

// Operation names.
const (
	OpEnroll             = "enroll"
	OpRenewCertificate   = "renew_certificate"
	OpGetActiveIdentites = "get_active_identities"
	OpRevoke             = "revoke"

	// Administration: organizations, services, domains, roles.
	OpCreateOrganization = "create_organization"
	OpListOrganizations  = "list_organizations"
	OpAddMember          = "add_member"
	OpCreateService      = "create_service"
	OpListServices       = "list_services"
	OpAddDomain          = "add_domain"
	OpVerifyDomain       = "verify_domain"
	OpListDomains        = "list_domains"
	OpDefineRole         = "define_role"
	OpGrantRole          = "grant_role"
	OpRevokeRole         = "revoke_role"
	OpListRoles          = "list_roles"

	// API certificates, tokens and the service's own identity.
	OpIssueAPICertificate     = "issue_api_certificate"
	OpListAPICertificates     = "list_api_certificates"
	OpRevokeAPICertificate    = "revoke_api_certificate"
	OpAssist                  = "assist"
	OpCreateToken             = "create_token"
	OpIssueServiceCertificate = "issue_service_certificate"
	OpGetServiceRoles         = "get_service_roles"

	// Where the caller's expiry notices go.
	OpSetContact = "set_contact"
	OpGetContact = "get_contact"
)

// Outcomes carried in a certificate result.
const (
	OutcomeIssued  = "issued"
	OutcomeRenewed = "renewed"
	OutcomeNotDue  = "not due"
	OutcomeRevoked = "revoked"
	OutcomeOK      = "ok"

	OutcomeCreated  = "created"
	OutcomePending  = "pending" // a domain waiting for its challenge to be published
	OutcomeVerified = "verified"
	OutcomeDefined  = "defined"
	OutcomeGranted  = "granted"
	OutcomeSaved    = "saved"
)

// Request is the body of a call.
type Request struct {
	Operation string          `json:"operation"`
	Args      json.RawMessage `json:"args,omitempty"`
}

// Response is the body of every answer, errors included. Exactly one of
// Error and Result is set.
type Response struct {
	Error string `json:"error,omitempty"`
	// Kind is the stable error kind (see mtlsid.Kind), for scripts.
	Kind   string `json:"kind,omitempty"`
	Result any    `json:"result,omitempty"`
}

// Args are the arguments of every operation; each reads the fields it
// needs. Names are the reference's.
type Args struct {
	// Authorization is the enrollment token (enroll).
	Authorization string `json:"authorization,omitempty"`
	// AgentName is the device or agent name for enroll; Device is the
	// reference's name for it in renew_certificate.
	AgentName string `json:"agent-name,omitempty"`
	Device    string `json:"device,omitempty"`
	// DeviceType is the certificate's OU: Browser, Desktop, Mobile, Agent
	// or Server.
	DeviceType string `json:"device-type,omitempty"`
	// CSR, PEM or base64 DER. Without it the authority makes the key and
	// returns a PKCS#12 with its password, as the reference does.
	CSR string `json:"csr,omitempty"`
	// Protect is accepted for compatibility with the reference's clients.
	Protect bool `json:"protect,omitempty"`
	// Tentative renews only once two thirds of the lifetime have passed.
	Tentative bool `json:"tentative,omitempty"`
	// RevokePrevious retires the current certificate at renewal.
	RevokePrevious bool `json:"revoke-previous,omitempty"`
	// SerialNumber is the certificate to revoke, decimal or 0x hex, or
	// the person a role or membership is given to (any of their active
	// certificates).
	SerialNumber string `json:"serial-number,omitempty"`

	// Org is an organization ID: 1-32 lower-case letters, digits and inner
	// hyphens.
	Org string `json:"org,omitempty"`
	// Name and Email describe an organization (create_organization);
	// Email is also where the caller's expiry notices go (set_contact).
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	// WebhookURL receives the caller's expiry notices as signed JSON
	// (set_contact): https, or http to loopback.
	WebhookURL string `json:"webhook-url,omitempty"`
	// NewSecret makes set_contact generate a new webhook secret even when
	// the webhook URL is unchanged.
	NewSecret bool `json:"new-secret,omitempty"`
	// Role is an organization role ("org. administrator", "org. manager",
	// "member") for add_member, or a service role for the role operations.
	Role string `json:"role,omitempty"`
	// Service is a service ID ("<name>.<org>"), or a service name with Org
	// set; ManagedService is assist's name for it.
	Service        string `json:"service,omitempty"`
	ManagedService string `json:"managed-service,omitempty"`
	// Domain is a DNS name of a service.
	Domain string `json:"domain,omitempty"`
	// Development asks for a development API certificate, whose changes
	// are undone when it is revoked.
	Development bool `json:"development,omitempty"`
	// Purpose is what create_token's token enrolls: only "device" (another
	// device of the caller) is accepted; agents come from assist.
	Purpose string `json:"purpose,omitempty"`
	// Label describes a token in lists and the audit log.
	Label string `json:"label,omitempty"`
	// TTL is a token's lifetime in seconds; zero means the server's
	// default (24 hours).
	TTL int64 `json:"ttl,omitempty"`
	// ForceRenew issues a service certificate even when the current one is
	// not due (issue_service_certificate).
	ForceRenew bool `json:"force-renew,omitempty"`
}

// CertificateResult answers enroll and renew_certificate. PEM fields are
// base64 of the PEM text and p12 is base64 of the PKCS#12, as in the
// reference; times are epoch milliseconds.
type CertificateResult struct {
	Outcome      string `json:"outcome"`
	Name         string `json:"name,omitempty"`
	SerialNumber string `json:"serial-number,omitempty"`
	Certificate  string `json:"certificate,omitempty"`
	Chain        string `json:"chain,omitempty"`
	PrivateKey   string `json:"private-key,omitempty"`
	P12          string `json:"p12,omitempty"`
	Password     string `json:"password,omitempty"`
	NotBefore    int64  `json:"not-before,omitempty"`
	NotAfter     int64  `json:"not-after,omitempty"`
	// RenewalDue is when two thirds of the lifetime will have passed.
	RenewalDue int64 `json:"renewal-due,omitempty"`
}

// Device is one certificate of the caller's identity.
type Device struct {
	SerialNumber string `json:"serial-number"`
	Name         string `json:"name"`
	DeviceType   string `json:"device-type"`
	Profile      string `json:"profile"`
	Status       string `json:"status"`
	NotBefore    int64  `json:"not-before"`
	NotAfter     int64  `json:"not-after"`
	RenewedFrom  string `json:"renewed-from,omitempty"`
	// Current marks the certificate the call was made with.
	Current bool `json:"current,omitempty"`
}

// DevicesResult answers get_active_identities.
type DevicesResult struct {
	Outcome    string   `json:"outcome"`
	Identities []Device `json:"identities"`
}

// RevokeResult answers revoke.
type RevokeResult struct {
	Outcome      string `json:"outcome"`
	SerialNumber string `json:"serial-number"`
}
