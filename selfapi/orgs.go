package selfapi

import (
	"context"
	"net/http"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// OrgAuthority manages organizations, their members and their services.
// Each method checks the actor's role in the organization.
type OrgAuthority interface {
	CreateOrg(ctx context.Context, actor *mtlsid.Certificate, id, name, email string) (*mtlsid.Organization, error)
	Orgs(ctx context.Context, actor *mtlsid.Certificate) ([]mtlsid.Member, error)
	SetMember(ctx context.Context, actor *mtlsid.Certificate, orgID, serial string, role mtlsid.OrgRole) error
	CreateService(ctx context.Context, actor *mtlsid.Certificate, orgID, name string) (*mtlsid.Service, error)
	Services(ctx context.Context, actor *mtlsid.Certificate, orgID string) ([]mtlsid.Service, error)
}

func (h *Handler) createOrg(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := required("org", a.Org); err != nil {
		return nil, err
	}
	o, err := h.auth.CreateOrg(ctx, c, a.Org, a.Name, a.Email)
	if err != nil {
		return nil, err
	}
	return wire.OrgResult{
		Outcome: wire.OutcomeCreated, Org: o.ID, Name: o.Name, Email: o.Email,
		Role: string(mtlsid.OrgAdministrator), CreatedAt: millis(o.CreatedAt),
	}, nil
}

func (h *Handler) listOrgs(ctx context.Context, r *http.Request, _ *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	ms, err := h.auth.Orgs(ctx, c)
	if err != nil {
		return nil, err
	}
	res := wire.OrgsResult{Outcome: wire.OutcomeOK, Organizations: []wire.Membership{}}
	for _, m := range ms {
		res.Organizations = append(res.Organizations, wire.Membership{Org: m.OrgID, Role: string(m.Role), Since: millis(m.CreatedAt)})
	}
	return res, nil
}

func (h *Handler) addMember(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := required("org", a.Org, "serial-number", a.SerialNumber, "role", a.Role); err != nil {
		return nil, err
	}
	serial, err := mtlsid.NormalizeSerial(a.SerialNumber)
	if err != nil {
		return nil, err
	}
	if err := h.auth.SetMember(ctx, c, a.Org, serial, mtlsid.OrgRole(a.Role)); err != nil {
		return nil, err
	}
	return wire.MemberResult{Outcome: wire.OutcomeOK, Org: a.Org, SerialNumber: serial, Role: a.Role}, nil
}
