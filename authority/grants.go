package authority

import (
	"context"

	"github.com/mtlsid/mtlsid"
)

// RevokeGrant takes a role away from an identity named by its ID, as the
// service page lists grants (RevokeRole names the holder by a serial).
// Managers and administrators may; a grant that does not exist is
// KindNotFound.
func (a *Authority) RevokeGrant(ctx context.Context, actor *Actor, serviceID, identityID, role string) error {
	if _, err := a.requireServiceRole(ctx, actor, serviceID, mtlsid.OrgManager); err != nil {
		return err
	}
	c := a.change(actor, mtlsid.AuditRoleRevoked, serviceID+"/"+identityID, "role="+role)
	defer a.relationChanged(serviceID, identityID)
	return a.store.RevokeRole(ctx, serviceID, identityID, role, c)
}
