package authority

import (
	"context"

	"github.com/mtlsid/mtlsid"
)

// MyConsents lists the services the caller's identity shared itself with,
// newest first.
func (a *Authority) MyConsents(ctx context.Context, caller *mtlsid.Certificate) ([]mtlsid.Consent, error) {
	if err := requirePerson(caller); err != nil {
		return nil, err
	}
	return a.store.IdentityConsents(ctx, caller.IdentityID)
}

// WithdrawConsent forgets that the caller's identity shared itself with
// the service: its next redirect sign-on asks again, and its inquiries
// about the person answer "never shared" (PB 0003) again, on this node at
// once and on others within the read cache's lifetime. Only a person's
// device may; no consent on record is KindNotFound. What the service
// stored of the person (roles, local user, trust) stays: that is the
// service's to remove.
func (a *Authority) WithdrawConsent(ctx context.Context, caller *mtlsid.Certificate, serviceID string) error {
	if err := requirePerson(caller); err != nil {
		return err
	}
	now := a.clock()
	defer a.relationChanged(serviceID, caller.IdentityID)
	err := a.store.WithdrawConsent(ctx, serviceID, caller.IdentityID, mtlsid.AuditEvent{
		Time: now, Type: mtlsid.AuditConsentWithdrawn, Actor: caller.Serial, Subject: serviceID})
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return mtlsid.Errorf(mtlsid.KindNotFound, "you have not shared your identity with %q", serviceID)
	}
	return err
}

// DevelopmentJournal lists what revoking a development API certificate
// undoes, newest first. Members of the service's organization may look;
// an unknown serial, or another organization's, is KindForbidden, and a
// certificate that is not a development one has nothing to undo.
func (a *Authority) DevelopmentJournal(ctx context.Context, actor *Actor, serial string) ([]mtlsid.JournalEntry, error) {
	s, err := mtlsid.NormalizeSerial(serial)
	if err != nil {
		return nil, err
	}
	notYours := mtlsid.Errorf(mtlsid.KindForbidden, "%s is not an API certificate of a service of yours", s)
	c, err := a.store.Certificate(ctx, s)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, notYours
	}
	if err != nil {
		return nil, err
	}
	if c.Profile != mtlsid.ProfileAgent {
		return nil, notYours
	}
	if _, err := a.requireServiceRole(ctx, actor, c.IdentityID, mtlsid.OrgMember); err != nil {
		return nil, notYours
	}
	if !c.Development {
		return []mtlsid.JournalEntry{}, nil
	}
	return a.store.DevelopmentJournal(ctx, s)
}

// RenameDevice gives one of the caller's own certificates a name on the
// pages ("" clears it). The certificate's name (its CN, what services
// see) changes only with a new certificate: renewing that device under
// the new name. Another identity's certificate is KindForbidden, without
// saying whether it exists.
func (a *Authority) RenameDevice(ctx context.Context, caller *mtlsid.Certificate, serial, name string) error {
	if err := requirePerson(caller); err != nil {
		return err
	}
	s, err := mtlsid.NormalizeSerial(serial)
	if err != nil {
		return err
	}
	if name != "" {
		if name, err = checkName(name); err != nil {
			return err
		}
	}
	c, err := a.store.Certificate(ctx, s)
	if (err == nil && c.IdentityID != caller.IdentityID) || mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return mtlsid.Errorf(mtlsid.KindForbidden, "certificate %s is not one of your devices", s)
	}
	if err != nil {
		return err
	}
	if name == c.Name {
		name = "" // the certificate's own name: nothing to keep
	}
	now := a.clock()
	return a.store.SetDeviceName(ctx, s, name, mtlsid.AuditEvent{
		Time: now, Type: mtlsid.AuditDeviceRenamed, Actor: caller.Serial, Subject: s, Detail: "name=" + name})
}

// DeviceNames returns the names the caller gave its certificates on the
// pages, by serial.
func (a *Authority) DeviceNames(ctx context.Context, caller *mtlsid.Certificate) (map[string]string, error) {
	return a.store.DeviceNames(ctx, caller.IdentityID)
}
