package mtlsid

import (
	"crypto/sha256"
	"time"
)

// TokenPurpose says what a token enrolls.
type TokenPurpose string

// The token purposes.
const (
	TokenDevice TokenPurpose = "device" // a person's device
	TokenAgent  TokenPurpose = "agent"  // a service agent
)

// Token is a one-time enrollment token as the store keeps it. The secret
// itself is never stored: Hash is its SHA-256.
type Token struct {
	Hash    []byte
	Purpose TokenPurpose
	// IdentityID is the identity the enrolled certificate joins. Empty means
	// the enrollment creates a new identity.
	IdentityID string
	Label      string // what the token is for, for people reading lists
	CreatedBy  string // identity ID of the minter, or "local" for the CLI
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// UsedAt is zero until the token is used; UsedBy is then the serial of
	// the certificate it enrolled.
	UsedAt time.Time
	UsedBy string
}

// HashToken returns the hash under which a token secret is stored.
func HashToken(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}
