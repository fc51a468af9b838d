package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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
	defer tx.Rollback()

	res, err := tx.exec(ctx, insertToken, t.Hash, string(t.Purpose), t.IdentityID, t.Label, t.CreatedBy,
		micros(tx.timeOr(t.CreatedAt)), micros(t.ExpiresAt), optMicros(t.UsedAt), t.UsedBy)
	if err != nil {
		return fail("create token", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail("create token", err)
	} else if n == 0 {
		return fmt.Errorf("token: %w", mtlsid.ErrConflict)
	}
	if err := appendAudit(ctx, tx, []mtlsid.AuditEvent{audit}); err != nil {
		return fail("create token", err)
	}
	return fail("create token", tx.commit(ctx))
}

// Token returns the token with this hash, used or not: ErrNotFound.
func (s *Store) Token(ctx context.Context, hash []byte) (*mtlsid.Token, error) {
	t, err := scanToken(s.readStmts[selectToken].QueryRowContext(ctx, nonNil(hash)))
	if err != nil {
		return nil, fail("token", err)
	}
	return t, nil
}

// scanToken reads a row of the selectToken query.
func scanToken(row scanner) (*mtlsid.Token, error) {
	var t mtlsid.Token
	var purpose string
	var created, expires int64
	var used sql.NullInt64
	err := row.Scan(&t.Hash, &purpose, &t.IdentityID, &t.Label, &t.CreatedBy, &created, &expires, &used, &t.UsedBy)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t.Purpose = mtlsid.TokenPurpose(purpose)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMicros(created), fromMicros(expires), fromOptMicros(used)
	return &t, nil
}
