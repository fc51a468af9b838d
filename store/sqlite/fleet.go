package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/storeinput"
)

// feedBacklog bounds the events one follower may fall behind; past it the
// follower's backlog is dropped and it gets EventReset instead, which says
// "drop everything cached" and so covers whatever was dropped.
const feedBacklog = 4096

// feed hands the events of committed transactions to this Store's
// followers. A SQLite database serves one node, so the events of this
// process are all there is to follow. It never blocks a writer.
type feed struct {
	mu   sync.Mutex
	subs map[*follower]struct{}
}

type follower struct {
	mu     sync.Mutex
	queue  []mtlsid.Event
	reset  bool
	signal chan struct{} // capacity 1: "the queue has something"
}

// publish queues evs for every follower.
func (f *feed) publish(evs []mtlsid.Event) {
	if len(evs) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for fl := range f.subs {
		fl.mu.Lock()
		if len(fl.queue)+len(evs) > feedBacklog {
			fl.queue, fl.reset = fl.queue[:0], true
		} else {
			fl.queue = append(fl.queue, evs...)
		}
		fl.mu.Unlock()
		select {
		case fl.signal <- struct{}{}:
		default:
		}
	}
}

// Follow calls fn with EventReset, then with the events of every
// transaction committed through this Store, until ctx ends; see
// mtlsid.FleetStore.
func (s *Store) Follow(ctx context.Context, fn func(mtlsid.Event)) error {
	fl := &follower{signal: make(chan struct{}, 1)}
	s.feed.mu.Lock()
	if s.feed.subs == nil {
		s.feed.subs = make(map[*follower]struct{})
	}
	s.feed.subs[fl] = struct{}{}
	s.feed.mu.Unlock()
	defer func() {
		s.feed.mu.Lock()
		delete(s.feed.subs, fl)
		s.feed.mu.Unlock()
	}()
	fn(mtlsid.Event{Kind: mtlsid.EventReset})
	var batch []mtlsid.Event
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-fl.signal:
		}
		fl.mu.Lock()
		batch, fl.queue = fl.queue, batch[:0]
		reset := fl.reset
		fl.reset = false
		fl.mu.Unlock()
		if reset {
			fn(mtlsid.Event{Kind: mtlsid.EventReset})
		}
		for _, ev := range batch {
			fn(ev)
		}
	}
}

// emit queues ev for the followers, once the transaction commits.
func (tx *tx) emit(ev mtlsid.Event) { tx.events = append(tx.events, ev) }

// SaveCRL stores crl unless the stored CRL's number is the same or larger.
func (s *Store) SaveCRL(ctx context.Context, crl mtlsid.CRL) (bool, error) {
	if len(crl.DER) == 0 || crl.Number < 1 {
		return false, mtlsid.Errorf(mtlsid.KindInvalid, "a CRL needs its DER and a positive number")
	}
	var n int64
	err := s.update(ctx, "save CRL", func(tx *tx) (err error) {
		n, err = rowsAffected(tx.ExecContext(ctx, `
			INSERT INTO current_crl (id, number, der, this_update, next_update) VALUES (1, ?1, ?2, ?3, ?4)
			ON CONFLICT (id) DO UPDATE SET number = excluded.number, der = excluded.der,
				this_update = excluded.this_update, next_update = excluded.next_update
			WHERE current_crl.number < excluded.number`,
			crl.Number, crl.DER, micros(norm(crl.ThisUpdate)), micros(norm(crl.NextUpdate))))
		if err == nil && n == 1 {
			tx.emit(mtlsid.Event{Kind: mtlsid.EventCRL})
		}
		return err
	})
	return n == 1 && err == nil, err
}

// CurrentCRL returns the stored CRL: ErrNotFound if none was saved.
func (s *Store) CurrentCRL(ctx context.Context) (*mtlsid.CRL, error) {
	var c mtlsid.CRL
	var this, next int64
	err := s.read.QueryRowContext(ctx, `SELECT number, der, this_update, next_update FROM current_crl WHERE id = 1`).
		Scan(&c.Number, &c.DER, &this, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, mtlsid.ErrNotFound
	}
	if err != nil {
		return nil, fail("current CRL", err)
	}
	c.ThisUpdate, c.NextUpdate = fromMicros(this), fromMicros(next)
	return &c, nil
}

// SharedSecret returns the secret named name, storing fresh first if
// there is none.
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
	var v []byte
	err := s.update(ctx, "shared secret", func(tx *tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO shared_secrets (name, value, created_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO NOTHING`, name, fresh, micros(tx.now)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT value FROM shared_secrets WHERE name = ?`, name).Scan(&v)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}
