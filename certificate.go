package mtlsid

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Profile is the kind of certificate the CA issues.
type Profile string

// The certificate profiles (SPEC §2).
const (
	ProfileDevice Profile = "device" // a person's device: clientAuth, OU = device type
	ProfileAgent  Profile = "agent"  // a service agent or API certificate: clientAuth
	ProfileServer Profile = "server" // a server: serverAuth, DNS and IP SANs
)

// Device types, carried as the certificate's OU. Reference integrations read
// OU[0] as the device type, so every device certificate has one.
const (
	DeviceBrowser = "Browser"
	DeviceDesktop = "Desktop"
	DeviceMobile  = "Mobile"
	DeviceAgent   = "Agent"
	DeviceServer  = "Server"
)

// Certificate is one issued certificate as the store keeps it.
type Certificate struct {
	Serial      string // decimal, as the Identity API carries it
	IdentityID  string
	Profile     Profile
	Name        string // the subject CN: device, agent or host name
	DeviceType  string // the subject OU
	NotBefore   time.Time
	NotAfter    time.Time
	DER         []byte
	RenewedFrom string // serial of the certificate this one renewed, or ""
	// Development marks an API certificate whose changes are journaled and
	// undone when it is revoked.
	Development bool
	CreatedAt   time.Time

	// RevokedAt is zero while the certificate is not revoked.
	RevokedAt        time.Time
	RevocationReason int // RFC 5280 CRLReason
}

// Revoked reports whether the certificate has been revoked.
func (c *Certificate) Revoked() bool { return !c.RevokedAt.IsZero() }

// CertStatus is a certificate's state at a moment.
type CertStatus string

// The certificate states.
const (
	StatusActive  CertStatus = "active"
	StatusExpired CertStatus = "expired"
	StatusRevoked CertStatus = "revoked"
	StatusPending CertStatus = "not yet valid"
)

// Status returns the certificate's state at now. Revocation wins over expiry.
func (c *Certificate) Status(now time.Time) CertStatus {
	switch {
	case c.Revoked() && !now.Before(c.RevokedAt):
		return StatusRevoked
	case now.After(c.NotAfter):
		return StatusExpired
	case now.Before(c.NotBefore):
		return StatusPending
	}
	return StatusActive
}

// RenewalDue reports whether two thirds of the certificate's lifetime have
// passed at now: the best-practices point from which renewal is recommended.
func (c *Certificate) RenewalDue(now time.Time) bool {
	return !now.Before(RenewalPoint(c.NotBefore, c.NotAfter))
}

// RenewalPoint returns the moment two thirds of the way from notBefore to
// notAfter.
func RenewalPoint(notBefore, notAfter time.Time) time.Time {
	d := notAfter.Sub(notBefore) // saturates for lifetimes over ~290 years
	return notBefore.Add(d - d/3)
}

// Fingerprint returns the SHA-256 fingerprint of der as colon-separated
// upper-case hex, the form openssl prints.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// ParseSerial parses a serial number in decimal or, with a 0x prefix, in
// hexadecimal (the Lua gateway of the reference sends hex). It accepts only
// positive numbers of at most 20 octets (RFC 5280 §4.1.2.2).
func ParseSerial(s string) (*big.Int, error) {
	s = strings.TrimSpace(s)
	base := 10
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		s, base = rest, 16
	}
	if s == "" || len(s) > 60 {
		return nil, Errorf(KindInvalid, "serial number %q is not a number", s)
	}
	n, ok := new(big.Int).SetString(s, base)
	if !ok || n.Sign() <= 0 || n.BitLen() > 160 {
		return nil, Errorf(KindInvalid, "serial number %q is not a positive number of at most 20 octets", s)
	}
	return n, nil
}

// NormalizeSerial parses s as ParseSerial does and returns it in the decimal
// form the store keys certificates by.
func NormalizeSerial(s string) (string, error) {
	n, err := ParseSerial(s)
	if err != nil {
		return "", err
	}
	return n.String(), nil
}

// HexSerial returns the serial in the 0x-prefixed lower-case hexadecimal
// form used in headers. It returns s unchanged if it is not a valid serial.
func HexSerial(s string) string {
	n, err := ParseSerial(s)
	if err != nil {
		return s
	}
	return fmt.Sprintf("0x%x", n)
}
