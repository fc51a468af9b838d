package ca

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mtlsid/mtlsid"
)

// Default certificate lifetimes (SPEC §2).
const (
	DefaultDeviceLifetime = 365 * 24 * time.Hour
	DefaultAgentLifetime  = 365 * 24 * time.Hour
	DefaultServerLifetime = 90 * 24 * time.Hour
)

// backdate is how far before now a certificate starts, so that a relying
// party whose clock is a little behind does not reject it as not yet valid.
const backdate = time.Minute

// Request is one certificate to issue.
type Request struct {
	Profile   mtlsid.Profile
	PublicKey crypto.PublicKey // must pass CheckPublicKey
	// CommonName is the subject CN: the device or agent name. Required for
	// device and agent certificates; for server certificates zero means the
	// first DNS name (or IP address).
	CommonName string
	// DeviceType is the subject OU. Required for device certificates; zero
	// means mtlsid.DeviceAgent for agent certificates; server certificates
	// carry none.
	DeviceType  string
	DNSNames    []string // server only; at least one name or address
	IPAddresses []net.IP // server only
	// NotBefore zero means a minute before now. The certificate is valid
	// for Lifetime (zero: the profile's lifetime from Config) counted as
	// RFC 5280 does, both ends included, cut short at the issuer's own
	// NotAfter.
	NotBefore time.Time
	Lifetime  time.Duration
	// Serial nil means 127 random bits. A caller that gives one must make
	// it unique and unpredictable; the store enforces the first.
	Serial *big.Int
}

// Issue signs a certificate for req with the issuing key. It does not
// check who may have which name: that is the authority's policy.
//
// Bad requests are KindInvalid errors that name the field; nothing is
// signed for them. A server certificate needs Config.OCSPURL (or CRLURL
// and IssuerURL) so that TLS clients can check its revocation; without
// them, and once the issuing CA has expired, Issue fails with
// KindInternal. Issue is safe for concurrent use.
func (c *CA) Issue(req Request) (*x509.Certificate, error) {
	tmpl, err := c.template(req)
	if err != nil {
		return nil, err
	}
	return createCert(c.rand(), tmpl, c.issuer, req.PublicKey, c.key)
}

func (c *CA) template(req Request) (*x509.Certificate, error) {
	if err := CheckPublicKey(req.PublicKey); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		// Digital signature only: TLS 1.3, and TLS 1.2 with ECDHE, sign
		// with the key and never encrypt to it.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		SubjectKeyId:          subjectKeyID(req.PublicKey),
		OCSPServer:            nonEmpty(c.cfg.OCSPURL),
		IssuingCertificateURL: nonEmpty(c.cfg.IssuerURL),
		CRLDistributionPoints: nonEmpty(c.cfg.CRLURL),
	}
	var lifetime time.Duration
	switch req.Profile {
	case mtlsid.ProfileDevice, mtlsid.ProfileAgent:
		ou := req.DeviceType
		if ou == "" && req.Profile == mtlsid.ProfileAgent {
			ou = mtlsid.DeviceAgent
		}
		if err := checkNameField("common name", req.CommonName); err != nil {
			return nil, err
		}
		if err := checkNameField("device type", ou); err != nil {
			return nil, err
		}
		if len(req.DNSNames) > 0 || len(req.IPAddresses) > 0 {
			return nil, mtlsid.Errorf(mtlsid.KindInvalid, "%s certificates carry no DNS names or IP addresses", req.Profile)
		}
		// O is the CA's organization: a subject OU without an O is not
		// allowed (CA/B Forum BR 7.1.4.2.2), and reference integrations
		// read OU[0] as the device type.
		tmpl.Subject = pkix.Name{
			Organization:       c.issuer.Subject.Organization,
			OrganizationalUnit: []string{ou},
			CommonName:         req.CommonName,
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		lifetime = c.cfg.DeviceLifetime
		if req.Profile == mtlsid.ProfileAgent {
			lifetime = c.cfg.AgentLifetime
		}
	case mtlsid.ProfileServer:
		if c.cfg.OCSPURL == "" && (c.cfg.CRLURL == "" || c.cfg.IssuerURL == "") {
			// TLS clients and the CA/B Forum profile want a way to check
			// revocation (an OCSP URL, or a CRL) in every server
			// certificate; issuing one without would be a broken one.
			return nil, mtlsid.Errorf(mtlsid.KindInternal, "server certificates need the CA's OCSP URL (or CRL and issuer URLs) configured")
		}
		cn, err := serverNames(req)
		if err != nil {
			return nil, err
		}
		tmpl.Subject = pkix.Name{CommonName: cn}
		tmpl.DNSNames = req.DNSNames
		tmpl.IPAddresses = req.IPAddresses
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		// The CA/B Forum profile wants a policy in every TLS server
		// certificate; domain-validated is the true one, as the authority
		// issues only for verified domains.
		tmpl.Policies = []x509.OID{domainValidated}
		lifetime = c.cfg.ServerLifetime
	default:
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "unknown certificate profile %q", req.Profile)
	}
	if req.Lifetime != 0 {
		lifetime = req.Lifetime
	}
	if lifetime == 0 {
		lifetime = defaultLifetime(req.Profile)
	}
	if err := c.setValidity(tmpl, req.NotBefore, lifetime); err != nil {
		return nil, err
	}
	serial := req.Serial
	if serial == nil {
		var err error
		if serial, err = randomSerial(c.rand()); err != nil {
			return nil, err
		}
	} else if serial.Sign() <= 0 || serial.BitLen() > 159 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "serial must be positive and at most 20 octets")
	}
	tmpl.SerialNumber = serial
	return tmpl, nil
}

