package authority

import (
	"context"
	"strings"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/domainverify"
)

// DomainVerifier proves control of a domain by its published challenge,
// and says how ("dns" or "http").
type DomainVerifier interface {
	Verify(ctx context.Context, domain, token string) (method string, err error)
}

// AddDomain adds a custom domain to a service and returns it with the
// challenge to publish. Managers and administrators may.
func (a *Authority) AddDomain(ctx context.Context, actor *Actor, serviceID, name string) (*mtlsid.Domain, error) {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	// Only names the verifier can ever prove: no IP literals, no single
	// labels.
	if err := domainverify.CheckDomain(name); err != nil {
		return nil, err
	}
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgManager); err != nil {
		return nil, err
	}
	// Two IDs: 160 random bits, more than the 128 a challenge needs.
	c1, err := newID(a.rand, "")
	if err != nil {
		return nil, err
	}
	c2, err := newID(a.rand, "")
	if err != nil {
		return nil, err
	}
	challenge := c1 + c2
	now := a.clock()
	d := mtlsid.Domain{Name: name, ServiceID: serviceID, Challenge: challenge, CreatedAt: now}
	err = a.store.AddDomain(ctx, d, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditDomainAdded, Actor: actor.Serial, Subject: name, Detail: "service=" + serviceID})
	if mtlsid.ErrorKind(err) == mtlsid.KindConflict {
		return nil, mtlsid.Errorf(mtlsid.KindConflict, "domain %q is already registered", name)
	}
	return &d, err
}

// VerifyDomain checks a domain's published challenge and marks it
// verified.
func (a *Authority) VerifyDomain(ctx context.Context, actor *Actor, name string) (*mtlsid.Domain, error) {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	// An unknown domain and another organization's domain get the same
	// answer, so that the answer does not tell which domains exist.
	notYours := mtlsid.Errorf(mtlsid.KindForbidden, "domain %q is not registered to a service you manage", name)
	d, err := a.store.Domain(ctx, name)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, notYours
	}
	if err != nil {
		return nil, err
	}
	if _, err := a.requireServiceRole(ctx, actor, d.ServiceID, mtlsid.OrgManager); err != nil {
		return nil, notYours
	}
	if d.Verified() {
		return d, nil
	}
	if a.verifier == nil {
		return nil, mtlsid.Errorf(mtlsid.KindNotImplemented, "domain verification is not configured")
	}
	method, err := a.verifier.Verify(ctx, d.Name, d.Challenge)
	if err != nil {
		return nil, err
	}
	now := a.clock()
	if err := a.store.VerifyDomain(ctx, d.Name, method, now, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditDomainVerified, Actor: actor.Serial, Subject: d.Name, Detail: "method=" + method}); err != nil {
		return nil, err
	}
	d.VerifiedAt, d.Method = now, method
	return d, nil
}

// Domains lists a service's domains; members of its organization may.
func (a *Authority) Domains(ctx context.Context, actor *Actor, serviceID string) ([]mtlsid.Domain, error) {
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgMember); err != nil {
		return nil, err
	}
	return a.store.ServiceDomains(ctx, serviceID)
}
