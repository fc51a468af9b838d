package wire

// Results of the administrative operations. Times are epoch milliseconds,
// as everywhere in this API; lists are never null, so scripts can iterate
// without a check.

// OrgResult answers create_organization.
type OrgResult struct {
	Outcome string `json:"outcome"`
	Org     string `json:"org"`
	Name    string `json:"name"`
	Email   string `json:"email,omitempty"`
	// Role is the caller's role in it: its creator is its administrator.
	Role      string `json:"role"`
	CreatedAt int64  `json:"created-at"`
}

// Membership is the caller's role in one organization.
type Membership struct {
	Org   string `json:"org"`
	Role  string `json:"role"`
	Since int64  `json:"since"`
}

// OrgsResult answers list_organizations.
type OrgsResult struct {
	Outcome       string       `json:"outcome"`
	Organizations []Membership `json:"organizations"`
}

// MemberResult answers add_member.
type MemberResult struct {
	Outcome      string `json:"outcome"`
	Org          string `json:"org"`
	SerialNumber string `json:"serial-number"`
	Role         string `json:"role"`
}

// Service describes one service.
type Service struct {
	// Service is the service ID, "<name>.<org>", which every other
	// operation accepts.
	Service   string `json:"service"`
	Name      string `json:"name"`
	Org       string `json:"org"`
	CreatedAt int64  `json:"created-at"`
}

// ServiceResult answers create_service, with the service's domains (the
// default one, verified from the start).
type ServiceResult struct {
	Outcome string `json:"outcome"`
	Service
	Domains []Domain `json:"domains"`
}

// ServicesResult answers list_services.
type ServicesResult struct {
	Outcome  string    `json:"outcome"`
	Org      string    `json:"org"`
	Services []Service `json:"services"`
}

// Domain describes one DNS name of a service. While it is not verified it
// carries what to publish: either the TXT record TXTName with value
// TXTValue, or a file at HTTPURL (plain HTTP, port 80) whose body is the
// challenge.
type Domain struct {
	Domain     string `json:"domain"`
	Service    string `json:"service"`
	Default    bool   `json:"default,omitempty"`
	Verified   bool   `json:"verified"`
	Method     string `json:"method,omitempty"` // "default", "dns" or "http"
	VerifiedAt int64  `json:"verified-at,omitempty"`

	Challenge string `json:"challenge,omitempty"`
	TXTName   string `json:"txt-name,omitempty"`
	TXTValue  string `json:"txt-value,omitempty"`
	HTTPURL   string `json:"http-url,omitempty"`
}

// DomainResult answers add_domain (outcome "pending") and verify_domain
// (outcome "verified").
type DomainResult struct {
	Outcome string `json:"outcome"`
	Domain
}

// DomainsResult answers list_domains.
type DomainsResult struct {
	Outcome string   `json:"outcome"`
	Service string   `json:"service"`
	Domains []Domain `json:"domains"`
}

// RoleResult answers define_role ("defined"), grant_role ("granted") and
// revoke_role ("revoked").
type RoleResult struct {
	Outcome      string `json:"outcome"`
	Service      string `json:"service"`
	Role         string `json:"role"`
	SerialNumber string `json:"serial-number,omitempty"`
}

// RoleGrant is a service role held by an identity.
type RoleGrant struct {
	Service string `json:"service"`
	// Identity is the holder's identity ID: a person, or a service for
	// roles granted to another service's agents.
	Identity string `json:"identity"`
	Role     string `json:"role"`
	Since    int64  `json:"since"`
}

// RolesResult answers list_roles: the roles a service defines and who
// holds them.
type RolesResult struct {
	Outcome string      `json:"outcome"`
	Service string      `json:"service"`
	Roles   []string    `json:"roles"`
	Grants  []RoleGrant `json:"grants"`
}

// ServiceRoles is the caller's roles in one service.
type ServiceRoles struct {
	Service string   `json:"service"`
	Roles   []string `json:"roles"`
}

// ServiceRolesResult answers get_service_roles.
type ServiceRolesResult struct {
	Outcome      string         `json:"outcome"`
	ServiceRoles []ServiceRoles `json:"service-roles"`
}

// APICertResult answers issue_api_certificate. Without a CSR the server
// made the key: private-key, p12 and password are then set, shown once.
type APICertResult struct {
	CertificateResult
	Service     string `json:"service"`
	Development bool   `json:"development,omitempty"`
}

// APICertificate describes one API certificate of a service.
type APICertificate struct {
	SerialNumber string `json:"serial-number"`
	Name         string `json:"name"`
	Development  bool   `json:"development,omitempty"`
	Status       string `json:"status"` // active, expired, revoked, not yet valid
	NotBefore    int64  `json:"not-before"`
	NotAfter     int64  `json:"not-after"`
	RevokedAt    int64  `json:"revoked-at,omitempty"`
}

// APICertsResult answers list_api_certificates.
type APICertsResult struct {
	Outcome      string           `json:"outcome"`
	Service      string           `json:"service"`
	Certificates []APICertificate `json:"certificates"`
}

// TokenResult answers create_token. The token is shown once; the server
// keeps only its hash.
type TokenResult struct {
	Outcome   string `json:"outcome"`
	Token     string `json:"token"`
	Purpose   string `json:"purpose"`
	ExpiresAt int64  `json:"expires-at"`
}

// AssistResult answers assist with the reference's fields: a token that
// enrolls one agent of the managed service, valid five minutes.
type AssistResult struct {
	ManagedService string `json:"managed-service"`
	Token          string `json:"token"`
	ExpiresAt      int64  `json:"expires-at"`
}

// ServiceCertResult answers issue_service_certificate: the service's
// server certificate for its verified domains, key and PKCS#12 included
// (Name is the first domain, as the reference names the files). When the
// current one is not due, Outcome is "not due" and nothing else is set but
// Service.
type ServiceCertResult struct {
	CertificateResult
	Service  string   `json:"service"`
	DNSNames []string `json:"dns-names,omitempty"`
}
