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
// in the managed service's organization; DeviceToken that the caller is a
// person's device.
type TokenAuthority interface {
	Assist(ctx context.Context, actor *mtlsid.Certificate, serviceID string) (string, *mtlsid.Token, error)
	DeviceToken(ctx context.Context, caller *mtlsid.Certificate, label string, lifetime time.Duration) (string, *mtlsid.Token, error)
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
// own identity (authority.DeviceToken decides who may). Agent tokens come
// from assist, which checks the service role.
func (h *Handler) createToken(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	switch mtlsid.TokenPurpose(a.Purpose) {
	case "", mtlsid.TokenDevice:
	case mtlsid.TokenAgent:
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "agent tokens come from the assist operation (managed-service), which checks your role in the service")
	default:
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "unknown token purpose %q (device)", a.Purpose)
	}
	if a.TTL < 0 || a.TTL > int64(authority.MaxDeviceTokenLifetime/time.Second) {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "ttl %d is out of range (seconds, up to 30 days)", a.TTL)
	}
	secret, tok, err := h.auth.DeviceToken(ctx, c, a.Label, time.Duration(a.TTL)*time.Second)
	if err != nil {
		return nil, err
	}
	return wire.TokenResult{Outcome: wire.OutcomeCreated, Token: secret, Purpose: string(tok.Purpose), ExpiresAt: millis(tok.ExpiresAt)}, nil
}
