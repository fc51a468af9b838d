package authority

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"strings"

	"github.com/mtlsid/mtlsid"
)

// ContactRequest is what an identity asks to be told at: an e-mail
// address and a webhook, either may be empty. An empty WebhookSecret with
// a WebhookURL keeps the stored secret when the URL is unchanged, and has
// a new one generated when the URL is new or NewSecret is set.
type ContactRequest struct {
	Email         string
	WebhookURL    string
	WebhookSecret string
	// NewSecret generates a new webhook secret even when the URL is
	// unchanged (the old one leaked, say).
	NewSecret bool
}

// SecretHidden is what Contact and SetContact show in place of a webhook
// secret that is stored but not new.
const SecretHidden = "(set)"

// minSecret is the shortest webhook secret accepted.
const minSecret = 16

// SetContact stores where the actor's identity gets its expiry notices,
// replacing what was there; an empty request removes them. It returns
// the stored contact with its webhook secret when that secret is new
// (given, or generated for a new webhook URL or on NewSecret), the only
// time it is shown; a kept secret is SecretHidden. Refusals, with
// nothing stored: KindInvalid for an address that is not a plain
// address, a webhook URL that is not https (http is allowed to loopback
// only) or a secret shorter than 16 characters.
func (a *Authority) SetContact(ctx context.Context, actor *Actor, req ContactRequest) (*mtlsid.Contact, error) {
	c := mtlsid.Contact{IdentityID: actor.IdentityID, Email: strings.TrimSpace(req.Email),
		WebhookURL: strings.TrimSpace(req.WebhookURL), WebhookSecret: req.WebhookSecret, UpdatedAt: a.clock()}
	if c.Email != "" {
		addr, err := mail.ParseAddress(c.Email)
		if err != nil || addr.Address != c.Email || len(c.Email) > 254 {
			return nil, mtlsid.Errorf(mtlsid.KindInvalid, "e-mail %q is not a plain address (name@example.com)", c.Email)
		}
	}
	kept := false
	if c.WebhookURL == "" {
		c.WebhookSecret = ""
	} else {
		if err := checkWebhookURL(c.WebhookURL); err != nil {
			return nil, err
		}
		if c.WebhookSecret == "" && !req.NewSecret {
			old, err := a.store.Contact(ctx, actor.IdentityID)
			if err != nil && mtlsid.ErrorKind(err) != mtlsid.KindNotFound {
				return nil, err
			}
			if err == nil && old.WebhookURL == c.WebhookURL && old.WebhookSecret != "" {
				c.WebhookSecret, kept = old.WebhookSecret, true
			}
		}
		if c.WebhookSecret == "" {
			b := make([]byte, 24)
			if _, err := io.ReadFull(a.rand, b); err != nil {
				return nil, fmt.Errorf("webhook secret: %w", err)
			}
			c.WebhookSecret = base64.RawURLEncoding.EncodeToString(b)
		}
		if len(c.WebhookSecret) < minSecret || len(c.WebhookSecret) > 256 {
			return nil, mtlsid.Errorf(mtlsid.KindInvalid, "the webhook secret must be %d to 256 characters", minSecret)
		}
	}
	detail := fmt.Sprintf("email=%t webhook=%s", c.Email != "", c.WebhookURL)
	err := a.store.SetContact(ctx, c, mtlsid.AuditEvent{Time: c.UpdatedAt, Type: mtlsid.AuditContactSet,
		Actor: actor.Serial, Subject: actor.IdentityID, Detail: detail})
	if err != nil {
		return nil, err
	}
	if kept {
		c.WebhookSecret = SecretHidden
	}
	return &c, nil
}

// Contact returns where the actor's identity gets its expiry notices,
// with the webhook secret hidden ("" if none, else SecretHidden):
// ErrNotFound if nowhere.
func (a *Authority) Contact(ctx context.Context, actor *Actor) (*mtlsid.Contact, error) {
	c, err := a.store.Contact(ctx, actor.IdentityID)
	if err != nil {
		return nil, err
	}
	if c.WebhookSecret != "" {
		c.WebhookSecret = SecretHidden
	}
	return c, nil
}

// NoticeDeliveries returns the newest attempts to deliver the actor's
// identity's notices, newest first.
func (a *Authority) NoticeDeliveries(ctx context.Context, actor *Actor, limit int) ([]mtlsid.Delivery, error) {
	return a.store.Deliveries(ctx, actor.IdentityID, limit)
}

func checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || len(s) > 2048 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "webhook URL %q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return mtlsid.Errorf(mtlsid.KindInvalid, "webhook URL %q must be https (http only to loopback)", s)
}
