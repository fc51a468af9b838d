package domainverify

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/mtlsid/mtlsid"
)

// RecordLabel is the label prepended to a domain to name its DNS challenge
// record.
const RecordLabel = "_mtlsid-challenge"

// WellKnownPrefix is the URL path under which a domain serves its HTTP
// challenge file; the token follows it.
const WellKnownPrefix = "/.well-known/mtlsid-challenge/"

// The methods Verify reports.
const (
	MethodDNS  = "dns"
	MethodHTTP = "http"
)

const (
	challengeBytes = 32  // 256 random bits: 43 base64url characters
	minTokenLen    = 22  // 128 bits in base64url
	maxTokenLen    = 128 // generous, and well under a TXT string's 255 bytes
	maxDomainLen   = 253 // RFC 1035, without the trailing dot
	maxLabelLen    = 63
)

// NewChallenge returns a fresh challenge token: 256 bits from r encoded as
// unpadded base64url (43 characters of A-Z a-z 0-9 - _), safe in a URL path
// and in a DNS TXT string. A nil r means crypto/rand.Reader. It fails only if
// r does.
func NewChallenge(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, challengeBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", fmt.Errorf("new challenge: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// RecordName returns the name of the TXT record that proves control of
// domain by DNS: "_mtlsid-challenge." + domain. It does not check domain.
func RecordName(domain string) string {
	return RecordLabel + "." + domain
}

// WellKnownPath returns the URL path that proves control by HTTP:
// "/.well-known/mtlsid-challenge/" + token. It does not check token.
func WellKnownPath(token string) string {
	return WellKnownPrefix + token
}

// CheckDomain reports whether domain is a name this package will verify, as
// an *mtlsid.Error of KindInvalid if not. It does no I/O. A valid domain is a
// lower-case LDH host name in presentation form: at least two labels of 1 to
// 63 characters from a-z, 0-9 and '-' (not at either end of a label), 253
// characters at most, no trailing dot, a top-level label that is not all
// digits (so no IP literal passes), and not localhost or a name under it.
// Anything else, such as "127.0.0.1", "evil.com:22", "a.com/x" or
// "Example.com", is rejected, so a valid domain names only a host and is safe
// to put in a URL and a DNS query as it is.
func CheckDomain(domain string) error {
	invalid := func(why string) error {
		return mtlsid.Errorf(mtlsid.KindInvalid, "invalid domain %q: %s", clip(domain), why)
	}
	switch {
	case domain == "":
		return mtlsid.Errorf(mtlsid.KindInvalid, "invalid domain: empty")
	case len(domain) > maxDomainLen:
		return invalid(fmt.Sprintf("longer than %d characters", maxDomainLen))
	case strings.HasSuffix(domain, "."):
		return invalid("must not end with a dot")
	}
	if _, err := netip.ParseAddr(domain); err == nil {
		return invalid("an IP address is not a domain")
	}
	labels := strings.Split(domain, ".")
	if len(labels) < 2 {
		return invalid("need at least two labels, as in example.com")
	}
	for _, l := range labels {
		if why := checkLabel(l); why != "" {
			return invalid(why)
		}
	}
	tld := labels[len(labels)-1]
	if strings.Trim(tld, "0123456789") == "" {
		return invalid("the last label must not be all digits")
	}
	if tld == "localhost" {
		return invalid("localhost names are not verifiable")
	}
	return nil
}

// checkLabel returns why l is not an LDH label, or "".
func checkLabel(l string) string {
	switch {
	case l == "":
		return "empty label"
	case len(l) > maxLabelLen:
		return fmt.Sprintf("label longer than %d characters", maxLabelLen)
	case l[0] == '-' || l[len(l)-1] == '-':
		return "label starts or ends with '-'"
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-':
		case 'A' <= c && c <= 'Z':
			return "must be lower case"
		default:
			return fmt.Sprintf("character %q not allowed (only a-z, 0-9, '-' and '.')", c)
		}
	}
	return ""
}

// checkToken reports whether token looks like one from NewChallenge: 22 to
// 128 characters of the base64url alphabet. Anything else could change the
// meaning of the URL it goes into.
func checkToken(token string) error {
	if len(token) < minTokenLen || len(token) > maxTokenLen {
		return mtlsid.Errorf(mtlsid.KindInvalid, "invalid challenge token: want %d to %d characters, got %d", minTokenLen, maxTokenLen, len(token))
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return mtlsid.Errorf(mtlsid.KindInvalid, "invalid challenge token: character %q not allowed (base64url only)", c)
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
