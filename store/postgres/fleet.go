package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// Events between nodes travel by LISTEN/NOTIFY. Each write transaction
// that changes what nodes cache sends its events with pg_notify before it
// commits; PostgreSQL delivers them to every listener, in commit order,
// only if the transaction commits. Each Follow holds one connection of its
// own outside the pool, LISTENing.
const (
	// channelPrefix starts the channel's name; the schema ends it.
	channelPrefix = "mtlsid_events."
	// followPing is how long a quiet LISTEN connection waits before it
	// checks that the server still answers: a connection cut without a
	// word (a dead host, a dropped route) is noticed within about this.
	followPing = 15 * time.Second
	// followBackoff bounds the wait between reconnections.
	followBackoff = 5 * time.Second
)

// eventChannel names the channel of the pool's schema. Channel names are
// identifiers of at most 63 bytes; a long schema name is hashed.
func eventChannel(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var schema *string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", fmt.Errorf("read current schema: %w", err)
	}
	name := ""
	if schema != nil {
		name = *schema
	}
	if len(channelPrefix)+len(name) > 63 {
		sum := sha256.Sum256([]byte(name))
		name = hex.EncodeToString(sum[:16])
	}
	return channelPrefix + name, nil
}

// wireEvent is an event as a NOTIFY payload (JSON, far below the 8000-byte
// limit: the IDs it carries are bounded by the stores' input rules).
type wireEvent struct {
	Kind       mtlsid.EventKind `json:"k"`
	Serial     string           `json:"s,omitempty"`
	ServiceID  string           `json:"v,omitempty"`
	IdentityID string           `json:"i,omitempty"`
}

// notify sends events on channel within tx, in one round trip.
func notify(ctx context.Context, tx pgx.Tx, channel string, events []mtlsid.Event) error {
	if len(events) == 0 {
		return nil
	}
	payloads := make([]string, len(events))
	for i, ev := range events {
		b, err := json.Marshal(wireEvent{ev.Kind, ev.Serial, ev.ServiceID, ev.IdentityID})
		if err != nil {
			return err
		}
		payloads[i] = string(b)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t (p, n) ORDER BY n`,
		channel, payloads); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// emit queues ev, to be sent when the transaction commits.
func (tx *tx) emit(ev mtlsid.Event) { tx.events = append(tx.events, ev) }

// Follow LISTENs on a connection of its own and calls fn with every event
// committed on the database, by any process, until ctx ends; see
// mtlsid.FleetStore. When the connection fails it reconnects, waiting 100
// ms at first and up to 5 s between attempts, and calls fn with
// EventReset once it listens again.
func (s *Store) Follow(ctx context.Context, fn func(mtlsid.Event)) error {
	wait := time.Duration(0)
	for {
		listened, _ := s.listen(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listened {
			wait = 0
		}
		wait = min(max(2*wait, 100*time.Millisecond), followBackoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// listen runs one LISTEN connection until it fails or ctx ends. listened
// reports whether it got as far as listening.
func (s *Store) listen(ctx context.Context, fn func(mtlsid.Event)) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return false, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false, err
	}
	fn(mtlsid.Event{Kind: mtlsid.EventReset})
	for {
		wctx, cancel := context.WithTimeout(ctx, followPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case err != nil && errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, connectTimeout)
			err = conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, err
			}
			continue
		case err != nil:
			return true, err
		}
		var w wireEvent
		if json.Unmarshal([]byte(n.Payload), &w) != nil || w.Kind == "" {
			continue // not ours: someone else NOTIFYing on the channel
		}
		fn(mtlsid.Event{Kind: w.Kind, Serial: w.Serial, ServiceID: w.ServiceID, IdentityID: w.IdentityID})
	}
}

// SaveCRL stores crl unless the stored CRL's number is the same or larger,
// and notifies the followers if it did.
func (s *Store) SaveCRL(ctx context.Context, crl mtlsid.CRL) (bool, error) {
	if len(crl.DER) == 0 || crl.Number < 1 {
		return false, mtlsid.Errorf(mtlsid.KindInvalid, "a CRL needs its DER and a positive number")
	}
	saved := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO current_crl (id, number, der, this_update, next_update) VALUES (1, $1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET number = excluded.number, der = excluded.der,
				this_update = excluded.this_update, next_update = excluded.next_update
			WHERE current_crl.number < excluded.number`,
			crl.Number, crl.DER, norm(crl.ThisUpdate), norm(crl.NextUpdate))
		if err != nil {
			return err
		}
		if saved = tag.RowsAffected() == 1; saved {
			return notify(ctx, tx, s.channel, []mtlsid.Event{{Kind: mtlsid.EventCRL}})
		}
		return nil
	})
	if err != nil {
		return false, fail("save CRL", err)
	}
	return saved, nil
}

// CurrentCRL returns the stored CRL: ErrNotFound if none was saved.
func (s *Store) CurrentCRL(ctx context.Context) (*mtlsid.CRL, error) {
	var c mtlsid.CRL
	err := s.pool.QueryRow(ctx, `SELECT number, der, this_update, next_update FROM current_crl WHERE id = 1`).
		Scan(&c.Number, &c.DER, &c.ThisUpdate, &c.NextUpdate)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("current CRL", err)
	}
	c.ThisUpdate, c.NextUpdate = c.ThisUpdate.UTC(), c.NextUpdate.UTC()
	return &c, nil
}

// SharedSecret returns the secret named name, storing fresh first if
// there is none. Nodes starting at once agree: the first insert wins and
// the others read it.
func (s *Store) SharedSecret(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	if err := storeinput.Required("secret name", name); err != nil {
		return nil, err
	}
	if !storeinput.Text(name) {
		return nil, storeinput.ErrText
	}
	if len(fresh) == 0 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "a new shared secret must not be empty")
	}
	for {
		var v []byte
		err := s.pool.QueryRow(ctx, `
			WITH ins AS (
				INSERT INTO shared_secrets (name, value, created_at) VALUES ($1, $2, now())
				ON CONFLICT (name) DO NOTHING RETURNING value)
			SELECT value FROM ins UNION ALL SELECT value FROM shared_secrets WHERE name = $1
			LIMIT 1`, name, fresh).Scan(&v)
		// No row: another node's insert committed after this statement's
		// snapshot was taken, so neither part saw a row. The next try sees
		// it.
		if !errors.Is(err, pgx.ErrNoRows) {
			return v, fail("shared secret", err)
		}
	}
}
