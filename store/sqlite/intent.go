package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

const intentColumns = `hash, service_id, type, return_url, strict_massl, local_user_name, created_at, expires_at,
	identity_id, serial, resolved_at, consumed_at`

func scanIntent(row scanner) (*mtlsid.Intent, error) {
	var in mtlsid.Intent
	var typ string
	var created, expires int64
	var resolved, consumed sql.NullInt64
	err := row.Scan(&in.Hash, &in.ServiceID, &typ, &in.ReturnURL, &in.StrictMassl, &in.LocalUserName,
		&created, &expires, &in.IdentityID, &in.Serial, &resolved, &consumed)
	if err != nil {
		return nil, err
	}
	in.Type = mtlsid.IntentType(typ)
	in.CreatedAt, in.ExpiresAt = fromMicros(created), fromMicros(expires)
	in.ResolvedAt, in.ConsumedAt = fromOptMicros(resolved), fromOptMicros(consumed)
	return &in, nil
}

// CreateIntent stores an intent as given: ErrConflict on a duplicate hash,
// ErrNotFound if the service is unknown. An empty hash or a zero ExpiresAt
// is KindInvalid; a zero CreatedAt becomes the transaction's time. It
// appends no audit event.
func (s *Store) CreateIntent(ctx context.Context, in mtlsid.Intent) error {
	if len(in.Hash) == 0 || in.ExpiresAt.IsZero() {
		return mtlsid.Errorf(mtlsid.KindInvalid, "intent needs a hash and an expiry")
	}
	if !storeinput.Text(in.ServiceID, string(in.Type), in.ReturnURL, in.LocalUserName, in.IdentityID, in.Serial) {
		return storeinput.ErrText
	}
	return s.update(ctx, "create intent", func(tx *tx) error {
		n, err := rowsAffected(tx.ExecContext(ctx, `INSERT INTO intents (`+intentColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			in.Hash, in.ServiceID, string(in.Type), in.ReturnURL, in.StrictMassl, in.LocalUserName,
			micros(tx.timeOr(in.CreatedAt)), micros(in.ExpiresAt), in.IdentityID, in.Serial,
			optMicros(in.ResolvedAt), optMicros(in.ConsumedAt)))
		if err != nil {
			return constraint(err, fmt.Sprintf("service %s", in.ServiceID))
		}
		if n == 0 {
			return fmt.Errorf("intent: %w", mtlsid.ErrConflict)
		}
		return nil
	})
}

// Intent returns an intent by hash, in any state: ErrNotFound.
func (s *Store) Intent(ctx context.Context, hash []byte) (*mtlsid.Intent, error) {
	in, err := scanIntent(s.read.QueryRowContext(ctx, `SELECT `+intentColumns+` FROM intents WHERE hash = ?`, nonNil(hash)))
	if errors.Is(err, sql.ErrNoRows) {
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
		n, err := rowsAffected(tx.ExecContext(ctx, `UPDATE intents SET identity_id = ?, serial = ?, resolved_at = ?
			WHERE hash = ? AND resolved_at IS NULL AND expires_at > ?`,
			identityID, serial, micros(at), nonNil(hash), micros(at)))
		if err != nil {
			return err
		}
		if n == 0 {
			return intentRefusal(ctx, tx, hash, "", at, false)
		}
		return appendAudit(ctx, tx, []mtlsid.AuditEvent{audit})
	})
}

// ConsumeIntent hands the resolved intent to its service once, marking it
// consumed at at (the transaction's time if zero): ErrNotFound (also for
// another service's intent), ErrIntentExpired (ExpiresAt <= at),
// ErrIntentUsed (already consumed), or KindConflict if not resolved yet,
// in that order. It appends no audit event. The one write connection
// serializes consumers; the update's condition repeats the checks.
func (s *Store) ConsumeIntent(ctx context.Context, hash []byte, serviceID string, at time.Time) (*mtlsid.Intent, error) {
	var in *mtlsid.Intent
	err := s.update(ctx, "consume intent", func(tx *tx) error {
		at := tx.timeOr(at)
		var err error
		in, err = scanIntent(tx.QueryRowContext(ctx, `UPDATE intents SET consumed_at = ?1
			WHERE hash = ?2 AND service_id = ?3 AND expires_at > ?1 AND consumed_at IS NULL AND resolved_at IS NOT NULL
			RETURNING `+intentColumns, micros(at), nonNil(hash), serviceID))
		if errors.Is(err, sql.ErrNoRows) {
			return intentRefusal(ctx, tx, hash, serviceID, at, true)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return in, nil
}

// intentRefusal returns why an intent could not be resolved (serviceID
// "") or consumed at at.
func intentRefusal(ctx context.Context, tx *tx, hash []byte, serviceID string, at time.Time, consume bool) error {
	var svc string
	var expires int64
	var resolved, consumed bool
	err := tx.QueryRowContext(ctx, `SELECT service_id, expires_at, resolved_at IS NOT NULL, consumed_at IS NOT NULL
		FROM intents WHERE hash = ?`, nonNil(hash)).Scan(&svc, &expires, &resolved, &consumed)
	switch {
	case errors.Is(err, sql.ErrNoRows), err == nil && consume && svc != serviceID:
		return mtlsid.ErrNotFound
	case err != nil:
		return err
	case expires <= micros(at):
		return mtlsid.ErrIntentExpired
	case !consume && resolved, consume && consumed:
		return mtlsid.ErrIntentUsed
	case consume && !resolved:
		return mtlsid.Errorf(mtlsid.KindConflict, "intent not completed yet")
	}
	return fmt.Errorf("intent changed under the write lock")
}

// PurgeIntents deletes the intents that expired before before, limit rows
// per transaction, so that other writers get the lock in between.
func (s *Store) PurgeIntents(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, mtlsid.Errorf(mtlsid.KindInvalid, "purge limit must be positive")
	}
	var total int64
	for {
		var n int64
		err := s.update(ctx, "purge intents", func(tx *tx) (err error) {
			n, err = rowsAffected(tx.ExecContext(ctx, `DELETE FROM intents WHERE rowid IN
				(SELECT rowid FROM intents WHERE expires_at < ? LIMIT ?)`, micros(before), limit))
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(limit) {
			return total, nil
		}
	}
}
