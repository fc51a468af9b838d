package authority

import (
	"context"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// Actor is an authenticated person or agent acting through the
// self-authority API or the pages: the certificate they called with.
type Actor = mtlsid.Certificate

// requireOrgRole checks that the actor's identity holds at least min in the
// organization. A non-member and a member without the role get the same
// KindForbidden answer, so the answer does not reveal membership.
func (a *Authority) requireOrgRole(ctx context.Context, actor *Actor, orgID string, min mtlsid.OrgRole) error {
	m, err := a.store.Member(ctx, orgID, actor.IdentityID)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound || (err == nil && m.Role.Rank() < min.Rank()) {
		return mtlsid.Errorf(mtlsid.KindForbidden, "this needs the %q role in organization %q", min, orgID)
	}
	return err
}

// requireServiceRole checks the actor's org role for the service's
// organization and returns the service. A service's own API certificate
// counts as a manager of that service (it may define and grant its roles),
// never as an administrator.
func (a *Authority) requireServiceRole(ctx context.Context, actor *Actor, serviceID string, min mtlsid.OrgRole) (*mtlsid.Service, error) {
	svc, err := a.store.Service(ctx, serviceID)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, mtlsid.Errorf(mtlsid.KindForbidden, "this needs the %q role in the organization of service %q", min, serviceID)
	}
	if err != nil {
		return nil, err
	}
	if actor.Profile == mtlsid.ProfileAgent && actor.IdentityID == serviceID && min.Rank() <= mtlsid.OrgManager.Rank() {
		return svc, nil
	}
	if err := a.requireOrgRole(ctx, actor, svc.OrgID, min); err != nil {
		return nil, err
	}
	return svc, nil
}

// requirePerson refuses agents where only people may act.
func requirePerson(actor *Actor) error {
	if actor.Profile != mtlsid.ProfileDevice {
		return mtlsid.Errorf(mtlsid.KindForbidden, "only a person's device certificate may do this")
	}
	return nil
}

// CreateOrg creates an organization with the actor as its administrator.
func (a *Authority) CreateOrg(ctx context.Context, actor *Actor, id, name, email string) (*mtlsid.Organization, error) {
	if err := requirePerson(actor); err != nil {
		return nil, err
	}
	id = strings.TrimSpace(id)
	if err := mtlsid.CheckSlug("organization ID", id); err != nil {
		return nil, err
	}
	if name == "" {
		name = id
	}
	if err := checkText("organization name", name, 100); err != nil {
		return nil, err
	}
	if email != "" && !strings.Contains(email, "@") {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "e-mail %q is not an address", email)
	}
	now := a.clock()
	o := mtlsid.Organization{ID: id, Name: name, Email: email, CreatedAt: now}
	m := mtlsid.Member{OrgID: id, IdentityID: actor.IdentityID, Role: mtlsid.OrgAdministrator, CreatedAt: now}
	err := a.store.CreateOrg(ctx, o, m, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditOrgCreated, Actor: actor.Serial, Subject: id, Detail: "name=" + name})
	if mtlsid.ErrorKind(err) == mtlsid.KindConflict {
		return nil, mtlsid.Errorf(mtlsid.KindConflict, "organization %q exists", id)
	}
	return &o, err
}

// Orgs lists the organizations the actor belongs to, with the role.
func (a *Authority) Orgs(ctx context.Context, actor *Actor) ([]mtlsid.Member, error) {
	return a.store.Memberships(ctx, actor.IdentityID)
}

