package authority

import (
	"bytes"
	"context"
	"crypto/x509"
	"net"

	"github.com/mtlsid/mtlsid"
)

// Caller finds the stored certificate behind a verified client certificate
// and checks that it may act now. It fails closed: no certificate, one the
// store does not know or whose bytes differ (KindUnauthorized), revoked
// (ErrRevoked) or expired (ErrExpired).
func (a *Authority) Caller(ctx context.Context, peer *x509.Certificate) (*mtlsid.Certificate, error) {
	if peer == nil {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "no client certificate presented")
	}
	rec, err := a.certificate(ctx, peer.SerialNumber.String())
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "unknown client certificate")
	}
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(rec.DER, peer.Raw) {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "unknown client certificate")
	}
	switch rec.Status(a.now()) {
	case mtlsid.StatusRevoked:
		return nil, mtlsid.ErrRevoked
	case mtlsid.StatusExpired, mtlsid.StatusPending:
		return nil, mtlsid.ErrExpired
	}
	return rec, nil
}

func parseIP(s string) net.IP { return net.ParseIP(s) }
