package authority

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// intentRefLen is the length of an intent reference: 32 random bytes in
// unpadded base64url.
const intentRefLen = 43

// IntentLifetime is how long an intent waits for the sign-on page.
const IntentLifetime = 5 * time.Minute

// MaxReturnURL bounds an intent's return URL.
const MaxReturnURL = 2048

// ErrReturnURLTooLong is the reference's ER 0006.
var ErrReturnURLTooLong = mtlsid.Errorf(mtlsid.KindInvalid, "return URL is longer than 2048 characters")

// IntentRequest is a service's request for a redirect sign-on.
type IntentRequest struct {
	Type          mtlsid.IntentType // zero: discover
	ReturnURL     string
	StrictMassl   bool
	LocalUserName string
}

// CreateIntent stores an intent and returns its reference: 256 random
// bits, single use, valid for IntentLifetime. The return URL must be https
// (or http) on one of the service's verified domains, without credentials.
func (a *Authority) CreateIntent(ctx context.Context, caller *APICaller, req IntentRequest) (string, error) {
	switch req.Type {
	case "":
		req.Type = mtlsid.IntentDiscover
	case mtlsid.IntentDiscover, mtlsid.IntentValidate, mtlsid.IntentRequest, mtlsid.IntentBind:
	default:
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "intent type %q is not one of discover, validate, request, bind", req.Type)
	}
	if req.Type == mtlsid.IntentBind && strings.TrimSpace(req.LocalUserName) == "" {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "a bind intent needs local-user-name")
	}
	if err := a.checkReturnURL(ctx, caller.Service.ID, req.ReturnURL); err != nil {
		return "", err
	}
	ref, err := newRef(a.rand)
	if err != nil {
		return "", err
	}
	now := a.clock()
	err = a.store.CreateIntent(ctx, mtlsid.Intent{
		Hash: mtlsid.HashToken(ref), ServiceID: caller.Service.ID, Type: req.Type, ReturnURL: req.ReturnURL,
		StrictMassl: req.StrictMassl, LocalUserName: req.LocalUserName, CreatedAt: now, ExpiresAt: now.Add(IntentLifetime),
	})
	if err != nil {
		return "", err
	}
	return ref, nil
}

func (a *Authority) checkReturnURL(ctx context.Context, serviceID, raw string) error {
	if raw == "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "return-url is required")
	}
	if len(raw) > MaxReturnURL {
		return ErrReturnURLTooLong
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Opaque != "" {
		return mtlsid.Errorf(mtlsid.KindInvalid, "return-url must be an absolute https URL")
	}
	if u.User != nil {
		return mtlsid.Errorf(mtlsid.KindInvalid, "return-url must not carry credentials")
	}
	host := strings.ToLower(u.Hostname())
	d, err := a.store.Domain(ctx, host)
	if err == nil && d.ServiceID == serviceID && d.Verified() {
		return nil
	}
	if err != nil && mtlsid.ErrorKind(err) != mtlsid.KindNotFound {
		return err
	}
	return mtlsid.Errorf(mtlsid.KindForbidden, "return-url host %q is not a verified domain of service %s", host, serviceID)
}

// Signon is an intent as the sign-on page shows it.
type Signon struct {
	Intent  *mtlsid.Intent
	Service *mtlsid.Service
	Org     *mtlsid.Organization
}

// SignonIntent looks an intent up for the sign-on page: ErrNotFound,
// ErrIntentExpired, ErrIntentUsed.
func (a *Authority) SignonIntent(ctx context.Context, ref string) (*Signon, error) {
	if len(ref) != intentRefLen {
		return nil, mtlsid.Errorf(mtlsid.KindNotFound, "no such sign-on request")
	}
	in, err := a.store.Intent(ctx, mtlsid.HashToken(ref))
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, mtlsid.Errorf(mtlsid.KindNotFound, "no such sign-on request")
	}
	if err != nil {
		return nil, err
	}
	if !in.ResolvedAt.IsZero() {
		return nil, mtlsid.ErrIntentUsed
	}
	if !a.now().Before(in.ExpiresAt) {
		return nil, mtlsid.ErrIntentExpired
	}
	svc, err := a.store.Service(ctx, in.ServiceID)
	if err != nil {
		return nil, err
	}
	org, err := a.store.Org(ctx, svc.OrgID)
	if err != nil {
		return nil, err
	}
	return &Signon{Intent: in, Service: svc, Org: org}, nil
}

