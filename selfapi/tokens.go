package selfapi

import (
	"context"
	"net/http"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// TokenAuthority mints enrollment tokens. Assist checks the actor's role
// in the managed service's organization; CreateToken checks nothing, so the
// handler decides what a caller may ask of it (createToken).
type TokenAuthority interface {
	Assist(ctx context.Context, actor *mtlsid.Certificate, serviceID string) (string, *mtlsid.Token, error)
	CreateToken(ctx context.Context, req authority.TokenRequest) (string, *mtlsid.Token, error)
}

func (h *Handler) assist(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	svc, err := serviceID("managed-service", a.ManagedService, a.Org)
	if err != nil {
		return nil, err
	}
	secret, tok, err := h.auth.Assist(ctx, c, svc)
	if err != nil {
		return nil, err
	}
	return wire.AssistResult{ManagedService: svc, Token: secret, ExpiresAt: millis(tok.ExpiresAt)}, nil
}

// createToken mints a token that enrolls another device of the caller's
// own identity. Only a person's device may ask, and only for a device:
// the token joins the caller's identity, so an agent token here would let
// a person mint certificates for themselves under the agent profile, and
// an agent minting a device token would give a service a person's
// certificate. Agent tokens come from assist, which checks the service
// role.
func (h *Handler) createToken(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if c.Profile != mtlsid.ProfileDevice {
		return nil, mtlsid.Errorf(mtlsid.KindForbidden, "only a person's device certificate may mint device tokens")
	}
	switch mtlsid.TokenPurpose(a.Purpose) {
	case "", mtlsid.TokenDevice:
	case mtlsid.TokenAgent:
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "agent tokens come from the assist operation (managed-service), which checks your role in the service")
	default:
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "unknown token purpose %q (device)", a.Purpose)
	}
	if a.TTL < 0 || a.TTL > int64(30*24*time.Hour/time.Second) {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "ttl %d is out of range (seconds, up to 30 days)", a.TTL)
	}
	label := a.Label
	if label == "" {
		label = "another device of " + c.Name
	}
	secret, tok, err := h.auth.CreateToken(ctx, authority.TokenRequest{
		Purpose: mtlsid.TokenDevice, IdentityID: c.IdentityID, Label: label,
		CreatedBy: c.Serial, Lifetime: time.Duration(a.TTL) * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return wire.TokenResult{Outcome: wire.OutcomeCreated, Token: secret, Purpose: string(tok.Purpose), ExpiresAt: millis(tok.ExpiresAt)}, nil
}