func defaultLifetime(p mtlsid.Profile) time.Duration {
	switch p {
	case mtlsid.ProfileServer:
		return DefaultServerLifetime
	case mtlsid.ProfileAgent:
		return DefaultAgentLifetime
	}
	return DefaultDeviceLifetime
}

// setValidity sets the validity so that it lasts lifetime, counted as RFC
// 5280 does (both ends included, hence the second less), but never past
// the issuer's: a certificate that outlived its issuer would fail to verify
// anyway, and would break the CA/B Forum's nesting rule.
func (c *CA) setValidity(tmpl *x509.Certificate, notBefore time.Time, lifetime time.Duration) error {
	// Seconds are allowed: end-to-end tests of renewal run on certificates
	// that live a few seconds. Below that, clock skew makes no sense of it.
	if lifetime < 2*time.Second {
		return mtlsid.Errorf(mtlsid.KindInvalid, "certificate lifetime %s is too short", lifetime)
	}
	now := c.now()
	if notBefore.IsZero() {
		notBefore = now.Add(-backdate)
	}
	notBefore = notBefore.UTC().Truncate(time.Second)
	if notBefore.Before(c.issuer.NotBefore) {
		notBefore = c.issuer.NotBefore
	}
	notAfter := notBefore.Add(lifetime - time.Second)
	if notAfter.After(c.issuer.NotAfter) {
		notAfter = c.issuer.NotAfter
	}
	if !now.Before(c.issuer.NotAfter) || !notAfter.After(notBefore) {
		return mtlsid.Errorf(mtlsid.KindInternal, "the issuing CA expired on %s: rotate the CA", c.issuer.NotAfter.Format(time.DateOnly))
	}
	tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
	return nil
}

// serverNames checks a server request's names and returns its CN.
func serverNames(req Request) (string, error) {
	if len(req.DNSNames) == 0 && len(req.IPAddresses) == 0 {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "server certificates need at least one DNS name or IP address")
	}
	for _, name := range req.DNSNames {
		if err := checkDNSName(name); err != nil {
			return "", err
		}
	}
	for _, ip := range req.IPAddresses {
		if ip.To4() == nil && ip.To16() == nil {
			return "", mtlsid.Errorf(mtlsid.KindInvalid, "invalid IP address %v", ip)
		}
	}
	if req.CommonName != "" {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "server certificates take their common name from the first DNS name or IP address")
	}
	if len(req.DNSNames) > 0 {
		return req.DNSNames[0], nil
	}
	return req.IPAddresses[0].String(), nil
}

// checkDNSName accepts lower-case LDH host names, with a wildcard only as
// the whole first label, as RFC 5280 and browsers do.
func checkDNSName(name string) error {
	bad := func(why string) error {
		return mtlsid.Errorf(mtlsid.KindInvalid, "DNS name %q is invalid: %s", name, why)
	}
	if name == "" || len(name) > 253 {
		return bad("empty or longer than 253 characters")
	}
	if name != strings.ToLower(name) {
		return bad("must be lower case")
	}
	// Single-label names such as "localhost" are refused by the public-TLS
	// rules, but a private CA serves exactly such hosts: allow them.
	labels := strings.Split(name, ".")
	if len(labels) < 2 && labels[0] == "*" {
		return bad("a wildcard needs a domain below it")
	}
	for i, l := range labels {
		if l == "*" && i == 0 {
			continue
		}
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return bad("empty label, label over 63 characters, or hyphen at a label's end")
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return bad("only letters, digits and hyphens are allowed (use the punycode form)")
			}
		}
	}
	return nil
}

// checkNameField checks a subject attribute: present, at most 64
// characters (RFC 5280's upper bound), printable.
func checkNameField(what, s string) error {
	if strings.TrimSpace(s) == "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "%s is required", what)
	}
	if s != strings.TrimSpace(s) {
		return mtlsid.Errorf(mtlsid.KindInvalid, "%s must not start or end with spaces", what)
	}
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > 64 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "%s must be valid text of at most 64 characters", what)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return mtlsid.Errorf(mtlsid.KindInvalid, "%s must not contain control characters", what)
		}
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// domainValidated is the CA/B Forum's domain-validated policy.
var domainValidated = mustOID("2.23.140.1.2.1")

// subjectKeyID is method 1 of RFC 7093 §2: the leftmost 160 bits of the
// SHA-256 of the subjectPublicKey bits. Go adds one only to CA
// certificates; leaves get one too, as RFC 5280 §4.2.1.2 recommends (the
// CA/B Forum's "not recommended" for servers is only a warning either way,
// and RFC 5280 is the wider audience).
func subjectKeyID(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20]
}
