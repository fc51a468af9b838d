package selfapi

import (
	"context"
	"net/http"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// RoleAuthority manages the roles a service defines and grants. Each
// method but MyRoles checks the actor's role in the service's
// organization; MyRoles answers only about the actor itself.
type RoleAuthority interface {
	DefineRole(ctx context.Context, actor *mtlsid.Certificate, serviceID, role string) error
	GrantRole(ctx context.Context, actor *mtlsid.Certificate, serviceID, serial, role string) error
	RevokeRole(ctx context.Context, actor *mtlsid.Certificate, serviceID, serial, role string) error
	ServiceGrants(ctx context.Context, actor *mtlsid.Certificate, serviceID string) ([]string, []mtlsid.RoleGrant, error)
	MyRoles(ctx context.Context, actor *mtlsid.Certificate) ([]mtlsid.RoleGrant, error)
}

func (h *Handler) defineRole(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("service", a.Service, a.Org)
	if err != nil {
		return nil, err
	}
	if err := required("role", a.Role); err != nil {
		return nil, err
	}
	if err := h.auth.DefineRole(ctx, c, svc, a.Role); err != nil {
		return nil, err
	}
	return wire.RoleResult{Outcome: wire.OutcomeDefined, Service: svc, Role: a.Role}, nil
}

func (h *Handler) grantRole(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	return h.changeRole(ctx, r, a, true)
}

func (h *Handler) revokeRole(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	return h.changeRole(ctx, r, a, false)
}

func (h *Handler) changeRole(ctx context.Context, r *http.Request, a *wire.Args, grant bool) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("service", a.Service, a.Org)
	if err != nil {
		return nil, err
	}
	if err := required("serial-number", a.SerialNumber, "role", a.Role); err != nil {
		return nil, err
	}
	serial, err := mtlsid.NormalizeSerial(a.SerialNumber)
	if err != nil {
		return nil, err
	}
	change, outcome := h.auth.GrantRole, wire.OutcomeGranted
	if !grant {
		change, outcome = h.auth.RevokeRole, wire.OutcomeRevoked
	}
	if err := change(ctx, c, svc, serial, a.Role); err != nil {
		return nil, err
	}
	return wire.RoleResult{Outcome: outcome, Service: svc, Role: a.Role, SerialNumber: serial}, nil
}

func (h *Handler) listRoles(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("service", a.Service, a.Org)
	if err != nil {
		return nil, err
	}
	roles, grants, err := h.auth.ServiceGrants(ctx, c, svc)
	if err != nil {
		return nil, err
	}
	res := wire.RolesResult{Outcome: wire.OutcomeOK, Service: svc, Roles: append([]string{}, roles...), Grants: []wire.RoleGrant{}}
	for _, g := range grants {
		res.Grants = append(res.Grants, wire.RoleGrant{Service: g.ServiceID, Identity: g.IdentityID, Role: g.Role, Since: millis(g.CreatedAt)})
	}
	return res, nil
}

// serviceRoles answers get_service_roles: the caller identity's roles,
// grouped by service in the order the store lists them.
func (h *Handler) serviceRoles(ctx context.Context, r *http.Request, _ *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	grants, err := h.auth.MyRoles(ctx, c)
	if err != nil {
		return nil, err
	}
	res := wire.ServiceRolesResult{Outcome: wire.OutcomeOK, ServiceRoles: []wire.ServiceRoles{}}
	at := map[string]int{}
	for _, g := range grants {
		i, ok := at[g.ServiceID]
		if !ok {
			i = len(res.ServiceRoles)
			at[g.ServiceID] = i
			res.ServiceRoles = append(res.ServiceRoles, wire.ServiceRoles{Service: g.ServiceID, Roles: []string{}})
		}
		res.ServiceRoles[i].Roles = append(res.ServiceRoles[i].Roles, g.Role)
	}
	return res, nil
}
