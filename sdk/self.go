package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// SelfClient calls the self-authority API of an mtlsid server. Its zero
// value is not usable: set URL and HTTP (whose transport carries the TLS
// configuration: trusted CA and, for calls that need one, the client
// certificate). It is safe for concurrent use.
type SelfClient struct {
	// URL is the server's base URL, such as https://localhost:8443.
	URL  string
	HTTP *http.Client
	// Trace, if set, receives each request and response body (the CLI's
	// -v). Bodies carry keys and passwords: never point it at a log.
	Trace io.Writer
}

// APIError is an error answered by the server.
type APIError struct {
	Status  int
	Kind    string // the stable error kind, see mtlsid.Kind
	Message string
}

func (e *APIError) Error() string {
	if e.Kind != "" {
		return fmt.Sprintf("%s (%s)", e.Message, e.Kind)
	}
	return e.Message
}

// Call performs one operation and decodes its result into result.
func (c *SelfClient) Call(ctx context.Context, op string, args wire.Args, result any) error {
	a, err := json.Marshal(args)
	if err != nil {
		return err
	}
	body, err := json.Marshal(wire.Request{Operation: op, Args: a})
	if err != nil {
		return err
	}
	if c.Trace != nil {
		fmt.Fprintf(c.Trace, "> POST %s%s\n> %s\n", strings.TrimRight(c.URL, "/"), wire.Path, body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+wire.Path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if c.Trace != nil {
		fmt.Fprintf(c.Trace, "< %s\n< %s\n", resp.Status, data)
	}
	var out struct {
		Error  string          `json:"error"`
		Kind   string          `json:"kind"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return &APIError{Status: resp.StatusCode, Message: fmt.Sprintf("server answered %s with a body that is not the API's JSON", resp.Status)}
	}
	if out.Error != "" || resp.StatusCode != http.StatusOK {
		msg := out.Error
		if msg == "" {
			msg = "server answered " + resp.Status
		}
		return &APIError{Status: resp.StatusCode, Kind: out.Kind, Message: msg}
	}
	if result == nil {
		return nil
	}
	return json.Unmarshal(out.Result, result)
}

// Enroll enrolls with a token; see wire.Args for the fields it reads.
func (c *SelfClient) Enroll(ctx context.Context, args wire.Args) (*wire.CertificateResult, error) {
	var r wire.CertificateResult
	return &r, c.Call(ctx, wire.OpEnroll, args, &r)
}

// Renew renews the certificate the client authenticates with.
func (c *SelfClient) Renew(ctx context.Context, args wire.Args) (*wire.CertificateResult, error) {
	var r wire.CertificateResult
	return &r, c.Call(ctx, wire.OpRenewCertificate, args, &r)
}

// Devices lists the active certificates of the caller's identity.
func (c *SelfClient) Devices(ctx context.Context) (*wire.DevicesResult, error) {
	var r wire.DevicesResult
	return &r, c.Call(ctx, wire.OpGetActiveIdentites, wire.Args{}, &r)
}

// Revoke revokes one of the caller's own certificates.
func (c *SelfClient) Revoke(ctx context.Context, serial string) (*wire.RevokeResult, error) {
	var r wire.RevokeResult
	return &r, c.Call(ctx, wire.OpRevoke, wire.Args{SerialNumber: serial}, &r)
}

// The administrative operations. Each authenticates with the client's
// certificate; the server checks the caller's role in the organization and
// answers an *APIError of kind "forbidden" (403) when it lacks it. A
// service argument is a service ID ("<name>.<org>"), or a name with org
// set (pass "" for org with a full ID).

// CreateOrg creates an organization with the caller as its administrator.
// name defaults to org on the server; email may be empty.
func (c *SelfClient) CreateOrg(ctx context.Context, org, name, email string) (*wire.OrgResult, error) {
	var r wire.OrgResult
	return &r, c.Call(ctx, wire.OpCreateOrganization, wire.Args{Org: org, Name: name, Email: email}, &r)
}

// Orgs lists the organizations the caller's identity belongs to.
func (c *SelfClient) Orgs(ctx context.Context) (*wire.OrgsResult, error) {
	var r wire.OrgsResult
	return &r, c.Call(ctx, wire.OpListOrganizations, wire.Args{}, &r)
}

// AddMember gives the person holding serial a role in org ("org.
// administrator", "org. manager" or "member"), or changes it.
func (c *SelfClient) AddMember(ctx context.Context, org, serial, role string) (*wire.MemberResult, error) {
	var r wire.MemberResult
	return &r, c.Call(ctx, wire.OpAddMember, wire.Args{Org: org, SerialNumber: serial, Role: role}, &r)
}

// CreateService creates service name in org.
func (c *SelfClient) CreateService(ctx context.Context, org, name string) (*wire.ServiceResult, error) {
	var r wire.ServiceResult
	return &r, c.Call(ctx, wire.OpCreateService, wire.Args{Org: org, Service: name}, &r)
}

// Services lists org's services.
func (c *SelfClient) Services(ctx context.Context, org string) (*wire.ServicesResult, error) {
	var r wire.ServicesResult
	return &r, c.Call(ctx, wire.OpListServices, wire.Args{Org: org}, &r)
}

// AddDomain adds domain to a service and returns what to publish to prove
// control of it.
func (c *SelfClient) AddDomain(ctx context.Context, service, org, domain string) (*wire.DomainResult, error) {
	var r wire.DomainResult
	return &r, c.Call(ctx, wire.OpAddDomain, wire.Args{Service: service, Org: org, Domain: domain}, &r)
}

// VerifyDomain checks domain's published challenge.
func (c *SelfClient) VerifyDomain(ctx context.Context, domain string) (*wire.DomainResult, error) {
	var r wire.DomainResult
	return &r, c.Call(ctx, wire.OpVerifyDomain, wire.Args{Domain: domain}, &r)
}

// Domains lists a service's domains.
func (c *SelfClient) Domains(ctx context.Context, service, org string) (*wire.DomainsResult, error) {
	var r wire.DomainsResult
	return &r, c.Call(ctx, wire.OpListDomains, wire.Args{Service: service, Org: org}, &r)
}

// DefineRole adds a role name to a service.
func (c *SelfClient) DefineRole(ctx context.Context, service, org, role string) (*wire.RoleResult, error) {
	var r wire.RoleResult
	return &r, c.Call(ctx, wire.OpDefineRole, wire.Args{Service: service, Org: org, Role: role}, &r)
}

// GrantRole grants a defined role of a service to the person holding
// serial.
func (c *SelfClient) GrantRole(ctx context.Context, service, org, serial, role string) (*wire.RoleResult, error) {
	var r wire.RoleResult
	return &r, c.Call(ctx, wire.OpGrantRole, wire.Args{Service: service, Org: org, SerialNumber: serial, Role: role}, &r)
}

// RevokeRole takes a role of a service away from the person holding
// serial.
func (c *SelfClient) RevokeRole(ctx context.Context, service, org, serial, role string) (*wire.RoleResult, error) {
	var r wire.RoleResult
	return &r, c.Call(ctx, wire.OpRevokeRole, wire.Args{Service: service, Org: org, SerialNumber: serial, Role: role}, &r)
}

// Roles lists a service's roles and who holds them.
func (c *SelfClient) Roles(ctx context.Context, service, org string) (*wire.RolesResult, error) {
	var r wire.RolesResult
	return &r, c.Call(ctx, wire.OpListRoles, wire.Args{Service: service, Org: org}, &r)
}

// APICertRequest asks for an API certificate (issue_api_certificate).
type APICertRequest struct {
	Service, Org string
	// AgentName is the certificate's CN; empty means "api".
	AgentName string
	// CSR is PEM or base64 DER. Empty: the server makes the key and the
	// result carries it with a PKCS#12 and its password, shown once.
	CSR string
	// Development journals every change made with the certificate, so
	// that revoking it undoes them.
	Development bool
}

// IssueAPICert issues an API certificate for a service.
func (c *SelfClient) IssueAPICert(ctx context.Context, req APICertRequest) (*wire.APICertResult, error) {
	var r wire.APICertResult
	args := wire.Args{Service: req.Service, Org: req.Org, AgentName: req.AgentName, CSR: req.CSR, Development: req.Development}
	return &r, c.Call(ctx, wire.OpIssueAPICertificate, args, &r)
}

// APICerts lists a service's API certificates, revoked and expired ones
// included.
func (c *SelfClient) APICerts(ctx context.Context, service, org string) (*wire.APICertsResult, error) {
	var r wire.APICertsResult
	return &r, c.Call(ctx, wire.OpListAPICertificates, wire.Args{Service: service, Org: org}, &r)
}

// RevokeAPICert revokes an API certificate; a development one's changes
// are undone with it.
func (c *SelfClient) RevokeAPICert(ctx context.Context, serial string) (*wire.RevokeResult, error) {
	var r wire.RevokeResult
	return &r, c.Call(ctx, wire.OpRevokeAPICertificate, wire.Args{SerialNumber: serial}, &r)
}

// Assist mints a five-minute token that enrolls one agent of a service the
// caller manages.
func (c *SelfClient) Assist(ctx context.Context, service, org string) (*wire.AssistResult, error) {
	var r wire.AssistResult
	return &r, c.Call(ctx, wire.OpAssist, wire.Args{ManagedService: service, Org: org}, &r)
}

// CreateToken mints a token that enrolls another device of the caller's
// own identity. label may be empty; a zero ttl means the server's default
// (24 hours). It is refused for an agent's certificate.
func (c *SelfClient) CreateToken(ctx context.Context, label string, ttl time.Duration) (*wire.TokenResult, error) {
	var r wire.TokenResult
	args := wire.Args{Purpose: "device", Label: label, TTL: int64(ttl / time.Second)}
	return &r, c.Call(ctx, wire.OpCreateToken, args, &r)
}

// ServiceCertificate asks, with one of a service's API certificates, for
// the service's server certificate. Without force the answer is outcome
// "not due" unless a new one is needed.
func (c *SelfClient) ServiceCertificate(ctx context.Context, force bool) (*wire.ServiceCertResult, error) {
	var r wire.ServiceCertResult
	return &r, c.Call(ctx, wire.OpIssueServiceCertificate, wire.Args{ForceRenew: force}, &r)
}

// ServiceRoles lists the caller identity's roles in every service.
func (c *SelfClient) ServiceRoles(ctx context.Context) (*wire.ServiceRolesResult, error) {
	var r wire.ServiceRolesResult
	return &r, c.Call(ctx, wire.OpGetServiceRoles, wire.Args{}, &r)
}

// ContactRequest sets where the caller's expiry notices go (set_contact).
// It replaces what was stored: an empty field drops that channel, and both
// empty remove the contact details.
type ContactRequest struct {
	Email string
	// WebhookURL is https, or http to loopback.
	WebhookURL string
	// NewSecret makes a new webhook secret even when WebhookURL is
	// unchanged.
	NewSecret bool
}

// SetContact sets where the caller's identity gets its expiry notices.
// The result carries the webhook's signing secret only when it was just
// made (a new or changed URL, or NewSecret); it is never shown again. An
// address or URL the server refuses is an *APIError of kind "invalid".
func (c *SelfClient) SetContact(ctx context.Context, req ContactRequest) (*wire.ContactResult, error) {
	var r wire.ContactResult
	return &r, c.Call(ctx, wire.OpSetContact, wire.Args{Email: req.Email, WebhookURL: req.WebhookURL, NewSecret: req.NewSecret}, &r)
}

// Contact returns where the caller's identity gets its expiry notices,
// without the webhook secret; empty fields if nowhere.
func (c *SelfClient) Contact(ctx context.Context) (*wire.ContactResult, error) {
	var r wire.ContactResult
	return &r, c.Call(ctx, wire.OpGetContact, wire.Args{}, &r)
}

// TrustChain downloads the CA chain in PEM.
func (c *SelfClient) TrustChain(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+"/download/trust-chain?format=pem", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Status: resp.StatusCode, Message: "trust chain download answered " + resp.Status}
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
