package sdk

import (
	"context"
	"crypto/tls"
)

// IdentifyTLS identifies the person behind the verified client
// certificate of a TLS connection, as Wrap does for a request over TLS:
// through the same cache (one inquiry in flight per serial, answers
// dropped when the authority reports a revocation) and the authority. It
// serves protocols other than HTTP, such as the gateway's TCP perimeters,
// which must decide before relaying the first byte.
//
// It returns ErrNoCertificate when cs is nil or carries no certificate
// that TLS verified (a certificate TLS did not verify is ignored); an
// *OutcomeError of class PB when the authority does not accept the
// certificate (test it with errors.Is against ErrCertificateRevoked,
// ErrNeedsValidation, ...); and any other error when the authority could
// not be asked, in which case callers must refuse (fail closed). It never
// starts the redirect flow: a certificate not yet shared with the service
// gives ErrNeedsValidation. It is safe for concurrent use.
func (m *Middleware) IdentifyTLS(ctx context.Context, cs *tls.ConnectionState) (*Profile, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 || len(cs.VerifiedChains) == 0 {
		return nil, ErrNoCertificate
	}
	leaf := cs.PeerCertificates[0]
	res, ok := m.cache.getDER(leaf.Raw)
	if !ok {
		serial := leaf.SerialNumber.String()
		var err error
		if res, err = m.cache.lookup(ctx, serial, leaf.Raw, m.fetch(serial, leaf)); err != nil {
			return nil, err
		}
	}
	if res.err != nil {
		return nil, res.err
	}
	return res.cert, nil
}
