package ca

import (
	"crypto/x509"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"

	"github.com/mtlsid/mtlsid"
)

func TestCreateCRL(t *testing.T) {
	c, _ := newTestCA(t, ECDSAP256)
	now := time.Now().UTC().Truncate(time.Second)
	revoked := []mtlsid.Certificate{
		{Serial: "1234567890123456789", RevokedAt: now.Add(-time.Hour), RevocationReason: mtlsid.ReasonKeyCompromise},
		{Serial: "42", RevokedAt: now.Add(-time.Minute), RevocationReason: mtlsid.ReasonUnspecified},
		{Serial: "0xff", RevokedAt: now.Add(-time.Minute), RevocationReason: mtlsid.ReasonSuperseded},
	}
	der, err := c.CreateCRL(big.NewInt(7), revoked, now, now.Add(7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(c.Issuer()); err != nil {
		t.Errorf("CRL does not verify against the issuer: %v", err)
	}
	if crl.Number.Int64() != 7 || !crl.ThisUpdate.Equal(now) || !crl.NextUpdate.Equal(now.Add(7*24*time.Hour)) {
		t.Errorf("number %v, this %v, next %v", crl.Number, crl.ThisUpdate, crl.NextUpdate)
	}
	if string(crl.AuthorityKeyId) != string(c.Issuer().SubjectKeyId) {
		t.Errorf("AKI %x, want %x", crl.AuthorityKeyId, c.Issuer().SubjectKeyId)
	}
	want := map[string]int{"1234567890123456789": 1, "42": 0, "255": 4}
	if len(crl.RevokedCertificateEntries) != len(want) {
		t.Fatalf("%d entries, want %d", len(crl.RevokedCertificateEntries), len(want))
	}
	for _, e := range crl.RevokedCertificateEntries {
		reason, ok := want[e.SerialNumber.String()]
		if !ok || e.ReasonCode != reason {
			t.Errorf("entry %v reason %d", e.SerialNumber, e.ReasonCode)
		}
	}

	zcrl, err := zx509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	checkLints(t, "CRL", zlint.LintRevocationList(zcrl), nil)

	if path, err := exec.LookPath("openssl"); err == nil {
		file := filepath.Join(t.TempDir(), "crl.der")
		if err := os.WriteFile(file, der, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(path, "crl", "-inform", "DER", "-in", file, "-noout", "-text").CombinedOutput()
		if err != nil {
			t.Fatalf("openssl crl: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Serial Number: FF") || !strings.Contains(string(out), "Key Compromise") {
			t.Errorf("openssl does not list the entries:\n%s", out)
		}
	}
}

func TestCreateCRLRejects(t *testing.T) {
	c, _ := newTestCA(t, ECDSAP256)
	now := time.Now()
	later := now.Add(time.Hour)
	revokedAt := now.Add(-time.Minute)
	tests := []struct {
		name    string
		number  *big.Int
		revoked []mtlsid.Certificate
		next    time.Time
	}{
		{"no number", nil, nil, later},
		{"zero number", big.NewInt(0), nil, later},
		{"next before this", big.NewInt(1), nil, now.Add(-time.Hour)},
		{"not revoked", big.NewInt(1), []mtlsid.Certificate{{Serial: "5"}}, later},
		{"bad serial", big.NewInt(1), []mtlsid.Certificate{{Serial: "x", RevokedAt: revokedAt}}, later},
		{"bad reason", big.NewInt(1), []mtlsid.Certificate{{Serial: "5", RevokedAt: revokedAt, RevocationReason: 7}}, later},
	}
	for _, tt := range tests {
		if _, err := c.CreateCRL(tt.number, tt.revoked, now, tt.next); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	empty, err := c.CreateCRL(big.NewInt(1), nil, now, later)
	if err != nil {
		t.Fatal(err)
	}
	if crl, err := x509.ParseRevocationList(empty); err != nil || len(crl.RevokedCertificateEntries) != 0 {
		t.Errorf("empty CRL: %v", err)
	}
}
