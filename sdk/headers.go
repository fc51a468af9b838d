package sdk

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
)

// The forwarded-identity headers the middleware reads from a trusted
// proxy, and strips from every other request.
const (
	HeaderClientCert      = "Client-Cert"                 // RFC 9440: :base64 DER:
	HeaderClientCertChain = "Client-Cert-Chain"           // RFC 9440: list of :base64 DER:
	HeaderXFCC            = "X-Forwarded-Client-Cert"     // Envoy: Hash=...;Cert="<URL-encoded PEM>"
	HeaderTraefik         = "X-Forwarded-Tls-Client-Cert" // Traefik: URL-escaped PEM body, comma-separated chain
	HeaderTraefikInfo     = "X-Forwarded-Tls-Client-Cert-Info"
	HeaderNginx           = "X-Ssl-Client-Cert" // nginx: $ssl_client_escaped_cert (URL-escaped PEM), by convention
	HeaderMTLSID          = "X-Mtls-Id"         // the gateway: the certificate's serial
	HeaderMTLSAgent       = "X-Mtls-Agent"      // the gateway: the device or agent name
	HeaderMTLSRoles       = "X-Mtls-Roles"      // the gateway: roles, comma-separated
	HeaderMTLSLocalID     = "X-Mtls-Local-Id"   // the gateway: the bound local user
	HeaderMTLSOrgID       = "X-Mtls-Org-Id"     // the gateway: the organization
)

// identityHeaders are the canonical names stripped from requests that do
// not come from a trusted proxy.
var identityHeaders = map[string]bool{
	HeaderClientCert: true, HeaderClientCertChain: true, HeaderXFCC: true,
	HeaderTraefik: true, HeaderTraefikInfo: true, HeaderNginx: true,
	"X-Client-Cert": true, "Ssl-Client-Cert": true,
	HeaderMTLSID: true, HeaderMTLSAgent: true, HeaderMTLSRoles: true,
	HeaderMTLSLocalID: true, HeaderMTLSOrgID: true,
}

// maxHeaderCert bounds a forwarded certificate header, in bytes: a
// certificate with its chain fits easily; anything larger is refused
// before decoding.
const maxHeaderCert = 32 << 10

var (
	errNoHeader   = errors.New("sdk: no forwarded certificate")
	errBadHeader  = errors.New("sdk: malformed forwarded certificate header")
	errHashDiffer = errors.New("sdk: X-Forwarded-Client-Cert Hash does not match its Cert")
)

