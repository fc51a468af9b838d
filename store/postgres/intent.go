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

const intentColumns = `hash, service_id, type, return_url, strict_massl, local_user_name, created_at, expires_at,
	identity_id, serial, resolved_at, consumed_at`

func scanIntent(row pgx.Row) (*mtlsid.Intent, error) {
	var in mtlsid.Intent
	var typ string
	var resolved, consumed *time.Time
	err := row.Scan(&in.Hash, &in.ServiceID, &typ, &in.ReturnURL, &in.StrictMassl, &in.LocalUserName,
		&in.CreatedAt, &in.ExpiresAt, &in.IdentityID, &in.Serial, &resolved, &consumed)
	if err != nil {
		return nil, err
	}
	in.Type = mtlsid.IntentType(typ)
	in.CreatedAt, in.ExpiresAt = in.CreatedAt.UTC(), in.ExpiresAt.UTC()
	in.ResolvedAt, in.ConsumedAt = fromOptTime(resolved), fromOptTime(consumed)
	return &in, nil
}

// CreateIntent stores an intent as given: ErrConflict on a duplicate hash,
// ErrNotFound if the service is unknown. An empty hash or a zero ExpiresAt
// is KindInvalid; a zero CreatedAt becomes the time of the write. It
// appends no audit event, so it is one statement that does not wait for
// the audit chain's head.
func (s *Store) CreateIntent(ctx context.Context, in mtlsid.Intent) error {
	if len(in.Hash) == 0 || in.ExpiresAt.IsZero() {
		return mtlsid.Errorf(mtlsid.KindInvalid, "intent needs a hash and an expiry")
	}
	if !storeinput.Text(in.ServiceID, string(in.Type), in.ReturnURL, in.LocalUserName, in.IdentityID, in.Serial) {
		return storeinput.ErrText
	}
	created := norm(in.CreatedAt)
	if in.CreatedAt.IsZero() {
		created = time.Now().UTC().Truncate(time.Microsecond)
	}
	ct, err := s.pool.Exec(ctx, `INSERT INTO intents (`+intentColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`,
		in.Hash, in.ServiceID, string(in.Type), in.ReturnURL, in.StrictMassl, in.LocalUserName,
		created, norm(in.ExpiresAt), in.IdentityID, in.Serial, optTime(in.ResolvedAt), optTime(in.ConsumedAt))
	if err != nil {
		return fail("create intent", constraint(err, fmt.Sprintf("service %s", in.ServiceID)))
	}
	if ct.RowsAffected() == 0 {
		return fmt.Errorf("intent: %w", mtlsid.ErrConflict)
	}
	return nil
}

// Intent returns an intent by hash, in any state: ErrNotFound.
func (s *Store) Intent(ctx context.Context, hash []byte) (*mtlsid.Intent, error) {
	in, err := scanIntent(s.pool.QueryRow(ctx, `SELECT `+intentColumns+` FROM intents WHERE hash = $1`, nonNil(hash)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("intent", err)
	}
	return in, nil
}

// ResolveIntent records who completed the sign-on page at at (the
// transaction's time if zero) and appends audit: ErrNotFound,
// ErrIntentExpired (ExpiresAt <= at), ErrIntentUsed (already resolved),
// in that order. An empty identity ID is KindInvalid.
func (s *Store) ResolveIntent(ctx context.Context, hash []byte, identityID, serial string, at time.Time, audit mtlsid.AuditEvent) error {
	if err := storeinput.Required("identity ID", identityID); err != nil {
		return err
	}
	if !storeinput.Text(identityID, serial) || !storeinput.Events([]mtlsid.AuditEvent{audit}) {
		return storeinput.ErrText
	}
	return s.update(ctx, "resolve intent", func(tx *tx) error {
		at := tx.timeOr(at)
		ct, err := tx.Exec(ctx, `UPDATE intents SET identity_id = $1, serial = $2, resolved_at = $3
			WHERE hash = $4 AND resolved_at IS NULL AND expires_at > $3`, identityID, serial, at, nonNil(hash))
		if err != nil {
			return err
		}
		if ct.RowsAffected() == 0 {
			return intentRefusal(ctx, tx, hash, "", at, false)
		}
		return tx.appendAudit(ctx, audit)
	})
}

// ConsumeIntent hands the resolved intent to its service once, marking it
// consumed at at (the time of the call if zero): ErrNotFound (also for
// another service's intent), ErrIntentExpired (ExpiresAt <= at),
// ErrIntentUsed (already consumed), or KindConflict if not resolved yet,
// in that order. It appends no audit event, so it does not wait for the
// audit chain's head: one conditional UPDATE marks the intent, and a
// consumer racing another waits for its row lock and then finds it
// consumed.
func (s *Store) ConsumeIntent(ctx context.Context, hash []byte, serviceID string, at time.Time) (*mtlsid.Intent, error) {
	if !storeinput.Text(serviceID) {
		return nil, mtlsid.ErrNotFound
	}
	if at.IsZero() {
		at = time.Now()
	}
	at = norm(at)
	in, err := scanIntent(s.pool.QueryRow(ctx, `UPDATE intents SET consumed_at = $1
		WHERE hash = $2 AND service_id = $3 AND expires_at > $1 AND consumed_at IS NULL AND resolved_at IS NOT NULL
		RETURNING `+intentColumns, at, nonNil(hash), serviceID))
	if errors.Is(err, pgx.ErrNoRows) {
		err = intentRefusal(ctx, s.pool, hash, serviceID, at, true)
	}
	if err != nil {
		return nil, fail("consume intent", err)
	}
	return in, nil
}

// intentRefusal returns why an intent could not be resolved (serviceID
// "") or consumed at at.
func intentRefusal(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, hash []byte, serviceID string, at time.Time, consume bool) error {
	var svc string
	var expires time.Time
	var resolved, consumed bool
	err := q.QueryRow(ctx, `SELECT service_id, expires_at, resolved_at IS NOT NULL, consumed_at IS NOT NULL
		FROM intents WHERE hash = $1`, nonNil(hash)).Scan(&svc, &expires, &resolved, &consumed)
	switch {
	case errors.Is(err, pgx.ErrNoRows), err == nil && consume && svc != serviceID:
		return mtlsid.ErrNotFound
	case err != nil:
		return err
	case !at.Before(expires):
		return mtlsid.ErrIntentExpired
	case !consume && resolved, consume && consumed:
		return mtlsid.ErrIntentUsed
	case consume:
		// Not resolved when the update ran, though it may be by now.
		return mtlsid.Errorf(mtlsid.KindConflict, "intent not completed yet")
	}
	return fmt.Errorf("intent changed under the audit head lock")
}

// PurgeIntents deletes the intents that expired before before, limit rows
// per statement.
func (s *Store) PurgeIntents(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, mtlsid.Errorf(mtlsid.KindInvalid, "purge limit must be positive")
	}
	var total int64
	for {
		ct, err := s.pool.Exec(ctx, `DELETE FROM intents WHERE hash IN
			(SELECT hash FROM intents WHERE expires_at < $1 LIMIT $2)`, norm(before), limit)
		if err != nil {
			return total, fail("purge intents", err)
		}
		total += ct.RowsAffected()
		if ct.RowsAffected() < int64(limit) {
			return total, nil
		}
	}
}
