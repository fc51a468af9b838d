package authority

import (
	"context"
	"time"

	"github.com/mtlsid/mtlsid"
)

// RenewRequest asks for a new certificate for the caller's own device or
// agent.
type RenewRequest struct {
	// Tentative renews only once two thirds of the current certificate's
	// lifetime have passed; before that Renew reports that none is due.
	Tentative bool
	// RevokePrevious retires the current certificate in the same
	// transaction. Otherwise it stays valid until it expires.
	RevokePrevious bool
	// Name, if set, renames the device in the new certificate.
	Name string
	// CSR carries the new public key; nil means the authority makes one.
	CSR []byte
}

// Renewal is the answer to Renew: either a new certificate, or not yet.
type Renewal struct {
	Issued *Issued // nil when no renewal was due
	// Due is when the current certificate becomes due for renewal.
	Due time.Time
}

// Renew issues a successor to the caller's certificate. The caller must be
// active (see Caller) and a device or agent certificate; a server
// certificate renews through the server's own path.
func (a *Authority) Renew(ctx context.Context, caller *mtlsid.Certificate, req RenewRequest) (*Renewal, error) {
	if caller == nil {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "no client certificate presented")
	}
	if caller.Profile != mtlsid.ProfileDevice && caller.Profile != mtlsid.ProfileAgent {
		return nil, mtlsid.Errorf(mtlsid.KindForbidden, "a %s certificate cannot renew itself here", caller.Profile)
	}
	now := a.clock()
	due := mtlsid.RenewalPoint(caller.NotBefore, caller.NotAfter)
	if req.Tentative && now.Before(due) {
		return &Renewal{Due: due}, nil
	}
	name := caller.Name
	if req.Name != "" {
		n, err := checkName(req.Name)
		if err != nil {
			return nil, err
		}
		name = n
	}
	pub, key, err := a.subjectKey(req.CSR)
	if err != nil {
		return nil, err
	}
	s := signing{
		at: now, profile: caller.Profile, identityID: caller.IdentityID, name: name,
		deviceType: caller.DeviceType, pub: pub, key: key, renewedFrom: caller.Serial,
		// A development API certificate renews into a development one: its
		// successor's changes must be undone by revocation too.
		development: caller.Development,
		actor:       caller.Serial, auditType: mtlsid.AuditCertRenewed,
	}
	if req.RevokePrevious {
		s.revokeSerial = caller.Serial
	}
	out, err := a.sign(ctx, s)
	if err != nil {
		return nil, err
	}
	a.log.Info("renewed", "serial", out.Record.Serial, "previous", caller.Serial, "identity", caller.IdentityID, "revoked_previous", req.RevokePrevious)
	return &Renewal{Issued: out, Due: mtlsid.RenewalPoint(out.Record.NotBefore, out.Record.NotAfter)}, nil
}
