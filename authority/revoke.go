package authority

import (
	"context"
	"fmt"

	"github.com/mtlsid/mtlsid"
)

// Devices returns the certificates of the caller's identity, oldest first.
func (a *Authority) Devices(ctx context.Context, caller *mtlsid.Certificate) ([]mtlsid.Certificate, error) {
	return a.store.IdentityCertificates(ctx, caller.IdentityID)
}

// Revoke revokes one of the caller's own certificates (a lost device, or
// the caller itself). Another identity's certificate is refused with
// KindForbidden, without saying whether it exists; an unknown serial is
// KindNotFound; an already revoked one is ErrRevoked.
func (a *Authority) Revoke(ctx context.Context, caller *mtlsid.Certificate, serial string, reason int) error {
	s, err := mtlsid.NormalizeSerial(serial)
	if err != nil {
		return err
	}
	target, err := a.store.Certificate(ctx, s)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return mtlsid.Errorf(mtlsid.KindNotFound, "no certificate with serial %s", s)
	}
	if err != nil {
		return err
	}
	if target.IdentityID != caller.IdentityID {
		a.log.Warn("revocation refused: not the caller's certificate", "serial", s, "caller", caller.Serial)
		return mtlsid.Errorf(mtlsid.KindForbidden, "certificate %s is not one of your devices", s)
	}
	return a.revoke(ctx, s, reason, caller.Serial)
}

// RevokeLocal revokes any certificate; it is for the operator working on
// the data directory directly (`mtlsid revoke --data`).
func (a *Authority) RevokeLocal(ctx context.Context, serial string, reason int) error {
	s, err := mtlsid.NormalizeSerial(serial)
	if err != nil {
		return err
	}
	return a.revoke(ctx, s, reason, "local")
}

func (a *Authority) revoke(ctx context.Context, serial string, reason int, actor string) error {
	if reason < 0 || reason > 10 || reason == 7 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "revocation reason %d is not an RFC 5280 reason code", reason)
	}
	now := a.clock()
	err := a.store.Revoke(ctx, mtlsid.Revocation{
		Serial: serial, At: now, Reason: reason,
		Audit: mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditCertRevoked, Actor: actor, Subject: serial, Detail: fmt.Sprintf("reason=%d", reason)},
	})
	if err != nil {
		return err
	}
	a.certificateRevoked(serial)
	a.log.Info("revoked", "serial", serial, "by", actor, "reason", reason)
	if a.onRevoke != nil {
		a.onRevoke(ctx)
	}
	return nil
}
