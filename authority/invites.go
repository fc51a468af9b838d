package authority

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// MaxInviteLifetime bounds how long an invite link stays usable;
// DefaultInviteLifetime is what a zero lifetime means.
const (
	MaxInviteLifetime     = 30 * 24 * time.Hour
	DefaultInviteLifetime = 7 * 24 * time.Hour
)

// Person is someone the organization pages list: an identity with its
// name, and how it is known there.
type Person struct {
	IdentityID string
	Name       string
	Role       mtlsid.OrgRole // the organization role, if a member
	SharedAt   time.Time      // when it shared itself with the service, if it did
}

// personName returns an identity's name, or its ID if it has none or is gone.
func (a *Authority) personName(ctx context.Context, id string) string {
	if ident, err := a.store.Identity(ctx, id); err == nil && ident.Name != "" {
		return ident.Name
	}
	return id
}

// OrgMembers lists an organization's members with their names, oldest
// first. Any member may look.
func (a *Authority) OrgMembers(ctx context.Context, actor *Actor, orgID string) ([]Person, error) {
	if err := a.requireOrgRole(ctx, actor, orgID, mtlsid.OrgMember); err != nil {
		return nil, err
	}
	ms, err := a.store.OrgMembers(ctx, orgID)
	if err != nil {
		return nil, err
	}
	out := make([]Person, 0, len(ms))
	for _, m := range ms {
		out = append(out, Person{IdentityID: m.IdentityID, Name: a.personName(ctx, m.IdentityID), Role: m.Role})
	}
	return out, nil
}

// CreateInvite makes a one-time link secret that makes whoever opens it
// with a device certificate a member with role. Only an administrator
// may; a zero lifetime means DefaultInviteLifetime. The secret is returned
// once and stored only hashed.
func (a *Authority) CreateInvite(ctx context.Context, actor *Actor, orgID string, role mtlsid.OrgRole, lifetime time.Duration) (string, *mtlsid.Invite, error) {
	if role.Rank() == 0 {
		return "", nil, mtlsid.Errorf(mtlsid.KindInvalid, "unknown organization role %q (%q, %q or %q)", role, mtlsid.OrgAdministrator, mtlsid.OrgManager, mtlsid.OrgMember)
	}
	if lifetime == 0 {
		lifetime = DefaultInviteLifetime
	}
	if lifetime < time.Minute || lifetime > MaxInviteLifetime {
		return "", nil, mtlsid.Errorf(mtlsid.KindInvalid, "invite lifetime %s is out of range (a minute to 30 days)", lifetime)
	}
	if err := requirePerson(actor); err != nil {
		return "", nil, err
	}
	if err := a.requireOrgRole(ctx, actor, orgID, mtlsid.OrgAdministrator); err != nil {
		return "", nil, err
	}
	secret, err := newSecret(a.rand)
	if err != nil {
		return "", nil, err
	}
	now := a.clock()
	in := mtlsid.Invite{Hash: mtlsid.HashToken(secret), OrgID: orgID, Role: role, CreatedBy: actor.IdentityID, CreatedAt: now, ExpiresAt: now.Add(lifetime)}
	if err := a.store.CreateInvite(ctx, in, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditInviteCreated, Actor: actor.Serial,
		Subject: orgID, Detail: "role=" + string(role) + " " + tokenRef(in.Hash)}); err != nil {
		return "", nil, err
	}
	return secret, &in, nil
}

// OrgInvites lists an organization's invites, newest first. Only an
// administrator may.
func (a *Authority) OrgInvites(ctx context.Context, actor *Actor, orgID string) ([]mtlsid.Invite, error) {
	if err := a.requireOrgRole(ctx, actor, orgID, mtlsid.OrgAdministrator); err != nil {
		return nil, err
	}
	return a.store.OrgInvites(ctx, orgID)
}

// AcceptInvite makes the caller's identity a member of the invite's
// organization (a member already keeps their role) and uses the invite
// up. Only a person's device may. An unknown invite is ErrTokenUnknown, a
// used one ErrTokenUsed, an expired one ErrTokenExpired.
func (a *Authority) AcceptInvite(ctx context.Context, caller *mtlsid.Certificate, secret string) (*mtlsid.Invite, error) {
	if err := requirePerson(caller); err != nil {
		return nil, err
	}
	secret = strings.TrimSpace(secret)
	if secret == "" || len(secret) > 200 {
		return nil, mtlsid.ErrTokenUnknown
	}
	now := a.clock()
	hash := mtlsid.HashToken(secret)
	return a.store.AcceptInvite(ctx, hash, caller.IdentityID, now, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditInviteAccepted,
		Actor: caller.Serial, Subject: caller.IdentityID, Detail: tokenRef(hash)})
}

// GrantCandidates lists the people a service's roles may be granted to
// by name: those who shared their identity with the service (newest
// first), then the organization's members. Managers and administrators
// may look.
func (a *Authority) GrantCandidates(ctx context.Context, actor *Actor, serviceID string) ([]Person, error) {
	svc, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgManager)
	if err != nil {
		return nil, err
	}
	consents, err := a.store.ServiceConsents(ctx, serviceID)
	if err != nil {
		return nil, err
	}
	members, err := a.store.OrgMembers(ctx, svc.OrgID)
	if err != nil {
		return nil, err
	}
	byID := map[string]int{}
	var out []Person
	for _, c := range consents {
		byID[c.IdentityID] = len(out)
		out = append(out, Person{IdentityID: c.IdentityID, SharedAt: c.SharedAt})
	}
	for _, m := range members {
		if i, ok := byID[m.IdentityID]; ok {
			out[i].Role = m.Role
			continue
		}
		byID[m.IdentityID] = len(out)
		out = append(out, Person{IdentityID: m.IdentityID, Role: m.Role})
	}
	for i := range out {
		out[i].Name = a.personName(ctx, out[i].IdentityID)
	}
	sort.SliceStable(out, func(i, j int) bool { return !out[i].SharedAt.IsZero() && out[j].SharedAt.IsZero() })
	return out, nil
}

// GrantRoleTo grants a service role to a person named by identity ID, who
// must be among GrantCandidates: someone who shared their identity with
// the service or a member of its organization (KindInvalid otherwise).
// Managers and administrators may.
func (a *Authority) GrantRoleTo(ctx context.Context, actor *Actor, serviceID, identityID, role string) error {
	people, err := a.GrantCandidates(ctx, actor, serviceID)
	if err != nil {
		return err
	}
	known := false
	for _, p := range people {
		known = known || p.IdentityID == identityID
	}
	if !known {
		return mtlsid.Errorf(mtlsid.KindInvalid, "%q has not identified to %q and is not a member of its organization", identityID, serviceID)
	}
	defined, err := a.store.ServiceRoles(ctx, serviceID)
	if err != nil {
		return err
	}
	if !contains(defined, role) {
		return mtlsid.Errorf(mtlsid.KindInvalid, "service %q defines no role %q (it has: %s)", serviceID, role, strings.Join(defined, ", "))
	}
	c := a.change(actor, mtlsid.AuditRoleGranted, serviceID+"/"+identityID, "role="+role)
	defer a.relationChanged(serviceID, identityID)
	return a.store.GrantRole(ctx, mtlsid.RoleGrant{ServiceID: serviceID, IdentityID: identityID, Role: role, CreatedAt: c.At}, c)
}
