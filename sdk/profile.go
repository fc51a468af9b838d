package sdk

import (
	"context"
	"slices"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// Method is how the middleware identified a request.
type Method string

// The identification methods, as the authority names them.
const (
	// MethodCertificate: the client certificate, from the TLS connection
	// or from a trusted proxy's headers.
	MethodCertificate Method = "Certificate"
	// MethodRedirect: the sign-on page (an Intent) and then the session
	// cookie it left.
	MethodRedirect Method = "Redirect"
)

// Profile is who made a request, as the middleware puts it in the
// request's context. Profiles are shared between requests: treat them as
// read-only.
type Profile struct {
	// Serial is the decimal serial of the certificate that identified
	// the person (with MethodRedirect, the one used on the sign-on page).
	Serial string
	// DeviceName and DeviceType are the certificate's CN and OU, when the
	// middleware saw the certificate (not with MethodRedirect or X-mTLS-ID).
	DeviceName, DeviceType string
	// Roles are the person's roles in this service.
	Roles []string
	// LocalUser is the bound local user name, if any.
	LocalUser string
	// Trust is the trust score (1 to 5); LocalTrust this service's tokens.
	Trust      float64
	LocalTrust int
	// Outcome is the authority's outcome (OK 0001 or OK 0002).
	Outcome string
	// Method is how the request was identified.
	Method Method
	// Header names the forwarded header the certificate came from, or ""
	// for the TLS connection and the session cookie.
	Header string
	// TrustedHeaders lists the identity headers the middleware accepted
	// from a trusted proxy on this request.
	TrustedHeaders []string
	// Identity is the authority's whole answer.
	Identity *idwire.IdentityProfile
}

// HasRole reports whether the profile holds role.
func (p *Profile) HasRole(role string) bool { return p != nil && slices.Contains(p.Roles, role) }

type profileKey struct{}

// FromContext returns the profile the middleware stored, or nil when the
// request was not identified (Identify lets anonymous requests through).
func FromContext(ctx context.Context) *Profile {
	p, _ := ctx.Value(profileKey{}).(*Profile)
	return p
}

// NewContext returns ctx carrying p; tests of handlers use it.
func NewContext(ctx context.Context, p *Profile) context.Context {
	return context.WithValue(ctx, profileKey{}, p)
}

func profileFrom(ip *idwire.IdentityProfile, serial string, m Method) *Profile {
	if serial == "" {
		serial = ip.AuthorizingCertificate
	}
	return &Profile{
		Serial: serial, Roles: ip.ServiceRoles, LocalUser: ip.LocalUserName,
		Trust: ip.TrustScore, LocalTrust: ip.LocalTrust, Outcome: ip.Outcome, Method: m, Identity: ip,
	}
}
