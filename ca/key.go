package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mtlsid/mtlsid"
)

// KeyType names a key algorithm and size the CA can make and accept.
type KeyType string

// The key types. ECDSA P-256 is the default: small, fast, and accepted by
// every TLS stack mtlsid talks to.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	ECDSAP384 KeyType = "ecdsa-p384"
	RSA2048   KeyType = "rsa-2048"
	RSA3072   KeyType = "rsa-3072"
	RSA4096   KeyType = "rsa-4096"

	DefaultKeyType = ECDSAP256
)

// KeyTypes lists the key types in order of preference.
func KeyTypes() []KeyType {
	return []KeyType{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096}
}

// ParseKeyType parses a key type name, ignoring case. The empty string is
// the default type; anything unknown is a KindInvalid error listing the
// accepted names.
func ParseKeyType(s string) (KeyType, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return DefaultKeyType, nil
	}
	if kt := KeyType(s); slices.Contains(KeyTypes(), kt) {
		return kt, nil
	}
	names := make([]string, 0, 5)
	for _, kt := range KeyTypes() {
		names = append(names, string(kt))
	}
	return "", mtlsid.Errorf(mtlsid.KindInvalid, "unknown key type %q (want one of %s)", s, strings.Join(names, ", "))
}

// GenerateKey makes a new private key of type kt (the default if empty).
// rand is passed on to crypto/ecdsa and crypto/rsa, which since Go 1.26
// ignore it and always use the system's secure source; tests that need
// fixed keys use testing/cryptotest.SetGlobalRandom.
func GenerateKey(kt KeyType, rand io.Reader) (crypto.Signer, error) {
	rand = randOrDefault(rand)
	switch kt {
	case ECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand)
	case RSA2048:
		return rsa.GenerateKey(rand, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand, 4096)
	}
	_, err := ParseKeyType(string(kt))
	return nil, err
}

// MinRSABits is the smallest RSA modulus the CA accepts.
const MinRSABits = 2048

// maxRSABits bounds the work one CSR can cause: verifying a signature with
// a huge modulus is slow.
const maxRSABits = 8192

// CheckPublicKey returns nil if pub is a key the CA certifies: RSA of
// 2048 to 8192 bits with a sane exponent, or ECDSA on P-256 or P-384.
// Anything else is a KindInvalid error naming what is wrong.
func CheckPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		bits := k.N.BitLen()
		switch {
		case bits < MinRSABits:
			return mtlsid.Errorf(mtlsid.KindInvalid, "RSA key of %d bits is too weak (at least %d bits)", bits, MinRSABits)
		case bits > maxRSABits:
			return mtlsid.Errorf(mtlsid.KindInvalid, "RSA key of %d bits is too large (at most %d bits)", bits, maxRSABits)
		case k.E < 3 || k.E%2 == 0:
			return mtlsid.Errorf(mtlsid.KindInvalid, "RSA public exponent %d is invalid", k.E)
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return mtlsid.Errorf(mtlsid.KindInvalid, "ECDSA curve %s is not accepted (P-256 or P-384)", k.Curve.Params().Name)
		}
		return nil
	case nil:
		return mtlsid.Errorf(mtlsid.KindInvalid, "no public key")
	}
	return mtlsid.Errorf(mtlsid.KindInvalid, "%s keys are not accepted (ECDSA P-256, P-384 or RSA)", keyAlgorithmName(pub))
}

func keyAlgorithmName(pub crypto.PublicKey) string {
	name := fmt.Sprintf("%T", pub)
	name = strings.TrimPrefix(name, "*")
	if pkg, _, ok := strings.Cut(name, "."); ok {
		return strings.ToUpper(pkg)
	}
	return name
}

func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
