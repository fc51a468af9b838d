package ca

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/mtlsid/mtlsid"
)

// CreateCRL returns a DER CRL signed by the issuing CA that lists the
// revoked certificates with their revocation times and reasons. number is
// the CRL number (positive, and larger than any before it: the store's
// NextCRLNumber); nextUpdate must be after thisUpdate. A certificate in
// revoked that is not revoked, or whose serial or reason is invalid, is an
// error: a CRL must never list something by mistake or drop it silently.
func (c *CA) CreateCRL(number *big.Int, revoked []mtlsid.Certificate, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if number == nil || number.Sign() <= 0 || number.BitLen() > 159 {
		return nil, fmt.Errorf("create CRL: number must be positive and at most 20 octets")
	}
	thisUpdate = thisUpdate.UTC().Truncate(time.Second)
	nextUpdate = nextUpdate.UTC().Truncate(time.Second)
	if !nextUpdate.After(thisUpdate) {
		return nil, fmt.Errorf("create CRL: next update %s is not after this update %s", nextUpdate, thisUpdate)
	}
	tmpl := &x509.RevocationList{
		Number:     number,
		ThisUpdate: thisUpdate,
		NextUpdate: nextUpdate,
	}
	for _, cert := range revoked {
		serial, err := mtlsid.ParseSerial(cert.Serial)
		if err != nil {
			return nil, fmt.Errorf("create CRL: %w", err)
		}
		if !cert.Revoked() {
			return nil, fmt.Errorf("create CRL: certificate %s is not revoked", cert.Serial)
		}
		if !validReason(cert.RevocationReason) {
			return nil, fmt.Errorf("create CRL: certificate %s has invalid revocation reason %d", cert.Serial, cert.RevocationReason)
		}
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber:   serial,
			RevocationTime: cert.RevokedAt.UTC().Truncate(time.Second),
			// Zero (unspecified) leaves the extension out, as RFC 5280
			// §5.3.1 asks.
			ReasonCode: cert.RevocationReason,
		})
	}
	der, err := x509.CreateRevocationList(c.rand(), tmpl, c.issuer, c.key)
	if err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	return der, nil
}

// validReason reports whether r is an RFC 5280 CRLReason a CRL may carry:
// 7 is unassigned and removeFromCRL (8) is for delta CRLs only.
func validReason(r int) bool {
	return r >= 0 && r <= 10 && r != 7 && r != 8
}
