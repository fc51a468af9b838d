package selfapi

import (
	"context"
	"net/http"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// ContactAuthority keeps where the caller's identity gets its expiry
// notices. The authority validates the address and URL.
type ContactAuthority interface {
	SetContact(ctx context.Context, caller *mtlsid.Certificate, req authority.ContactRequest) (*mtlsid.Contact, error)
	Contact(ctx context.Context, caller *mtlsid.Certificate) (*mtlsid.Contact, error)
}

// setContact replaces the caller's contact details; both empty removes
// them. The webhook secret is in the answer only when it was just made.
func (h *Handler) setContact(ctx context.Context, r *http.Request, a *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	if a.NewSecret && a.WebhookURL == "" {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "new-secret needs a webhook-url")
	}
	got, err := h.auth.SetContact(ctx, c, authority.ContactRequest{Email: a.Email, WebhookURL: a.WebhookURL, NewSecret: a.NewSecret})
	if err != nil {
		return nil, err
	}
	res := contactResult(wire.OutcomeSaved, got)
	if got.WebhookSecret != authority.SecretHidden {
		res.WebhookSecret = got.WebhookSecret
	}
	return res, nil
}

// getContact shows the caller's contact details, never the secret. An
// identity without any gets empty fields, not an error.
func (h *Handler) getContact(ctx context.Context, r *http.Request, _ *wire.Args) (any, error) {
	c, err := h.caller(ctx, r)
	if err != nil {
		return nil, err
	}
	got, err := h.auth.Contact(ctx, c)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return contactResult(wire.OutcomeOK, &mtlsid.Contact{}), nil
	}
	if err != nil {
		return nil, err
	}
	return contactResult(wire.OutcomeOK, got), nil
}

func contactResult(outcome string, c *mtlsid.Contact) wire.ContactResult {
	return wire.ContactResult{Outcome: outcome, Email: c.Email, WebhookURL: c.WebhookURL,
		WebhookSecretSet: c.WebhookSecret != "", UpdatedAt: millis(c.UpdatedAt)}
}
