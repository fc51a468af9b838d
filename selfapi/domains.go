package selfapi

import (
	"context"
	"net/http"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/domainverify"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// DomainAuthority manages services' domains. Each method checks the
// actor's role in the service's organization.
type DomainAuthority interface {
	AddDomain(ctx context.Context, actor *mtlsid.Certificate, serviceID, name string) (*mtlsid.Domain, error)
	VerifyDomain(ctx context.Context, actor *mtlsid.Certificate, name string) (*mtlsid.Domain, error)
	Domains(ctx context.Context, actor *mtlsid.Certificate, serviceID string) ([]mtlsid.Domain, error)
}

func (h *Handler) addDomain(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("service", a.Service, a.Org)
	if err != nil {
		return nil, err
	}
	if err := required("domain", a.Domain); err != nil {
		return nil, err
	}
	d, err := h.auth.AddDomain(ctx, c, svc, a.Domain)
	if err != nil {
		return nil, err
	}
	return wire.DomainResult{Outcome: wire.OutcomePending, Domain: domainOf(d)}, nil
}

func (h *Handler) verifyDomain(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := required("domain", a.Domain); err != nil {
		return nil, err
	}
	d, err := h.auth.VerifyDomain(ctx, c, a.Domain)
	if err != nil {
		return nil, err
	}
	return wire.DomainResult{Outcome: wire.OutcomeVerified, Domain: domainOf(d)}, nil
}

func (h *Handler) listDomains(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("service", a.Service, a.Org)
	if err != nil {
		return nil, err
	}
	ds, err := h.auth.Domains(ctx, c, svc)
	if err != nil {
		return nil, err
	}
	res := wire.DomainsResult{Outcome: wire.OutcomeOK, Service: svc, Domains: []wire.Domain{}}
	for i := range ds {
		res.Domains = append(res.Domains, domainOf(&ds[i]))
	}
	return res, nil
}

// domainOf describes a domain and, while it is unverified, exactly what to
// publish. The names come from domainverify, so the instructions always
// match what the verifier checks.
func domainOf(d *mtlsid.Domain) wire.Domain {
	w := wire.Domain{
		Domain: d.Name, Service: d.ServiceID, Default: d.Default,
		Verified: d.Verified(), Method: d.Method, VerifiedAt: millis(d.VerifiedAt),
	}
	if !d.Verified() && d.Challenge != "" {
		w.Challenge = d.Challenge
		w.TXTName = domainverify.RecordName(d.Name)
		w.TXTValue = d.Challenge
		w.HTTPURL = "http://" + d.Name + domainverify.WellKnownPath(d.Challenge)
	}
	return w
}
