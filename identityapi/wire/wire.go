// Package wire holds the Identity API's wire types and outcome strings,
// with the reference's names. It imports only the standard library, so
// clients (sdk, cmd/mtlsid) use it without pulling in the server.
package wire

// Path is where the Identity API is served (and "/" on a host named api.*).
const Path = "/v1"

// MaxBody is the largest request body accepted, in bytes.
const MaxBody = 1 << 20

// Object names: the key that wraps each request and response.
const (
	ObjIdentityInquiry        = "Identity-Inquiry"
	ObjIntent                 = "Intent"
	ObjLocalUserInformation   = "Local-User-Information"
	ObjLocalUserReference     = "Local-User-Reference"
	ObjTrust                  = "Trust"
	ObjUserSecret             = "User-Secret"
	ObjIntrusionReport        = "Intrusion-Report"
	ObjIntrusionReference     = "Intrusion-Reference"
	ObjServiceIdentityRequest = "Service-Identity-Request"
	ObjServiceAgentRequest    = "Service-Agent-Identity-Request"
	ObjIdentityRevocation     = "Identity-Revocation-Request"

	ObjIdentityProfile      = "Identity-Profile"
	ObjIntentReference      = "Intent-Reference"
	ObjReferenceNumber      = "Reference-Number"
	ObjServiceIdentity      = "Service-Identity"
	ObjServiceAgentIdentity = "Service-Agent-Identity"
	ObjSimpleResponse       = "Simple-Response"
)

// IdentityInquiry asks who holds a certificate.
type IdentityInquiry struct {
	SerialNumber string `json:"serial-number,omitempty"`
	AnonymousID  string `json:"anonymous-id,omitempty"`
	IPAddress    string `json:"ip-address,omitempty"`
	// Service asks for the profile relative to another service the caller
	// manages.
	Service string `json:"service,omitempty"`
}

// Intent asks for a redirect sign-on.
type Intent struct {
	Type          string `json:"type,omitempty"`
	LocalUserName string `json:"local-user-name,omitempty"`
	ReturnURL     string `json:"return-url,omitempty"`
	EmailAddress  string `json:"email-address,omitempty"`
	PhoneNumber   string `json:"phone-number,omitempty"`
	Name          string `json:"name,omitempty"`
	LocalUserAge  int    `json:"local-user-age,omitempty"`
	StrictMassl   bool   `json:"strict-massl,omitempty"`
	ServiceName   string `json:"service-name,omitempty"`
}

// LocalUserInformation binds a local user to the identity behind a serial.
type LocalUserInformation struct {
	AnonymousID       string `json:"anonymous-id,omitempty"`
	SerialNumber      string `json:"serial-number,omitempty"`
	LocalUserName     string `json:"local-user-name,omitempty"`
	LocalUserAge      int    `json:"local-user-age,omitempty"`
	TokensOfTrust     int    `json:"tokens-of-trust,omitempty"`
	IdentityAssurance string `json:"identity-assurance,omitempty"`
}

// LocalUserReference names a local user to unbind.
type LocalUserReference struct {
	LocalUserName string `json:"local-user-name,omitempty"`
}

// Trust awards tokens of trust to a bound local user or a serial.
type Trust struct {
	LocalUserName string `json:"local-user-name,omitempty"`
	AnonymousID   string `json:"anonymous-id,omitempty"`
	SerialNumber  string `json:"serial-number,omitempty"`
	TrustType     string `json:"trust-type,omitempty"`
	TokensOfTrust int    `json:"tokens-of-trust,omitempty"`
}

// UserSecret stores a secret for a bound local user.
type UserSecret struct {
	LocalUserName string `json:"local-user-name,omitempty"`
	Secret        string `json:"secret,omitempty"`
}

// IntrusionReport reports a certificate's holder.
type IntrusionReport struct {
	IntrudingCertificateUID string   `json:"intruding-certificate-uid,omitempty"`
	Severity                string   `json:"severity,omitempty"`
	Message                 string   `json:"message,omitempty"`
	IntruderIPAddress       string   `json:"intruder-ip-address,omitempty"`
	IntrudedURL             string   `json:"intruded-url,omitempty"`
	IntrudingRequestHeaders []string `json:"intruding-request-headers,omitempty"`
	AdditionalInformation   string   `json:"additional-information,omitempty"`
}

// IntrusionReference names a report to withdraw.
type IntrusionReference struct {
	Value string `json:"value,omitempty"`
}

// ServiceIdentityRequest asks for the service's server certificate.
type ServiceIdentityRequest struct {
	ForceRenewal  bool   `json:"force-renewal,omitempty"`
	ServiceDomain string `json:"service-domain,omitempty"`
}

// ServiceAgentIdentityRequest asks for a new API (agent) certificate.
type ServiceAgentIdentityRequest struct {
	AgentName     string `json:"agent-name,omitempty"`
	ServiceDomain string `json:"service-domain,omitempty"`
	Authorization string `json:"authorization,omitempty"`
}

// IdentityRevocationRequest revokes one of the service's own certificates.
type IdentityRevocationRequest struct {
	SerialNumber string `json:"serial-number,omitempty"`
}

// IdentityProfile is what a service learns of a certificate's holder.
type IdentityProfile struct {
	Outcome                 string   `json:"outcome"`
	LocalUserName           string   `json:"local-user-name,omitempty"`
	LocalUserID             string   `json:"local-user-id,omitempty"`
	OrganizationalReference string   `json:"organizational-reference,omitempty"`
	OrganizationalName      string   `json:"organizational-name,omitempty"`
	OrganizationalEmail     string   `json:"organizational-email,omitempty"`
	ServiceRoles            []string `json:"service-roles"`
	UserSecret              string   `json:"user-secret,omitempty"`
	TrustSponsors           []string `json:"trust-sponsors"`
	SitesFrequented         int      `json:"sites-frequented"`
	AverageIdentityAge      int      `json:"average-identity-age"`
	MaxIdentityAge          int      `json:"max-identity-age"`
	AuthorizingCertificate  string   `json:"authorizing-certificate,omitempty"`
	TrustScore              float64  `json:"trust-score"`
	LocalTrust              int      `json:"local-trust"`
	LocalIntrusions         int      `json:"local-intrusions"`
	YourGuarantees          []string `json:"your-guarantees"`
	CommunityGuarantees     []string `json:"community-guarantees"`
}

// IntentReference answers an Intent.
type IntentReference struct {
	Value     string `json:"value"`
	Challenge string `json:"challenge,omitempty"`
}

// ReferenceNumber answers an Intrusion-Report.
type ReferenceNumber struct {
	Value string `json:"value"`
}

// ServiceIdentity carries a certificate the authority made: base64 PKCS#12
// and PEM, as in the reference.
type ServiceIdentity struct {
	Outcome     string `json:"outcome,omitempty"`
	P12         string `json:"p12"`
	Password    string `json:"password"`
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"private-key"`
}

// SimpleResponse is every answer that carries no object.
type SimpleResponse struct {
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`
}
