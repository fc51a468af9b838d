package ca

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// testURLs is the issuing configuration `serve` uses, on a made-up host.
var testConfig = Config{
	OCSPURL:   "http://ca.example.com/ca/ocsp",
	CRLURL:    "http://ca.example.com/ca/crl",
	IssuerURL: "http://ca.example.com/ca/issuer.crt",
}

var testPassphrase = []byte("correct horse battery staple")

// newTestCA makes a CA in a temporary directory with a cheap KDF.
func newTestCA(t testing.TB, kt KeyType) (*CA, string) {
	t.Helper()
	dir := t.TempDir() + "/ca"
	c, err := Init(dir, InitConfig{KeyType: kt, Passphrase: testPassphrase, KDFCost: MinKDFCost})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	c, err = c.WithConfig(testConfig)
	if err != nil {
		t.Fatalf("WithConfig: %v", err)
	}
	return c, dir
}

// fixedClock returns a Now func stuck at t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// lintCert runs zlint on cert and fails the test on any error or fatal
// result whose lint is not in allowed.
func lintCert(t *testing.T, cert *x509.Certificate, allowed ...string) {
	t.Helper()
	zc, err := zx509.ParseCertificate(cert.Raw)
	if err != nil {
		t.Fatalf("zcrypto cannot parse %q: %v", cert.Subject, err)
	}
	checkLints(t, fmt.Sprintf("certificate %q", cert.Subject), zlint.LintCertificate(zc), allowed)
}

func checkLints(t *testing.T, what string, rs *zlint.ResultSet, allowed []string) {
	t.Helper()
	var bad []string
	for name, r := range rs.Results {
		if (r.Status == lint.Error || r.Status == lint.Fatal) && !slices.Contains(allowed, name) {
			bad = append(bad, fmt.Sprintf("%s (%s) %s", name, r.Status, r.Details))
		}
	}
	slices.Sort(bad)
	if len(bad) > 0 {
		t.Errorf("zlint on %s:\n  %s", what, strings.Join(bad, "\n  "))
	}
}

func samePublicKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
