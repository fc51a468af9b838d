package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"strings"

	"software.sslmate.com/src/go-pkcs12"
)

// PKCS12 packs key, cert and its chain (issuer first, root last, or none)
// into a password-protected PKCS#12 file for a browser or OS key store. It
// uses go-pkcs12's Modern encoder (AES-256-CBC, PBKDF2-SHA-256, SHA-256
// MAC), which OpenSSL 3, current browsers, Windows 10+ and macOS 12+
// import. Salts and IVs come from crypto/rand: unlike keys and serials,
// nothing about a PKCS#12 file ever needs to be reproduced in a test.
//
// The password is the only protection of the key in the file: callers show
// it once and never store or log it.
func PKCS12(key crypto.Signer, cert *x509.Certificate, chain []*x509.Certificate, password string) ([]byte, error) {
	if key == nil || cert == nil {
		return nil, fmt.Errorf("pkcs12: key and certificate are required")
	}
	if password == "" {
		return nil, fmt.Errorf("pkcs12: a password is required")
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("pkcs12: key does not match certificate")
	}
	pfx, err := pkcs12.Modern.Encode(key, cert, chain, password)
	if err != nil {
		return nil, fmt.Errorf("pkcs12: %w", err)
	}
	return pfx, nil
}

// passwordAlphabet is Crockford's base32 in lower case: no i, l, o or u,
// so a password read off a screen cannot be mistyped as another.
const passwordAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// NewPassword returns a random password for a PKCS#12 file: 20 symbols of
// 5 bits (100 bits) in four dash-separated groups, easy to copy by hand,
// e.g. "7k2xq-mp9ad-0rt4w-h8cne". r nil means crypto/rand; if r fails,
// crypto/rand is used instead, so the password is never weak.
func NewPassword(r io.Reader) string {
	var b [13]byte // 104 bits, 100 used
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b[:]); err != nil {
		rand.Read(b[:])
	}
	var sb strings.Builder
	var acc uint32
	var nbits, n int
	for _, x := range b {
		acc = acc<<8 | uint32(x)
		nbits += 8
		for nbits >= 5 && n < 20 {
			nbits -= 5
			if n > 0 && n%5 == 0 {
				sb.WriteByte('-')
			}
			sb.WriteByte(passwordAlphabet[(acc>>nbits)&31])
			n++
		}
	}
	return sb.String()
}
