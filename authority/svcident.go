package authority

import (
	"context"
	"crypto/x509"
	"slices"
	"time"

	"github.com/mtlsid/mtlsid"
)

// ServiceIdentity issues the service's server certificate for its verified
// domains (Service-Identity-Request). Without force it issues only when
// there is none, two thirds of its life have passed, or the verified
// domains changed; otherwise it returns nil.
func (a *Authority) ServiceIdentity(ctx context.Context, caller *APICaller, force bool) (*Issued, error) {
	domains, err := a.store.ServiceDomains(ctx, caller.Service.ID)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range domains {
		if d.Verified() {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	if !force {
		certs, err := a.store.IdentityCertificates(ctx, caller.Service.ID)
		if err != nil {
			return nil, err
		}
		if cur := currentServer(certs, a.now()); cur != nil && !cur.RenewalDue(a.now()) && slices.Equal(serverNames(cur), names) {
			return nil, nil
		}
	}
	if len(names) == 0 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "service %s has no verified domain", caller.Service.ID)
	}
	_, key, err := a.subjectKey(nil)
	if err != nil {
		return nil, err
	}
	return a.sign(ctx, signing{
		at: a.clock(), profile: mtlsid.ProfileServer, identityID: caller.Service.ID, name: names[0],
		deviceType: mtlsid.DeviceServer, dnsNames: names, pub: key.Public(), key: key,
		actor: caller.Cert.Serial, auditType: mtlsid.AuditServerCertIssued,
	})
}

// currentServer returns the newest active server certificate, or nil.
func currentServer(certs []mtlsid.Certificate, now time.Time) *mtlsid.Certificate {
	var cur *mtlsid.Certificate
	for i := range certs {
		c := &certs[i]
		if c.Profile == mtlsid.ProfileServer && c.Status(now) == mtlsid.StatusActive && (cur == nil || c.NotBefore.After(cur.NotBefore)) {
			cur = c
		}
	}
	return cur
}

// serverNames returns a server certificate's DNS names, sorted.
func serverNames(c *mtlsid.Certificate) []string {
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil
	}
	names := slices.Clone(x.DNSNames)
	slices.Sort(names)
	return names
}

// ServiceAgentIdentity issues a new API certificate for the caller's
// service under agentName, revoking the service's earlier active
// certificates of that name (Service-Agent-Identity-Request). A
// development caller's new certificate is a development one too.
func (a *Authority) ServiceAgentIdentity(ctx context.Context, caller *APICaller, agentName string) (*Issued, error) {
	if agentName == "" {
		agentName = caller.Cert.Name
	}
	name, err := checkName(agentName)
	if err != nil {
		return nil, err
	}
	certs, err := a.store.IdentityCertificates(ctx, caller.Service.ID)
	if err != nil {
		return nil, err
	}
	_, key, err := a.subjectKey(nil)
	if err != nil {
		return nil, err
	}
	out, err := a.sign(ctx, signing{
		at: a.clock(), profile: mtlsid.ProfileAgent, identityID: caller.Service.ID, name: name,
		deviceType: mtlsid.DeviceAgent, pub: key.Public(), key: key, development: caller.Cert.Development,
		actor: caller.Cert.Serial, auditType: mtlsid.AuditCertIssued,
	})
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		if c.Profile == mtlsid.ProfileAgent && c.Name == name && c.Status(a.now()) == mtlsid.StatusActive && c.Serial != caller.Cert.Serial {
			if err := a.revoke(ctx, c.Serial, mtlsid.ReasonSuperseded, caller.Cert.Serial); err != nil && mtlsid.ErrorKind(err) != mtlsid.KindRevoked {
				return nil, err
			}
		}
	}
	return out, nil
}

// RevokeOwn revokes one of the caller service's own certificates
// (Identity-Revocation-Request).
func (a *Authority) RevokeOwn(ctx context.Context, caller *APICaller, serial string) error {
	return a.Revoke(ctx, caller.Cert, serial, mtlsid.ReasonCessationOfOperation)
}
