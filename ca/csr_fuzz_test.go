package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"net"
	"net/url"
	"testing"
	"unicode/utf8"

	"github.com/mtlsid/mtlsid"
)

// FuzzIssueFromCSR follows a CSR from the bytes a client sends to the
// certificate the CA signs for it, the way the authority does: parse and
// check, then issue for the public key alone. Whatever the bytes:
//   - over MaxCSRSize is KindTooLarge; any other refusal is KindInvalid,
//     an *mtlsid.Error with a short message, and returns no CSR;
//   - an accepted CSR has an accepted key and a valid signature, and its
//     DER (bare or in PEM) parses back to the same request;
//   - the certificate issued for it carries its key and nothing else of
//     it: the CA's subject, no names, no CA rights, client auth only, and
//     it verifies to the root.
func FuzzIssueFromCSR(f *testing.F) {
	for _, s := range csrSeeds(f) {
		f.Add(s)
	}
	c, _ := newTestCA(f, ECDSAP256)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(c.Root())
	inter.AddCert(c.Issuer())
	f.Fuzz(func(t *testing.T, data []byte) {
		csr, err := ParseCSR(data)
		if len(data) > MaxCSRSize {
			if mtlsid.ErrorKind(err) != mtlsid.KindTooLarge || csr != nil {
				t.Fatalf("%d bytes: %v, want KindTooLarge", len(data), err)
			}
			return
		}
		if err != nil {
			var me *mtlsid.Error
			if !errors.As(err, &me) || me.Kind != mtlsid.KindInvalid || csr != nil {
				t.Fatalf("refusal is not a bare KindInvalid error: %#v", err)
			}
			if msg := mtlsid.ErrorMessage(err); msg == "" || len(msg) > 256 || !utf8.ValidString(msg) {
				t.Fatalf("bad message %.200q", msg)
			}
			return
		}
		if CheckPublicKey(csr.PublicKey) != nil || csr.CheckSignature() != nil {
			t.Fatal("accepted a CSR whose key or signature does not check")
		}
		for _, form := range [][]byte{csr.Raw, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr.Raw})} {
			again, err := ParseCSR(form)
			if err != nil || !bytes.Equal(again.Raw, csr.Raw) || !samePublicKey(again.PublicKey, csr.PublicKey) {
				t.Fatalf("accepted CSR does not round-trip: %v", err)
			}
		}

		cert, err := c.Issue(Request{Profile: mtlsid.ProfileDevice, PublicKey: csr.PublicKey, CommonName: "fuzz", DeviceType: mtlsid.DeviceDesktop})
		if err != nil {
			t.Fatalf("issuing for an accepted CSR: %v", err)
		}
		if !samePublicKey(cert.PublicKey, csr.PublicKey) {
			t.Fatal("certificate key differs from the CSR's")
		}
		if cert.Subject.CommonName != "fuzz" || len(cert.Subject.OrganizationalUnit) != 1 || cert.Subject.OrganizationalUnit[0] != mtlsid.DeviceDesktop {
			t.Fatalf("subject %q taken from the CSR", cert.Subject)
		}
		if len(cert.DNSNames)+len(cert.EmailAddresses)+len(cert.IPAddresses)+len(cert.URIs) > 0 {
			t.Fatal("names copied from the CSR")
		}
		if cert.IsCA || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth || len(cert.UnknownExtKeyUsage) > 0 {
			t.Fatalf("CA %v, key usages %v %v", cert.IsCA, cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
		}
		for _, ext := range csr.Extensions {
			for _, got := range cert.Extensions {
				if got.Id.Equal(ext.Id) && bytes.Equal(got.Value, ext.Value) && !isCAChosen(ext.Id) {
					t.Fatalf("extension %v copied from the CSR", ext.Id)
				}
			}
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: cert.NotBefore, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		if _, err := cert.Verify(opts); err != nil {
			t.Fatalf("issued certificate does not verify: %v", err)
		}
	})
}

// isCAChosen reports whether an extension with this ID is one the CA
// writes with its own value, so that a CSR asking for the same value is no
// sign of copying: key usage, extended key usage, basic constraints.
func isCAChosen(id asn1.ObjectIdentifier) bool {
	for _, ours := range []asn1.ObjectIdentifier{{2, 5, 29, 15}, {2, 5, 29, 37}, {2, 5, 29, 19}} {
		if id.Equal(ours) {
			return true
		}
	}
	return false
}

// csrSeeds are requests a client could send: every accepted key type,
// names and extensions the CA must ignore, and the refused kinds.
func csrSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	keys := map[KeyType]crypto.Signer{}
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048} {
		k, err := GenerateKey(kt, nil)
		if err != nil {
			tb.Fatal(err)
		}
		keys[kt] = k
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	u, _ := url.Parse("spiffe://example.org/admin")
	caTrue, _ := asn1.Marshal(struct{ IsCA bool }{true})
	rich := &x509.CertificateRequest{
		Subject:        pkix.Name{CommonName: "root", Organization: []string{"Evil"}, OrganizationalUnit: []string{"Server"}},
		DNSNames:       []string{"bank.example.com", "*.example.com"},
		EmailAddresses: []string{"ceo@example.com"},
		IPAddresses:    []net.IP{net.IPv4(10, 0, 0, 1)},
		URIs:           []*url.URL{u},
		ExtraExtensions: []pkix.Extension{
			{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: caTrue},
			{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}},
		},
	}
	der := func(tmpl *x509.CertificateRequest, key crypto.Signer) []byte {
		b, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	var out [][]byte
	for _, kt := range []KeyType{ECDSAP256, ECDSAP384, RSA2048} {
		plain := der(&x509.CertificateRequest{Subject: pkix.Name{CommonName: "laptop"}}, keys[kt])
		out = append(out, plain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: plain}))
	}
	good := der(rich, keys[ECDSAP256])
	tampered := bytes.Clone(good)
	tampered[len(tampered)-1] ^= 1
	out = append(out, good, tampered,
		pem.EncodeToMemory(&pem.Block{Type: "NEW CERTIFICATE REQUEST", Bytes: good}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good}),
		der(&x509.CertificateRequest{}, p521), der(&x509.CertificateRequest{}, ed),
		good[:len(good)/2], []byte("-----BEGIN CERTIFICATE REQUEST-----\n"), nil)
	return out
}
