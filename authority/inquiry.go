package authority

import (
	"context"
	"crypto/x509"
	"math"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// APICaller is a service calling the Identity API with one of its API
// certificates.
type APICaller struct {
	Cert    *mtlsid.Certificate
	Service *mtlsid.Service
}

// ErrExpectingAgent answers a Identity API call made with a certificate
// that is not a service's API certificate.
var ErrExpectingAgent = mtlsid.Errorf(mtlsid.KindForbidden, "the Identity API needs a service's API certificate")

// APICaller authenticates a service by its API certificate; errors as
// Caller, and ErrExpectingAgent for a person's certificate.
func (a *Authority) APICaller(ctx context.Context, peer *x509.Certificate) (*APICaller, error) {
	c, err := a.Caller(ctx, peer)
	if err != nil {
		return nil, err
	}
	if c.Profile != mtlsid.ProfileAgent {
		return nil, ErrExpectingAgent
	}
	svc, err := a.service(ctx, c.IdentityID)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, ErrExpectingAgent
	}
	if err != nil {
		return nil, err
	}
	return &APICaller{Cert: c, Service: svc}, nil
}

// actor is the caller as the author of changes.
func (c *APICaller) actor() *Actor { return c.Cert }

// Standing is how a certificate stands with the asking service: the
// handler turns it into the reference's outcome.
type Standing int

// The standings, in the order they are checked.
const (
	StandingUnknown              Standing = iota // no such certificate, or intent used (PB 0006)
	StandingAuthorizationExpired                 // the intent expired (PB 0008)
	StandingRevoked                              // PB 0004
	StandingExpired                              // PB 0002
	StandingIntruder                             // the service reported it (PB 0005)
	StandingNeedsValidation                      // never shared with this service (PB 0003)
	StandingValid                                // OK 0001
	StandingValidBound                           // OK 0002: a local user is bound
)

// Profile is what the asking service learns of a certificate's holder.
type Profile struct {
	Standing    Standing
	Certificate *mtlsid.Certificate // nil when unknown
	Relation    *mtlsid.Relation
	// TrustScore is the reference's logarithmic score: 1 for a stranger,
	// one more for every tenfold tokens, at most 5.
	TrustScore float64
	// AgeDays is how long the identity has held certificates.
	AgeDays int
	// Authorizing is the serial that identified the person: the
	// certificate itself, or the one used on the sign-on page.
	Authorizing string
	// Method is how the person was identified: "Certificate" or
	// "Redirect".
	Method string
}

// Identification methods.
const (
	MethodCertificate = "Certificate"
	MethodRedirect    = "Redirect"
)

// Inquire answers an Identity-Inquiry: ref is a serial (decimal or 0x
// hex), or an intent reference that completed the sign-on page, which
// answers once. serviceID, if set, asks relative to another service the
// caller's organization manages.
func (a *Authority) Inquire(ctx context.Context, caller *APICaller, ref, serviceID string) (*Profile, error) {
	svc := caller.Service
	if serviceID != "" && serviceID != svc.ID {
		other, err := a.service(ctx, serviceID)
		if err != nil || other.OrgID != svc.OrgID {
			return nil, mtlsid.Errorf(mtlsid.KindForbidden, "the caller does not manage service %q", serviceID)
		}
		svc = other
	}
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "serial-number is required")
	}
	if looksLikeIntent(ref) {
		return a.inquireIntent(ctx, svc, ref)
	}
	serial, err := mtlsid.NormalizeSerial(ref)
	if err != nil {
		return nil, err
	}
	p, err := a.profile(ctx, svc.ID, serial)
	if err != nil {
		return nil, err
	}
	p.Method = MethodCertificate
	a.recent.add(p, svc.ID, a.now())
	return p, nil
}

func (a *Authority) inquireIntent(ctx context.Context, svc *mtlsid.Service, ref string) (*Profile, error) {
	in, err := a.store.ConsumeIntent(ctx, mtlsid.HashToken(ref), svc.ID, a.clock())
	switch mtlsid.ErrorKind(err) {
	case "":
	case mtlsid.KindNotFound, mtlsid.KindUsed:
		return &Profile{Standing: StandingUnknown}, nil
	case mtlsid.KindExpired:
		return &Profile{Standing: StandingAuthorizationExpired}, nil
	case mtlsid.KindConflict: // the person has not completed the sign-on page yet
		return &Profile{Standing: StandingNeedsValidation}, nil
	default:
		return nil, err
	}
	p, err := a.profile(ctx, svc.ID, in.Serial)
	if err != nil {
		return nil, err
	}
	p.Method = MethodRedirect
	a.recent.add(p, svc.ID, a.now())
	return p, nil
}

// profile builds the profile of serial relative to a service.
func (a *Authority) profile(ctx context.Context, serviceID, serial string) (*Profile, error) {
	c, err := a.inquiryCertificate(ctx, serviceID, serial)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return &Profile{Standing: StandingUnknown}, nil
	}
	if err != nil {
		return nil, err
	}
	p := &Profile{Certificate: c, Authorizing: c.Serial}
	switch c.Status(a.now()) {
	case mtlsid.StatusRevoked:
		p.Standing = StandingRevoked
		return p, nil
	case mtlsid.StatusExpired, mtlsid.StatusPending:
		p.Standing = StandingExpired
		return p, nil
	}
	rel, err := a.relation(ctx, serviceID, c.IdentityID)
	if err != nil {
		return nil, err
	}
	p.Relation = rel
	p.TrustScore = TrustScore(rel.TrustTotal)
	if created, err := a.identityCreated(ctx, c.IdentityID); err == nil {
		p.AgeDays = int(a.now().Sub(created) / (24 * time.Hour))
	}
	// A service's own agents, and services of the same organization,
	// need no sign-on consent to be known to it.
	shared := !rel.SharedAt.IsZero() || c.IdentityID == serviceID
	switch {
	case rel.Intrusions > 0:
		p.Standing = StandingIntruder
	case !shared:
		p.Standing = StandingNeedsValidation
	case rel.LocalUser != nil:
		p.Standing = StandingValidBound
	default:
		p.Standing = StandingValid
	}
	return p, nil
}

// TrustScore maps tokens of trust to the reference's logarithmic scale:
// a stranger scores 1, 10 tokens 2, 100 tokens 3, 1000 tokens 4, at most 5.
func TrustScore(tokens int) float64 {
	if tokens < 1 {
		return 1
	}
	s := 1 + math.Log10(float64(tokens))
	return math.Min(5, math.Round(s*100)/100)
}

// looksLikeIntent tells an intent reference (base64url, 43 characters)
// from a serial (decimal or 0x hex).
func looksLikeIntent(s string) bool {
	return len(s) == intentRefLen &&
		strings.IndexFunc(s, func(r rune) bool { return !isB64URL(r) }) < 0 &&
		strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 &&
		!strings.HasPrefix(s, "0x")
}

func isB64URL(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}
