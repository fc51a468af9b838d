package mtlsid

import "time"

// IdentityKind says who holds an identity.
type IdentityKind string

// The identity kinds.
const (
	KindPerson    IdentityKind = "person"    // a person, with one certificate per device
	KindService   IdentityKind = "service"   // a service's agent (API certificates)
	KindAuthority IdentityKind = "authority" // the authority's own serving certificates
)

// Identity is one holder of certificates: a person, a service agent, or the
// authority itself. Its certificates are its devices.
type Identity struct {
	ID        string
	Kind      IdentityKind
	Name      string
	CreatedAt time.Time
}

// AuthorityIdentityID is the identity that owns the authority's own serving
// certificates.
const AuthorityIdentityID = "authority"