// SetMember makes the identity that holds serial a member of the
// organization with role. Only an administrator may.
func (a *Authority) SetMember(ctx context.Context, actor *Actor, orgID, serial string, role mtlsid.OrgRole) error {
	if role.Rank() == 0 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "unknown organization role %q (%q, %q or %q)", role, mtlsid.OrgAdministrator, mtlsid.OrgManager, mtlsid.OrgMember)
	}
	if err := a.requireOrgRole(ctx, actor, orgID, mtlsid.OrgAdministrator); err != nil {
		return err
	}
	who, err := a.personBySerial(ctx, serial)
	if err != nil {
		return err
	}
	if who.Profile != mtlsid.ProfileDevice {
		return mtlsid.Errorf(mtlsid.KindInvalid, "certificate %s is not a person's device: only people are members", who.Serial)
	}
	if role != mtlsid.OrgAdministrator {
		if err := a.keepAnAdministrator(ctx, orgID, who.IdentityID); err != nil {
			return err
		}
	}
	now := a.clock()
	return a.store.SetMember(ctx, mtlsid.Member{OrgID: orgID, IdentityID: who.IdentityID, Role: role, CreatedAt: now},
		mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditMemberSet, Actor: actor.Serial, Subject: orgID + "/" + who.IdentityID, Detail: "role=" + string(role)})
}

// keepAnAdministrator refuses to demote the organization's last
// administrator, which would leave nobody able to manage it. Two
// administrators demoting each other at the same moment could still both
// succeed; the store has no constraint for it yet.
func (a *Authority) keepAnAdministrator(ctx context.Context, orgID, identityID string) error {
	members, err := a.store.OrgMembers(ctx, orgID)
	if err != nil {
		return err
	}
	admins, target := 0, false
	for _, m := range members {
		if m.Role == mtlsid.OrgAdministrator {
			admins++
			target = target || m.IdentityID == identityID
		}
	}
	if target && admins == 1 {
		return mtlsid.Errorf(mtlsid.KindConflict, "this is the organization's last administrator: make someone else administrator first")
	}
	return nil
}

// personBySerial finds the active certificate behind a serial.
func (a *Authority) personBySerial(ctx context.Context, serial string) (*mtlsid.Certificate, error) {
	s, err := mtlsid.NormalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	c, err := a.store.Certificate(ctx, s)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, mtlsid.Errorf(mtlsid.KindNotFound, "no certificate with serial %s", s)
	}
	if err != nil {
		return nil, err
	}
	if c.Status(a.now()) != mtlsid.StatusActive {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "certificate %s is %s", s, c.Status(a.now()))
	}
	return c, nil
}

// CreateService creates a service in an organization, with its default
// domain <service>.<org>.<base domain>, verified from the start. Managers
// and administrators may.
func (a *Authority) CreateService(ctx context.Context, actor *Actor, orgID, name string) (*mtlsid.Service, error) {
	if err := mtlsid.CheckSlug("service name", name); err != nil {
		return nil, err
	}
	if err := a.requireOrgRole(ctx, actor, orgID, mtlsid.OrgManager); err != nil {
		return nil, err
	}
	now := a.clock()
	svc := mtlsid.Service{ID: mtlsid.ServiceID(name, orgID), OrgID: orgID, Name: name, CreatedAt: now}
	def := mtlsid.Domain{Name: svc.ID + "." + a.baseDomain, ServiceID: svc.ID, Default: true, VerifiedAt: now, Method: "default", CreatedAt: now}
	err := a.store.CreateService(ctx, svc, def, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditServiceCreated, Actor: actor.Serial, Subject: svc.ID, Detail: "domain=" + def.Name})
	if mtlsid.ErrorKind(err) == mtlsid.KindConflict {
		return nil, mtlsid.Errorf(mtlsid.KindConflict, "service %q exists", svc.ID)
	}
	return &svc, err
}

// Services lists an organization's services; any member may.
func (a *Authority) Services(ctx context.Context, actor *Actor, orgID string) ([]mtlsid.Service, error) {
	if err := a.requireOrgRole(ctx, actor, orgID, mtlsid.OrgMember); err != nil {
		return nil, err
	}
	return a.store.OrgServices(ctx, orgID)
}

