package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
)

func makeCSR(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "laptop"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestParseCSR(t *testing.T) {
	keys := testKeys(t, ECDSAP256, ECDSAP384, RSA2048)
	for kt, key := range keys {
		der := makeCSR(t, key)
		pemCSR := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
		for form, data := range map[string][]byte{"der": der, "pem": pemCSR, "pem with spaces": append([]byte("\n  "), pemCSR...)} {
			csr, err := ParseCSR(data)
			if err != nil {
				t.Errorf("%s %s: %v", kt, form, err)
				continue
			}
			if csr.Subject.CommonName != "laptop" {
				t.Errorf("%s %s: CN %q", kt, form, csr.Subject.CommonName)
			}
		}
	}
}

func TestParseCSRRejects(t *testing.T) {
	good := makeCSR(t, testKeys(t, ECDSAP256)[ECDSAP256])
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 0x01 // last byte of the signature value

	weak, err := rsa.GenerateKey(nil, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), nil)
	_, ed, _ := ed25519.GenerateKey(nil)

	tests := []struct {
		name string
		data []byte
		kind mtlsid.Kind
		msg  string
	}{
		{"tampered signature", tampered, mtlsid.KindInvalid, "CSR signature does not verify"},
		{"rsa 1024", makeCSR(t, weak), mtlsid.KindInvalid, "1024 bits is too weak"},
		{"p521", makeCSR(t, p521), mtlsid.KindInvalid, "P-521"},
		{"ed25519", makeCSR(t, ed), mtlsid.KindInvalid, "ED25519"},
		{"oversized", bytes.Repeat([]byte{'A'}, MaxCSRSize+1), mtlsid.KindTooLarge, "larger than"},
		{"garbage", []byte("hello"), mtlsid.KindInvalid, "not a valid PKCS#10"},
		{"empty", nil, mtlsid.KindInvalid, "not a valid PKCS#10"},
		{"certificate PEM", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), mtlsid.KindInvalid, "CERTIFICATE REQUEST"},
		{"truncated", good[:len(good)/2], mtlsid.KindInvalid, "not a valid PKCS#10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			csr, err := ParseCSR(tt.data)
			if csr != nil || mtlsid.ErrorKind(err) != tt.kind || !strings.Contains(mtlsid.ErrorMessage(err), tt.msg) {
				t.Errorf("ParseCSR: %v (kind %s), want %s containing %q", err, mtlsid.ErrorKind(err), tt.kind, tt.msg)
			}
		})
	}
}

func FuzzParseCSR(f *testing.F) {
	key, err := GenerateKey(ECDSAP256, nil)
	if err != nil {
		f.Fatal(err)
	}
	der := makeCSR(f, key)
	f.Add(der)
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if err == nil {
			// Anything accepted must be usable as a key for Issue.
			if csr == nil || CheckPublicKey(csr.PublicKey) != nil || csr.CheckSignature() != nil {
				t.Fatalf("accepted an unusable CSR")
			}
			return
		}
		if k := mtlsid.ErrorKind(err); k != mtlsid.KindInvalid && k != mtlsid.KindTooLarge {
			t.Fatalf("error kind %s: %v", k, err)
		}
	})
}