// ParseClientCert parses an RFC 9440 Client-Cert field value: one
// Structured Fields Byte Sequence, ":" base64 DER ":". It returns the
// certificate, or an error for anything else.
func ParseClientCert(v string) (*x509.Certificate, error) {
	der, err := sfBinary(strings.TrimSpace(v))
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// ParseClientCertChain parses an RFC 9440 Client-Cert-Chain field value:
// a list of Byte Sequences, in TLS order.
func ParseClientCertChain(v string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if i := strings.IndexByte(item, ';'); i >= 0 {
			item = item[:i] // parameters carry nothing for us
		}
		der, err := sfBinary(item)
		if err != nil {
			return nil, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func sfBinary(v string) ([]byte, error) {
	if len(v) < 2 || v[0] != ':' || v[len(v)-1] != ':' || len(v) > maxHeaderCert {
		return nil, errBadHeader
	}
	der, err := base64.StdEncoding.DecodeString(v[1 : len(v)-1])
	if err != nil {
		return nil, errBadHeader
	}
	return der, nil
}

// XFCCElement is one element of Envoy's X-Forwarded-Client-Cert: what one
// proxy reports of the certificate its client presented.
type XFCCElement struct {
	By, Hash, Cert, Chain, Subject, URI string
	DNS                                 []string
}

// ParseXFCC parses an Envoy X-Forwarded-Client-Cert value into its
// elements (comma-separated; each a ;-separated list of key=value, values
// optionally double-quoted with \" escapes). Cert and Chain are returned
// URL-decoded (PEM). Keys are case-insensitive; unknown keys are ignored.
func ParseXFCC(v string) ([]XFCCElement, error) {
	if len(v) > 4*maxHeaderCert {
		return nil, errBadHeader
	}
	var out []XFCCElement
	var el XFCCElement
	i := 0
	for {
		// key
		j := i
		for j < len(v) && v[j] != '=' && v[j] != ';' && v[j] != ',' {
			j++
		}
		if j >= len(v) || v[j] != '=' {
			return nil, errBadHeader
		}
		key := strings.ToLower(strings.TrimSpace(v[i:j]))
		if key == "" {
			return nil, errBadHeader
		}
		i = j + 1
		// value
		var val string
		if i < len(v) && v[i] == '"' {
			var b strings.Builder
			i++
			closed := false
			for i < len(v) {
				c := v[i]
				if c == '\\' && i+1 < len(v) {
					b.WriteByte(v[i+1])
					i += 2
					continue
				}
				i++
				if c == '"' {
					closed = true
					break
				}
				b.WriteByte(c)
			}
			if !closed {
				return nil, errBadHeader
			}
			val = b.String()
		} else {
			j = i
			for j < len(v) && v[j] != ';' && v[j] != ',' {
				j++
			}
			val = strings.TrimSpace(v[i:j])
			i = j
		}
		switch key {
		case "by":
			el.By = val
		case "hash":
			el.Hash = val
		case "cert", "chain":
			pemText, err := url.QueryUnescape(strings.ReplaceAll(val, "+", "%2B"))
			if err != nil {
				return nil, errBadHeader
			}
			if key == "cert" {
				el.Cert = pemText
			} else {
				el.Chain = pemText
			}
		case "subject":
			el.Subject = val
		case "uri":
			el.URI = val
		case "dns":
			el.DNS = append(el.DNS, val)
		}
		if i >= len(v) {
			out = append(out, el)
			return out, nil
		}
		switch v[i] {
		case ';':
			i++
		case ',':
			out = append(out, el)
			el = XFCCElement{}
			i++
		default:
			return nil, errBadHeader
		}
	}
}

// xfccCert returns the certificate of the last element of an XFCC value:
// the one the trusted proxy itself verified (earlier elements were
// appended by proxies before it, or sent by the client). Its Cert is
// required, and must match Hash when both are present.
func xfccCert(v string) (*x509.Certificate, error) {
	els, err := ParseXFCC(v)
	if err != nil {
		return nil, err
	}
	el := els[len(els)-1]
	if el.Cert == "" {
		return nil, errNoHeader
	}
	c, err := parsePEMCert(el.Cert)
	if err != nil {
		return nil, err
	}
	if el.Hash != "" {
		sum := sha256.Sum256(c.Raw)
		if !strings.EqualFold(el.Hash, hex.EncodeToString(sum[:])) {
			return nil, errHashDiffer
		}
	}
	return c, nil
}

// ParseEscapedPEM parses nginx's $ssl_client_escaped_cert (the PEM,
// URL-escaped) and also the deprecated $ssl_client_cert (PEM whose lines
// after the first start with a tab).
func ParseEscapedPEM(v string) (*x509.Certificate, error) {
	if len(v) > maxHeaderCert {
		return nil, errBadHeader
	}
	if strings.Contains(v, "%") {
		u, err := url.PathUnescape(v)
		if err != nil {
			return nil, errBadHeader
		}
		v = u
	}
	return parsePEMCert(v)
}

// ParseTraefikCert parses Traefik's X-Forwarded-Tls-Client-Cert: each
// certificate's PEM with the delimiters and newlines removed (base64
// DER), URL-escaped, comma-separated; the first is the client's.
func ParseTraefikCert(v string) (*x509.Certificate, error) {
	if len(v) > maxHeaderCert {
		return nil, errBadHeader
	}
	first, _, _ := strings.Cut(v, ",")
	u, err := url.QueryUnescape(strings.ReplaceAll(strings.TrimSpace(first), "+", "%2B"))
	if err != nil {
		return nil, errBadHeader
	}
	if strings.HasPrefix(u, "-----BEGIN") {
		return parsePEMCert(u)
	}
	der, err := base64.StdEncoding.DecodeString(u)
	if err != nil {
		return nil, errBadHeader
	}
	return x509.ParseCertificate(der)
}

// ParseSerial reads an X-mTLS-ID value: a certificate serial, decimal or
// 0x hex, returned in decimal. It accepts at most 160 bits (RFC 5280).
func ParseSerial(v string) (string, error) {
	v = strings.TrimSpace(v)
	base := 10
	if strings.HasPrefix(v, "0x") || strings.HasPrefix(v, "0X") {
		v, base = v[2:], 16
	}
	if v == "" || len(v) > 49 {
		return "", errBadHeader
	}
	for _, r := range v {
		if !(r >= '0' && r <= '9' || base == 16 && (r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F')) {
			return "", errBadHeader
		}
	}
	n, ok := new(big.Int).SetString(v, base)
	if !ok || n.Sign() <= 0 || n.BitLen() > 160 {
		return "", errBadHeader
	}
	return n.String(), nil
}

// parsePEMCert decodes the first CERTIFICATE block of text, tolerating the
// tab-indented lines of nginx's legacy $ssl_client_cert.
func parsePEMCert(text string) (*x509.Certificate, error) {
	if strings.Contains(text, "\n\t") {
		text = strings.ReplaceAll(text, "\n\t", "\n")
	}
	b, _ := pem.Decode([]byte(text))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errBadHeader
	}
	return x509.ParseCertificate(b.Bytes)
}

// forwarded is what a trusted proxy's headers said.
type forwarded struct {
	cert    *x509.Certificate // nil for X-mTLS-ID
	serial  string
	header  string // the header it came from
	trusted []string
}

// fromHeaders reads the forwarded identity of a trusted proxy's request,
// trying the dialects in a fixed order. It returns errNoHeader when none
// is present, and the first parse error otherwise (fail closed: a
// malformed header is not skipped in favour of another).
func fromHeaders(h http.Header, nginxHeader string) (*forwarded, error) {
	var trusted []string
	for k := range h {
		if identityHeaders[k] || k == nginxHeader {
			trusted = append(trusted, k)
		}
	}
	try := []struct {
		name  string
		parse func(string) (*x509.Certificate, error)
	}{
		{HeaderClientCert, ParseClientCert},
		{HeaderXFCC, xfccCert},
		{HeaderTraefik, ParseTraefikCert},
		{nginxHeader, ParseEscapedPEM},
	}
	for _, t := range try {
		v := h.Get(t.name)
		if v == "" {
			continue
		}
		c, err := t.parse(v)
		if err != nil {
			return nil, err
		}
		return &forwarded{cert: c, serial: c.SerialNumber.String(), header: t.name, trusted: trusted}, nil
	}
	if v := h.Get(HeaderMTLSID); v != "" {
		s, err := ParseSerial(v)
		if err != nil {
			return nil, err
		}
		return &forwarded{serial: s, header: HeaderMTLSID, trusted: trusted}, nil
	}
	return nil, errNoHeader
}

// stripIdentityHeaders removes every forwarded-identity header from h. It
// allocates nothing when there is none.
func stripIdentityHeaders(h http.Header, nginxHeader string) {
	for k := range h {
		if identityHeaders[k] || k == nginxHeader {
			delete(h, k)
		}
	}
}