// DefineRole adds a role name to a service.
func (a *Authority) DefineRole(ctx context.Context, actor *Actor, serviceID, role string) error {
	role = strings.TrimSpace(role)
	if err := checkText("role", role, 64); err != nil {
		return err
	}
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgManager); err != nil {
		return err
	}
	return a.store.DefineRole(ctx, serviceID, role, mtlsid.AuditEvent{Time: a.clock(), Type: mtlsid.AuditRoleDefined, Actor: actor.Serial, Subject: serviceID, Detail: "role=" + role})
}

// GrantRole grants a defined role of the service to the identity holding
// serial; RevokeRole takes it away. Managers and administrators may.
func (a *Authority) GrantRole(ctx context.Context, actor *Actor, serviceID, serial, role string) error {
	return a.changeRole(ctx, actor, serviceID, serial, role, true)
}

// RevokeRole takes a role away; see GrantRole.
func (a *Authority) RevokeRole(ctx context.Context, actor *Actor, serviceID, serial, role string) error {
	return a.changeRole(ctx, actor, serviceID, serial, role, false)
}

func (a *Authority) changeRole(ctx context.Context, actor *Actor, serviceID, serial, role string, grant bool) error {
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgManager); err != nil {
		return err
	}
	who, err := a.personBySerial(ctx, serial)
	if err != nil {
		return err
	}
	defined, err := a.store.ServiceRoles(ctx, serviceID)
	if err != nil {
		return err
	}
	if grant && !contains(defined, role) {
		return mtlsid.Errorf(mtlsid.KindInvalid, "service %q defines no role %q (it has: %s)", serviceID, role, strings.Join(defined, ", "))
	}
	c := a.change(actor, mtlsid.AuditRoleGranted, serviceID+"/"+who.IdentityID, "role="+role)
	defer a.relationChanged(serviceID, who.IdentityID)
	if !grant {
		c.Audit.Type = mtlsid.AuditRoleRevoked
		return a.store.RevokeRole(ctx, serviceID, who.IdentityID, role, c)
	}
	return a.store.GrantRole(ctx, mtlsid.RoleGrant{ServiceID: serviceID, IdentityID: who.IdentityID, Role: role, CreatedAt: c.At}, c)
}

// ServiceGrants lists a service's role names and grants; any member of its
// organization may look.
func (a *Authority) ServiceGrants(ctx context.Context, actor *Actor, serviceID string) ([]string, []mtlsid.RoleGrant, error) {
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgMember); err != nil {
		return nil, nil, err
	}
	roles, err := a.store.ServiceRoles(ctx, serviceID)
	if err != nil {
		return nil, nil, err
	}
	grants, err := a.store.ServiceGrants(ctx, serviceID)
	return roles, grants, err
}

// MyRoles lists the actor identity's roles in every service
// (get_service_roles).
func (a *Authority) MyRoles(ctx context.Context, actor *Actor) ([]mtlsid.RoleGrant, error) {
	return a.store.IdentityGrants(ctx, actor.IdentityID)
}

// change describes a change made by actor. Changes made with a
// development API certificate are journaled so that its revocation undoes
// them.
func (a *Authority) change(actor *Actor, auditType, subject, detail string) mtlsid.Change {
	now := a.clock()
	return mtlsid.Change{
		At: now, By: actor.Serial, Development: actor.Development,
		Audit: mtlsid.AuditEvent{Time: now, Type: auditType, Actor: actor.Serial, Subject: subject, Detail: detail},
	}
}

// Assist mints a 5-minute token to enroll an agent for a managed service.
func (a *Authority) Assist(ctx context.Context, actor *Actor, serviceID string) (string, *mtlsid.Token, error) {
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgManager); err != nil {
		return "", nil, err
	}
	return a.CreateToken(ctx, TokenRequest{Purpose: mtlsid.TokenAgent, IdentityID: serviceID, Label: "assist: agent for " + serviceID, CreatedBy: actor.Serial, Lifetime: 5 * time.Minute})
}

func checkText(what, s string, max int) error {
	if _, err := checkName(s); err != nil || len(s) > max {
		return mtlsid.Errorf(mtlsid.KindInvalid, "%s must be 1-%d printable characters", what, max)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
