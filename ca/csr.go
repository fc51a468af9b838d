package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"

	"github.com/mtlsid/mtlsid"
)

// MaxCSRSize bounds a CSR's encoded size. Real ones are under 2 KiB even
// with an RSA-8192 key; the limit keeps parsing cheap for hostile input.
const MaxCSRSize = 64 << 10

// ParseCSR parses a PKCS#10 certificate request in PEM or DER, checks that
// its key is one CheckPublicKey accepts and that it is signed by that key
// (so the requester holds the private key), and returns it. Failures are
// *mtlsid.Error values: KindTooLarge over MaxCSRSize, KindInvalid with a
// message fit to show the requester otherwise.
//
// Only the public key is meant to be used: subject, extensions and names
// in the CSR are requests the caller decides on, never copied blindly.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	if len(data) > MaxCSRSize {
		return nil, mtlsid.Errorf(mtlsid.KindTooLarge, "CSR is larger than %d bytes", MaxCSRSize)
	}
	der := data
	if t := bytes.TrimSpace(data); bytes.HasPrefix(t, []byte("-----BEGIN")) {
		block, _ := pem.Decode(t)
		if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
			return nil, mtlsid.Errorf(mtlsid.KindInvalid, "CSR PEM must hold a CERTIFICATE REQUEST block")
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, &mtlsid.Error{Kind: mtlsid.KindInvalid, Message: "CSR is not a valid PKCS#10 request", Err: err}
	}
	// The key is checked first: it names the problem better, and spares
	// verifying a signature made with a key that is refused anyway.
	if err := CheckPublicKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, &mtlsid.Error{Kind: mtlsid.KindInvalid, Message: "CSR signature does not verify", Err: err}
	}
	return csr, nil
}
