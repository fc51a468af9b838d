package authority

import (
	"context"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"io"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// tokenPrefix marks mtlsid token secrets so that secret scanners and people
// can tell them from other strings.
const tokenPrefix = "mtid_"

// maxTokenLen bounds the token text accepted from callers; real tokens are
// 48 characters.
const maxTokenLen = 128

// TokenRequest describes a token to mint.
type TokenRequest struct {
	Purpose mtlsid.TokenPurpose // zero means a person's device
	// IdentityID is the identity the enrolled certificate joins; empty
	// creates a new identity at enrollment.
	IdentityID string
	Label      string
	CreatedBy  string        // empty means "local"
	Lifetime   time.Duration // zero means the authority's default (24 h)
}

// CreateToken mints a one-time enrollment token and returns its secret,
// which is shown once and stored only as a hash.
func (a *Authority) CreateToken(ctx context.Context, req TokenRequest) (string, *mtlsid.Token, error) {
	if req.Purpose == "" {
		req.Purpose = mtlsid.TokenDevice
	}
	if req.Purpose != mtlsid.TokenDevice && req.Purpose != mtlsid.TokenAgent {
		return "", nil, mtlsid.Errorf(mtlsid.KindInvalid, "unknown token purpose %q (device or agent)", req.Purpose)
	}
	if req.Lifetime == 0 {
		req.Lifetime = a.tokenTTL
	}
	if req.Lifetime < 0 || req.Lifetime > 30*24*time.Hour {
		return "", nil, mtlsid.Errorf(mtlsid.KindInvalid, "token lifetime %s is out of range (up to 720h)", req.Lifetime)
	}
	if len(req.Label) > 200 {
		return "", nil, mtlsid.Errorf(mtlsid.KindInvalid, "token label is longer than 200 characters")
	}
	if req.CreatedBy == "" {
		req.CreatedBy = "local"
	}
	secret, err := newSecret(a.rand)
	if err != nil {
		return "", nil, err
	}
	now := a.clock()
	t := mtlsid.Token{
		Hash:       mtlsid.HashToken(secret),
		Purpose:    req.Purpose,
		IdentityID: req.IdentityID,
		Label:      req.Label,
		CreatedBy:  req.CreatedBy,
		CreatedAt:  now,
		ExpiresAt:  now.Add(req.Lifetime),
	}
	ev := mtlsid.AuditEvent{
		Time: now, Type: mtlsid.AuditTokenCreated, Actor: req.CreatedBy,
		Subject: tokenRef(t.Hash), Detail: "purpose=" + string(t.Purpose) + " label=" + t.Label + " expires=" + t.ExpiresAt.Format(time.RFC3339),
	}
	if err := a.store.CreateToken(ctx, t, ev); err != nil {
		return "", nil, err
	}
	a.log.Info("token created", "token", tokenRef(t.Hash), "purpose", t.Purpose, "by", t.CreatedBy)
	return secret, &t, nil
}

// checkToken finds the unused, unexpired token for secret. The store looks
// tokens up by hash; the hash is compared again in constant time so that a
// store's index lookup is never the only comparison.
func (a *Authority) checkToken(ctx context.Context, secret string, now time.Time) (*mtlsid.Token, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return nil, mtlsid.Errorf(mtlsid.KindUnauthorized, "no enrollment token given")
	}
	if len(secret) > maxTokenLen {
		return nil, mtlsid.ErrTokenUnknown
	}
	h := mtlsid.HashToken(secret)
	t, err := a.store.Token(ctx, h)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return nil, mtlsid.ErrTokenUnknown
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(t.Hash, h) != 1 {
		return nil, mtlsid.ErrTokenUnknown
	}
	if !t.UsedAt.IsZero() {
		return nil, mtlsid.ErrTokenUsed
	}
	if !now.Before(t.ExpiresAt) {
		return nil, mtlsid.ErrTokenExpired
	}
	return t, nil
}

func newSecret(r io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// newID returns a random identity ID.
func newID(r io.Reader, prefix string) (string, error) {
	b := make([]byte, 10)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return prefix + strings.ToLower(base32.StdEncoding.EncodeToString(b)), nil
}

// tokenRef names a token in logs and the audit log without revealing it:
// the first bytes of its hash.
func tokenRef(hash []byte) string {
	if len(hash) < 6 {
		return "token"
	}
	return "token:" + base64.RawURLEncoding.EncodeToString(hash[:6])
}
