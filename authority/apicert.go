package authority

import (
	"context"

	"github.com/mtlsid/mtlsid"
)

// APICertRequest asks for an API (agent) certificate for a service.
type APICertRequest struct {
	ServiceID string
	Name      string // agent name; empty means "api"
	CSR       []byte // nil: the authority makes the key (PKCS#12)
	// Development journals every change made with the certificate, so
	// that revoking it undoes them all.
	Development bool
}

// IssueAPICert issues an API certificate for a service. Only an
// administrator of the service's organization may.
func (a *Authority) IssueAPICert(ctx context.Context, actor *Actor, req APICertRequest) (*Issued, error) {
	if _, err := a.requireServiceRole(ctx, actor, req.ServiceID, mtlsid.OrgAdministrator); err != nil {
		return nil, err
	}
	if req.Name == "" {
		req.Name = "api"
	}
	name, err := checkName(req.Name)
	if err != nil {
		return nil, err
	}
	pub, key, err := a.subjectKey(req.CSR)
	if err != nil {
		return nil, err
	}
	out, err := a.sign(ctx, signing{
		at: a.clock(), profile: mtlsid.ProfileAgent, identityID: req.ServiceID, name: name,
		deviceType: mtlsid.DeviceAgent, pub: pub, key: key, development: req.Development,
		actor: actor.Serial, auditType: mtlsid.AuditCertIssued,
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("API certificate issued", "serial", out.Record.Serial, "service", req.ServiceID, "development", req.Development, "by", actor.Serial)
	return out, nil
}

// APICerts lists a service's API certificates; members of its organization
// may look.
func (a *Authority) APICerts(ctx context.Context, actor *Actor, serviceID string) ([]mtlsid.Certificate, error) {
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgMember); err != nil {
		return nil, err
	}
	return a.store.IdentityCertificates(ctx, serviceID)
}

// RevokeAPICert revokes one of a service's API certificates. Only an
// administrator of its organization may. Revoking a development
// certificate undoes every change made with it, in the same transaction.
func (a *Authority) RevokeAPICert(ctx context.Context, actor *Actor, serial string) error {
	s, err := mtlsid.NormalizeSerial(serial)
	if err != nil {
		return err
	}
	// Unknown, not an API certificate, or another organization's: one
	// answer, so that it does not tell which serials exist.
	notYours := mtlsid.Errorf(mtlsid.KindForbidden, "%s is not an API certificate of a service you administer", s)
	c, err := a.store.Certificate(ctx, s)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return notYours
	}
	if err != nil {
		return err
	}
	if c.Profile != mtlsid.ProfileAgent {
		return notYours
	}
	if _, err := a.requireServiceRole(ctx, actor, c.IdentityID, mtlsid.OrgAdministrator); err != nil {
		return notYours
	}
	return a.revoke(ctx, s, mtlsid.ReasonCessationOfOperation, actor.Serial)
}
