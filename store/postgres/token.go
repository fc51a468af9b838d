package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// CreateToken stores a new, unused token and appends audit to the chain. A
// token with the same hash: ErrConflict. An empty hash is KindInvalid. A
// zero CreatedAt becomes the transaction's time.
func (s *Store) CreateToken(ctx context.Context, t mtlsid.Token, audit mtlsid.AuditEvent) error {
	if len(t.Hash) == 0 {
		return mtlsid.Errorf(mtlsid.KindInvalid, "token has no hash")
	}
	if !storeinput.Text(string(t.Purpose), t.IdentityID, t.Label, t.CreatedBy, t.UsedBy) ||
		!storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fail("create token", err)
	}
	defer tx.Rollback(ctx)

	// DO NOTHING, not a unique violation: a failed statement would abort
	// the transaction.
	ct, err := tx.Exec(ctx, `
		INSERT INTO tokens (hash, purpose, identity_id, label, created_by, created_at, expires_at, used_at, used_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (hash) DO NOTHING`,
		t.Hash, string(t.Purpose), t.IdentityID, t.Label, t.CreatedBy,
		tx.timeOr(t.CreatedAt), norm(t.ExpiresAt), optTime(t.UsedAt), t.UsedBy)
	if err != nil {
		return fail("create token", err)
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("token: %w", mtlsid.ErrConflict)
	}
	var b pgx.Batch
	queueAudit(tx, &b, []mtlsid.AuditEvent{audit})
	tx.queueHead(&b)
	if err := tx.send(ctx, &b); err != nil {
		return fail("create token", err)
	}
	return fail("create token", tx.commit(ctx))
}

// Token returns the token with this hash, used or not: ErrNotFound.
func (s *Store) Token(ctx context.Context, hash []byte) (*mtlsid.Token, error) {
	var t mtlsid.Token
	var purpose string
	var used *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT hash, purpose, identity_id, label, created_by, created_at, expires_at, used_at, used_by
		FROM tokens WHERE hash = $1`, nonNil(hash)).
		Scan(&t.Hash, &purpose, &t.IdentityID, &t.Label, &t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &used, &t.UsedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("token", err)
	}
	t.Purpose = mtlsid.TokenPurpose(purpose)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC(), fromOptTime(used)
	return &t, nil
}
