package selfapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

func (h *Handler) createService(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := required("org", a.Org, "service", a.Service); err != nil {
		return nil, err
	}
	// A full ID is accepted too, as everywhere else, as long as it names
	// the same organization.
	name := a.Service
	if n, org, ok := strings.Cut(a.Service, "."); ok {
		if org != a.Org {
			return nil, mtlsid.Errorf(mtlsid.KindInvalid, "service %q is not in organization %q", a.Service, a.Org)
		}
		name = n
	}
	svc, err := h.auth.CreateService(ctx, c, a.Org, name)
	if err != nil {
		return nil, err
	}
	res := wire.ServiceResult{Outcome: wire.OutcomeCreated, Service: serviceOf(svc), Domains: []wire.Domain{}}
	// The default domain is what the service's server certificate will
	// name; the creator wants to know it. The service exists whatever
	// happens here, so a failed lookup only leaves the list empty.
	if ds, err := h.auth.Domains(ctx, c, svc.ID); err == nil {
		for i := range ds {
			res.Domains = append(res.Domains, domainOf(&ds[i]))
		}
	}
	return res, nil
}

func (h *Handler) listServices(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := required("org", a.Org); err != nil {
		return nil, err
	}
	svcs, err := h.auth.Services(ctx, c, a.Org)
	if err != nil {
		return nil, err
	}
	res := wire.ServicesResult{Outcome: wire.OutcomeOK, Org: a.Org, Services: []wire.Service{}}
	for i := range svcs {
		res.Services = append(res.Services, serviceOf(&svcs[i]))
	}
	return res, nil
}

func serviceOf(s *mtlsid.Service) wire.Service {
	return wire.Service{Service: s.ID, Name: s.Name, Org: s.OrgID, CreatedAt: millis(s.CreatedAt)}
}

// serviceID resolves a service argument: the ID "<name>.<org>", or a name
// with org given separately. what names the argument in errors. Both parts
// must be slugs, so that a malformed name is a 400 here rather than a 403
// from the authority, which cannot find it.
func serviceID(what, service, org string) (string, error) {
	service, org = strings.TrimSpace(service), strings.TrimSpace(org)
	if service == "" {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "%s is required", what)
	}
	name, svcOrg, full := strings.Cut(service, ".")
	switch {
	case full && org != "" && svcOrg != org:
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "service %q is not in organization %q", service, org)
	case !full && org == "":
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "%s %q needs org, or the full ID <name>.<org>", what, service)
	case !full:
		svcOrg = org
	}
	if err := mtlsid.CheckSlug("service name", name); err != nil {
		return "", err
	}
	if err := mtlsid.CheckSlug("organization ID", svcOrg); err != nil {
		return "", err
	}
	return mtlsid.ServiceID(name, svcOrg), nil
}
