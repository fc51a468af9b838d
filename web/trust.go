package web

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/mtlsid/mtlsid"
)

type certFacts struct {
	Role      string
	Subject   string
	NotBefore string
	NotAfter  string
	SHA256    string
	SHA1      string
}

func facts(role string, c *x509.Certificate) certFacts {
	sum := sha1.Sum(c.Raw)
	return certFacts{
		Role: role, Subject: c.Subject.String(),
		NotBefore: c.NotBefore.UTC().Format("2006-01-02"), NotAfter: c.NotAfter.UTC().Format("2006-01-02"),
		SHA256: mtlsid.Fingerprint(c.Raw), SHA1: strings.ToUpper(hex.EncodeToString(sum[:])),
	}
}

func (p *Pages) trust(w http.ResponseWriter, r *http.Request) {
	var certs []certFacts
	for _, c := range p.chain {
		role := "Issuing CA"
		if c.Equal(p.root) {
			role = "Root CA"
		}
		certs = append(certs, facts(role, c))
	}
	me, _ := p.me(r)
	p.render(w, r, http.StatusOK, "trust.html", view{Title: "Trust material", Nav: "trust", Me: me, Data: struct {
		Certs []certFacts
		Host  string
	}{certs, r.Host}})
}
