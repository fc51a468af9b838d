package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mtlsid/mtlsid"
)

// subject finds the identity a service means: by serial, or by the local
// user name the service bound.
func (a *Authority) subject(ctx context.Context, caller *APICaller, serial, localUser string) (*mtlsid.Certificate, error) {
	if serial == "" && localUser == "" {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "serial-number or local-user-name is required")
	}
	if serial != "" {
		c, err := a.personBySerial(ctx, serial)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	id, err := a.store.LocalUserIdentity(ctx, caller.Service.ID, localUser)
	if err != nil {
		return nil, err
	}
	return &mtlsid.Certificate{IdentityID: id}, nil
}

// BindLocalUser binds the service's local user name to the identity
// holding serial (Local-User-Information), and returns the profile.
func (a *Authority) BindLocalUser(ctx context.Context, caller *APICaller, serial, name string, ageDays, tokens int) (*Profile, error) {
	name = strings.TrimSpace(name)
	if err := checkText("local-user-name", name, 200); err != nil {
		return nil, err
	}
	if ageDays < 0 || ageDays > MaxLocalUserAge {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "local-user-age must be 0-%d days", MaxLocalUserAge)
	}
	// The binding's own 10 tokens come on top: bounded like an award, so
	// that the sum cannot overflow into a negative award.
	if tokens < 0 || tokens > MaxTrustAward {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "tokens-of-trust must be 0-%d", MaxTrustAward)
	}
	who, err := a.personBySerial(ctx, serial)
	if err != nil {
		return nil, err
	}
	// Binding is a vouch: the reference adds 10 tokens of trust, in the
	// binding's transaction.
	trust := 10 + tokens
	c := a.change(caller.actor(), mtlsid.AuditLocalUserBound, caller.Service.ID+"/"+who.IdentityID, fmt.Sprintf("local_user=%s tokens=%d", name, trust))
	err = a.store.BindLocalUser(ctx, mtlsid.LocalUser{ServiceID: caller.Service.ID, IdentityID: who.IdentityID, Name: name, AgeDays: ageDays, CreatedAt: c.At}, trust, c)
	a.relationChanged(caller.Service.ID, who.IdentityID)
	if err != nil {
		return nil, err
	}
	return a.profile(ctx, caller.Service.ID, who.Serial)
}

// UnbindLocalUser removes a binding (Local-User-Reference DELETE).
func (a *Authority) UnbindLocalUser(ctx context.Context, caller *APICaller, name string) error {
	if strings.TrimSpace(name) == "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "local-user-name is required")
	}
	c := a.change(caller.actor(), mtlsid.AuditLocalUserUnbound, caller.Service.ID, "local_user="+name)
	// The binding's identity is not known here: drop every relation.
	defer a.relationsChanged()
	return a.store.UnbindLocalUser(ctx, caller.Service.ID, name, c)
}

// MaxTrustAward bounds the tokens one call may award, as the reference's
// client does.
const MaxTrustAward = 2500

// MaxLocalUserAge bounds a local account's age, in days: a century.
const MaxLocalUserAge = 36525

// AddTrust awards tokens of trust (Trust PUT).
func (a *Authority) AddTrust(ctx context.Context, caller *APICaller, serial, localUser string, tokens int) (*Profile, error) {
	if tokens == 0 {
		tokens = 10
	}
	if tokens < 0 || tokens > MaxTrustAward {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "tokens-of-trust must be 1-%d", MaxTrustAward)
	}
	who, err := a.subject(ctx, caller, serial, localUser)
	if err != nil {
		return nil, err
	}
	if err := a.addTrust(ctx, caller, who.IdentityID, tokens); err != nil {
		return nil, err
	}
	return a.profileOf(ctx, caller, who)
}

func (a *Authority) addTrust(ctx context.Context, caller *APICaller, identityID string, tokens int) error {
	c := a.change(caller.actor(), mtlsid.AuditTrustAdded, caller.Service.ID+"/"+identityID, fmt.Sprintf("tokens=%d", tokens))
	defer a.relationChanged(caller.Service.ID, identityID)
	return a.store.AddTrust(ctx, caller.Service.ID, identityID, tokens, c)
}

// SetSecret stores the service's secret for a bound user (User-Secret).
func (a *Authority) SetSecret(ctx context.Context, caller *APICaller, localUser, secret string) (*Profile, error) {
	if len(secret) > 4096 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "secret is longer than 4096 bytes")
	}
	who, err := a.subject(ctx, caller, "", localUser)
	if err != nil {
		return nil, err
	}
	c := a.change(caller.actor(), mtlsid.AuditSecretSet, caller.Service.ID+"/"+who.IdentityID, "")
	defer a.relationChanged(caller.Service.ID, who.IdentityID)
	if err := a.store.SetSecret(ctx, caller.Service.ID, who.IdentityID, secret, c); err != nil {
		return nil, err
	}
	return a.profileOf(ctx, caller, who)
}

// profileOf builds the profile for a subject found by local user (which
// has no serial) or by serial.
func (a *Authority) profileOf(ctx context.Context, caller *APICaller, who *mtlsid.Certificate) (*Profile, error) {
	if who.Serial != "" {
		return a.profile(ctx, caller.Service.ID, who.Serial)
	}
	rel, err := a.store.Relation(ctx, caller.Service.ID, who.IdentityID)
	if err != nil {
		return nil, err
	}
	st := StandingValid
	if rel.LocalUser != nil {
		st = StandingValidBound
	}
	return &Profile{Standing: st, Relation: rel, TrustScore: TrustScore(rel.TrustTotal)}, nil
}

// IntrusionReport is a service's report against a certificate.
type IntrusionReport struct {
	Serial   string
	Severity string
	Message  string
	Detail   map[string]any
}

// ReportIntrusion stores a report and returns its reference.
func (a *Authority) ReportIntrusion(ctx context.Context, caller *APICaller, r IntrusionReport) (string, error) {
	who, err := a.personBySerial(ctx, r.Serial)
	if err != nil {
		return "", err
	}
	if len(r.Message) > 4096 || len(r.Severity) > 64 {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "message or severity too long")
	}
	detail, _ := json.Marshal(r.Detail)
	if len(detail) > 64<<10 {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "intrusion details are larger than 64 KiB")
	}
	ref, err := newID(a.rand, "ir_")
	if err != nil {
		return "", err
	}
	c := a.change(caller.actor(), mtlsid.AuditIntrusionReported, who.Serial, "ref="+ref+" severity="+r.Severity)
	in := mtlsid.Intrusion{Ref: ref, ServiceID: caller.Service.ID, IdentityID: who.IdentityID, Serial: who.Serial, Severity: r.Severity, Message: r.Message, Detail: string(detail), CreatedAt: c.At}
	defer a.relationChanged(caller.Service.ID, who.IdentityID)
	if err := a.store.ReportIntrusion(ctx, in, c); err != nil {
		return "", err
	}
	return ref, nil
}

// WithdrawIntrusion withdraws the service's own report.
func (a *Authority) WithdrawIntrusion(ctx context.Context, caller *APICaller, ref string) error {
	if ref == "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "value is required")
	}
	c := a.change(caller.actor(), mtlsid.AuditIntrusionWithdrawn, caller.Service.ID, "ref="+ref)
	defer a.relationsChanged()
	return a.store.WithdrawIntrusion(ctx, caller.Service.ID, ref, c)
}
