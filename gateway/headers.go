package gateway

import (
	"crypto/x509"
	"encoding/base64"
	"math/big"
	"net/http"
	"strings"
	"sync"

	"github.com/mtlsid/mtlsid/sdk"
)

// builtinIdentityHeaders are removed from every request, whatever the
// configuration: the gateway's own family, RFC 9440, the names other
// proxies use, and client-address headers, so that no upstream reads a
// client's claim as a proxy's.
var builtinIdentityHeaders = []string{
	"Client-Cert", "Client-Cert-Chain",
	"X-mTLS-ID", "X-mTLS-Agent", "X-mTLS-Roles", "X-mTLS-Local-ID", "X-mTLS-Org-ID",
	"X-mTLS-Org-Name", "X-mTLS-Org-Email", "X-mTLS-ID-Serial",
	"X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info",
	"X-SSL-Client-Cert", "X-Client-Cert", "SSL-Client-Cert", "X-TLS-Client-Serial",
	// The client's address and scheme are the gateway's to say: the
	// X-Forwarded-For/-Host/-Proto it sends are rebuilt from the connection.
	"Forwarded", "X-Real-IP", "X-Forwarded-Port", "X-Forwarded-Server",
}

// stripSet is the set of header names removed from requests, folded by
// foldName.
type stripSet map[string]bool

func newStripSet(h Headers, extra []string) stripSet {
	s := stripSet{}
	for _, n := range builtinIdentityHeaders {
		s[foldName(n)] = true
	}
	for _, n := range append(h.names(), extra...) {
		s[foldName(n)] = true
	}
	return s
}

// foldName folds case and treats "_" as "-": CGI-style upstreams (PHP,
// WSGI) read "X_mTLS_ID" and "X-mTLS-ID" as the same variable, so both
// spellings are removed.
func foldName(n string) string { return strings.ReplaceAll(strings.ToLower(n), "_", "-") }

// strip removes every header of h whose name is in s, in any spelling.
func (s stripSet) strip(h http.Header) {
	for k := range h {
		if s[foldName(k)] {
			delete(h, k)
		}
	}
}

// setIdentity adds the forwarded identity of p (nil: anonymous) to h.
func (names *Headers) setIdentity(h http.Header, p *sdk.Profile, chain []*x509.Certificate, certs *certValues) {
	names.eachIdentity(p, chain, certs, h.Set)
}

// appendIdentity appends the forwarded identity of p as header lines
// (the fast path's setIdentity). Carriage returns and line feeds in values
// become spaces, as http.Header.Write makes them.
func (names *Headers) appendIdentity(b []byte, p *sdk.Profile, chain []*x509.Certificate, certs *certValues) []byte {
	names.eachIdentity(p, chain, certs, func(name, v string) { b = appendField(b, name, v) })
	return b
}

// appendField appends the header line "name: v". Carriage returns and
// line feeds in v become spaces (as http.Header.Write makes them): no
// value, whoever chose it, ends the line early.
func appendField(b []byte, name, v string) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	if strings.ContainsAny(v, "\r\n") {
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c == '\r' || c == '\n' {
				c = ' '
			}
			b = append(b, c)
		}
	} else {
		b = append(b, v...)
	}
	return append(b, "\r\n"...)
}

// eachIdentity calls set with each forwarded identity header of p (nil:
// none). The certificate headers are given only when the certificate TLS
// verified is the one that identified p; their values come from certs.
func (names *Headers) eachIdentity(p *sdk.Profile, chain []*x509.Certificate, certs *certValues, set func(name, v string)) {
	if p == nil {
		return
	}
	put := func(name, v string) {
		if name != "-" && v != "" {
			set(name, v)
		}
	}
	serial, ok := new(big.Int).SetString(p.Serial, 10)
	if !ok {
		return
	}
	put(names.ID, "0x"+serial.Text(16))
	put(names.Roles, strings.Join(p.Roles, ","))
	put(names.LocalID, p.LocalUser)
	if p.Identity != nil {
		put(names.OrgID, p.Identity.OrganizationalReference)
	}
	if len(chain) == 0 || chain[0].SerialNumber.Cmp(serial) != 0 {
		return
	}
	v := certs.get(chain)
	put(names.Agent, v.agent)
	put(names.ClientCert, v.cert)
	put(names.ClientCertChain, v.chain)
}

// certValues remembers the certificate headers' values per client
// certificate: encoding the certificate and its chain and formatting the
// subject cost about a tenth of a proxied request's CPU, the same every
// time. A perimeter has one; a reload makes a new one. It is bounded by
// starting over when full.
type certValues struct {
	mu sync.Mutex
	m  map[string]certHeaderValues // by the leaf's DER
}

type certHeaderValues struct{ agent, cert, chain string }

const certValuesMax = 4096

func (c *certValues) get(chain []*x509.Certificate) certHeaderValues {
	leaf := chain[0]
	c.mu.Lock()
	v, ok := c.m[string(leaf.Raw)]
	c.mu.Unlock()
	if ok {
		return v
	}
	v = certHeaderValues{agent: leaf.Subject.String(), cert: sfBytes(leaf.Raw)}
	if len(chain) > 1 {
		parts := make([]string, 0, len(chain)-1)
		for _, x := range chain[1:] {
			parts = append(parts, sfBytes(x.Raw))
		}
		v.chain = strings.Join(parts, ", ")
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= certValuesMax {
		c.m = make(map[string]certHeaderValues)
	}
	c.m[string(leaf.Raw)] = v
	c.mu.Unlock()
	return v
}

// sfBytes is a Structured Fields Byte Sequence (RFC 8941), as RFC 9440
// carries certificates.
func sfBytes(b []byte) string { return ":" + base64.StdEncoding.EncodeToString(b) + ":" }