// SignonResult says what the sign-on page does next.
type SignonResult struct {
	// NeedsConsent: the person meets this service for the first time and
	// must confirm sharing their identity with it.
	NeedsConsent bool
	// RedirectURL is where the browser goes once the intent is resolved.
	RedirectURL string
}

// CompleteSignon resolves an intent for the person whose certificate
// opened the sign-on page. Without consent on record and without consent
// given now, it asks for it.
func (a *Authority) CompleteSignon(ctx context.Context, ref string, person *mtlsid.Certificate, consent bool) (*SignonResult, error) {
	so, err := a.SignonIntent(ctx, ref)
	if err != nil {
		return nil, err
	}
	in := so.Intent
	if in.Type == mtlsid.IntentBind {
		// A name another identity holds is refused before anything is
		// written: no consent, no resolved intent without its binding.
		holder, err := a.store.LocalUserIdentity(ctx, in.ServiceID, in.LocalUserName)
		switch {
		case err == nil && holder != person.IdentityID:
			return nil, mtlsid.ErrLocalUserTaken
		case err != nil && mtlsid.ErrorKind(err) != mtlsid.KindNotFound:
			return nil, err
		}
	}
	rel, err := a.store.Relation(ctx, in.ServiceID, person.IdentityID)
	if err != nil {
		return nil, err
	}
	now := a.clock()
	if rel.SharedAt.IsZero() {
		if !consent {
			return &SignonResult{NeedsConsent: true}, nil
		}
		if err := a.store.RecordConsent(ctx, in.ServiceID, person.IdentityID, now, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditConsent, Actor: person.Serial, Subject: in.ServiceID}); err != nil {
			return nil, err
		}
		a.relationChanged(in.ServiceID, person.IdentityID)
	}
	if err := a.store.ResolveIntent(ctx, in.Hash, person.IdentityID, person.Serial, now, mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditIntentResolved, Actor: person.Serial, Subject: in.ServiceID, Detail: "type=" + string(in.Type)}); err != nil {
		return nil, err
	}
	if in.Type == mtlsid.IntentBind {
		c := mtlsid.Change{At: now, By: person.Serial, Audit: mtlsid.AuditEvent{Time: now, Type: mtlsid.AuditLocalUserBound, Actor: person.Serial, Subject: in.ServiceID + "/" + in.LocalUserName}}
		err := a.store.BindLocalUser(ctx, mtlsid.LocalUser{ServiceID: in.ServiceID, IdentityID: person.IdentityID, Name: in.LocalUserName, CreatedAt: now}, 0, c)
		if err != nil && !errors.Is(err, mtlsid.ErrLocalUserBound) {
			return nil, err
		}
		a.relationChanged(in.ServiceID, person.IdentityID)
	}
	target := in.ReturnURL
	if !in.StrictMassl {
		u, err := url.Parse(target)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("identity-plus-intent", ref)
		u.RawQuery = q.Encode()
		target = u.String()
	}
	return &SignonResult{RedirectURL: target}, nil
}

func newRef(r io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	for {
		s := base64.RawURLEncoding.EncodeToString(b)
		// A reference must not pass for a serial (all digits:
		// astronomically unlikely) nor for a command-line flag (a leading
		// "-", one in 32): draw again.
		if looksLikeIntent(s) && s[0] != '-' && s[0] != '_' {
			return s, nil
		}
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
	}
}
