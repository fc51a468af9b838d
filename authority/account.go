package authority

import (
	"context"
	"sort"
	"time"

	"github.com/mtlsid/mtlsid"
)

// SignUpRequest is a person signing up in a browser: a device name, and an
// enrollment token unless the authority allows open sign-up.
type SignUpRequest struct {
	Token string // empty: open sign-up, if allowed
	Name  string
	// DeviceType is the OU; empty means Browser.
	DeviceType string
}

// OpenSignup reports whether people may sign up without a token.
func (a *Authority) OpenSignup() bool { return a.openSignup }

// SignUp issues a device certificate with a key the authority makes (a
// PKCS#12 whose password is shown once). With a token it is Enroll; without
// one it creates a new identity, and only when open sign-up is allowed
// (KindUnauthorized otherwise). Other errors as Enroll.
func (a *Authority) SignUp(ctx context.Context, req SignUpRequest) (*Issued, error) {
	if req.DeviceType == "" {
		req.DeviceType = mtlsid.DeviceBrowser
	}
	if req.Token != "" {
		return a.Enroll(ctx, EnrollRequest{Token: req.Token, Name: req.Name, DeviceType: req.DeviceType})
	}
	if !a.openSignup {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "sign-up needs an enrollment token on this server")
	}
	now := a.clock()
	name, err := checkName(req.Name)
	if err != nil {
		return nil, err
	}
	devType, err := checkDeviceType(req.DeviceType, mtlsid.DeviceBrowser)
	if err != nil {
		return nil, err
	}
	if devType == mtlsid.DeviceAgent || devType == mtlsid.DeviceServer {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "a person's device cannot be of type %s", devType)
	}
	pub, key, err := a.subjectKey(nil)
	if err != nil {
		return nil, err
	}
	idID, err := newID(a.rand, "p_")
	if err != nil {
		return nil, err
	}
	out, err := a.sign(ctx, signing{
		at: now, profile: mtlsid.ProfileDevice, identityID: idID, name: name, deviceType: devType,
		pub: pub, key: key, identity: &mtlsid.Identity{ID: idID, Kind: mtlsid.KindPerson, Name: name, CreatedAt: now},
		actor: "signup", auditType: mtlsid.AuditCertIssued,
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("signed up", "serial", out.Record.Serial, "identity", idID, "name", name)
	return out, nil
}

// MaxDeviceTokenLifetime bounds the lifetime of a token for another device.
const MaxDeviceTokenLifetime = 30 * 24 * time.Hour

// DeviceToken mints a token that enrolls another device of the caller's own
// identity. Only a person's device may: the token joins the caller's
// identity, so an agent minting one would give a service a person's
// certificate. Agent tokens come from Assist, which checks the service
// role. A zero lifetime means the authority's default.
func (a *Authority) DeviceToken(ctx context.Context, caller *mtlsid.Certificate, label string, lifetime time.Duration) (string, *mtlsid.Token, error) {
	if caller == nil || caller.Profile != mtlsid.ProfileDevice {
		return "", nil, mtlsid.Errorf(mtlsid.KindForbidden, "only a person's device certificate may mint device tokens")
	}
	if lifetime < 0 || lifetime > MaxDeviceTokenLifetime {
		return "", nil, mtlsid.Errorf(mtlsid.KindInvalid, "token lifetime %s is out of range (up to 30 days)", lifetime)
	}
	if label == "" {
		label = "another device of " + caller.Name
	}
	return a.CreateToken(ctx, TokenRequest{
		Purpose: mtlsid.TokenDevice, IdentityID: caller.IdentityID, Label: label,
		CreatedBy: caller.Serial, Lifetime: lifetime,
	})
}

// ServiceView is what one service sees of the caller, for the test page.
type ServiceView struct {
	Service  mtlsid.Service
	Org      string // the organization's name
	Relation *mtlsid.Relation
	// LastCall is the latest Identity API answer the service got about the
	// caller; zero if none since the authority started.
	LastCall mtlsid.Identification
}

// MyServices lists the services that know the caller's identity: those
// that granted it roles and those that asked about it recently, by
// service ID, each with what it sees.
func (a *Authority) MyServices(ctx context.Context, caller *mtlsid.Certificate) ([]ServiceView, error) {
	last := map[string]mtlsid.Identification{}
	for _, c := range a.RecentCalls(caller.IdentityID) {
		last[c.ServiceID] = c
	}
	grants, err := a.store.IdentityGrants(ctx, caller.IdentityID)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for id := range last {
		ids[id] = true
	}
	for _, g := range grants {
		ids[g.ServiceID] = true
	}
	var out []ServiceView
	for id := range ids {
		svc, err := a.store.Service(ctx, id)
		if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		rel, err := a.store.Relation(ctx, id, caller.IdentityID)
		if err != nil {
			return nil, err
		}
		v := ServiceView{Service: *svc, Org: svc.OrgID, Relation: rel, LastCall: last[id]}
		if o, err := a.store.Org(ctx, svc.OrgID); err == nil {
			v.Org = o.Name
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service.ID < out[j].Service.ID })
	return out, nil
}

// LastIdentification returns how the caller's identity was last identified
// by any service (Method "Certificate" or "Redirect"), and false if no
// service has asked since the authority started.
func (a *Authority) LastIdentification(caller *mtlsid.Certificate) (mtlsid.Identification, bool) {
	calls := a.RecentCalls(caller.IdentityID)
	if len(calls) == 0 {
		return mtlsid.Identification{}, false
	}
	return calls[len(calls)-1], true
}
