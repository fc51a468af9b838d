package mtlsid

import "time"

// IntentType is what an Intent asks of the sign-on page.
type IntentType string

// The intent types mtlsid supports.
const (
	IntentDiscover IntentType = "discover"
	IntentValidate IntentType = "validate"
	IntentRequest  IntentType = "request"
	IntentBind     IntentType = "bind"
)

// Intent is a redirect sign-on in flight: a service asked for it, the
// person's browser carries its reference to the sign-on page, and the
// service learns the identity from it once.
type Intent struct {
	// Hash is the SHA-256 of the reference, which is never stored.
	Hash          []byte
	ServiceID     string
	Type          IntentType
	ReturnURL     string
	StrictMassl   bool
	LocalUserName string // for bind
	CreatedAt     time.Time
	ExpiresAt     time.Time
	// Set when the person completed the sign-on page.
	IdentityID string
	Serial     string
	ResolvedAt time.Time
	// ConsumedAt is set when the service read the result; it is read once.
	ConsumedAt time.Time
}

// Identification records how a service identified a person: for the test
// page and for statistics.
type Identification struct {
	ServiceID  string
	IdentityID string
	Serial     string
	Method     string // "Certificate" or "Redirect"
	Outcome    string
	At         time.Time
}
