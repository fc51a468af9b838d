package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mtlsid/mtlsid"
)

// connectTimeout bounds each connection attempt unless the URL sets
// connect_timeout, so that a node facing a dead database fails fast.
const connectTimeout = 5 * time.Second

// Store is an mtlsid.Store on a PostgreSQL database. It is safe for
// concurrent use, and any number of processes may share the database.
type Store struct {
	pool *pgxpool.Pool
	// channel is the LISTEN/NOTIFY channel of the store's schema: schemas
	// sharing a database must not hear each other's events.
	channel string
}

var _ mtlsid.Store = (*Store)(nil)

// Open connects to the database at url (postgres://user@host:port/db?...,
// or key=value form), checks that it answers, and brings its schema up to
// date. Parameters the URL carries that pgx does not know, such as
// search_path, are sent to the server. Open fails with an error naming the
// database if the URL is malformed, and with one that matches
// mtlsid.ErrUnavailable if the server cannot be reached.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx masks a password in the URL it quotes.
		return nil, fmt.Errorf("postgres: invalid database URL: %w", err)
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = connectTimeout
	}
	where := fmt.Sprintf("database %q on %s", cc.Database, net.JoinHostPort(cc.Host, strconv.Itoa(int(cc.Port))))
	// pgx's default pool is max(4, cores) connections. Identity-Inquiry
	// cache misses wait on round trips, not on the CPU, and with four
	// connections a burst of them queued for over 100 ms at p99 (measured);
	// the URL's pool_max_conns still wins when given.
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = int32(max(16, 4*runtime.NumCPU()))
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %w", where, err)
	}
	s := &Store{pool: pool}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s: %w", where, classify(err))
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %w", where, classify(err))
	}
	if s.channel, err = eventChannel(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %s: %w", where, classify(err))
	}
	return s, nil
}

// Close closes the pool's connections, waiting for those in use to be
// returned. It always returns nil.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return fail("ping", s.pool.Ping(ctx))
}

// tx is a write transaction: the time it writes for zero times, and the
// head of the audit chain, which it holds locked.
type tx struct {
	pgx.Tx
	now       time.Time
	head      mtlsid.AuditEntry // only Seq and Hash
	headDirty bool
	channel   string         // the store's
	events    []mtlsid.Event // to NOTIFY at commit
}

// begin starts a write transaction and locks the audit chain's head. Every
// writer takes this lock first and holds it to the end, so writers take
// turns: the chain cannot fork, and the row locks taken after it cannot
// deadlock. The clock is read once the lock is held, so the times of later
// transactions are not earlier (on one machine).
func (s *Store) begin(ctx context.Context) (*tx, error) {
	t, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	w := &tx{Tx: t, channel: s.channel}
	if err := t.QueryRow(ctx, `SELECT seq, hash FROM audit_head FOR UPDATE`).Scan(&w.head.Seq, &w.head.Hash); err != nil {
		t.Rollback(ctx)
		return nil, fmt.Errorf("lock audit head: %w", err)
	}
	w.now = time.Now().UTC().Truncate(time.Microsecond)
	return w, nil
}

// queueHead queues the update of the chain head on b, if it moved, to save
// commit a round trip.
func (tx *tx) queueHead(b *pgx.Batch) {
	if tx.headDirty {
		b.Queue(`UPDATE audit_head SET seq = $1, hash = $2`, tx.head.Seq, tx.head.Hash)
		tx.headDirty = false
	}
}

// send sends b, if it holds anything, and reads all its results.
func (tx *tx) send(ctx context.Context, b *pgx.Batch) error {
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// commit saves the moved chain head, unless queueHead did, sends the
// transaction's events (PostgreSQL delivers them only if it commits), and
// commits.
func (tx *tx) commit(ctx context.Context) error {
	if tx.headDirty {
		if _, err := tx.Exec(ctx, `UPDATE audit_head SET seq = $1, hash = $2`, tx.head.Seq, tx.head.Hash); err != nil {
			return fmt.Errorf("update audit head: %w", err)
		}
	}
	if err := notify(ctx, tx.Tx, tx.channel, tx.events); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// timeOr returns t as stored, or the transaction's time if t is zero.
func (tx *tx) timeOr(t time.Time) time.Time {
	if t.IsZero() {
		return tx.now
	}
	return norm(t)
}

// norm returns t as the store keeps it: UTC, to the microsecond.
func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// optTime stores a zero time as NULL.
func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return norm(t)
}

func fromOptTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nonNil keeps a nil byte slice from being stored as NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// fail finishes the error of the exported method op. Refusals (*mtlsid.Error
// values) pass unchanged; database failures get the operation's name and,
// where a retry may succeed, KindUnavailable.
func fail(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *mtlsid.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("postgres: %s: %w", op, classify(err))
}

// update runs fn in a write transaction, with the audit chain's head
// locked, and commits what it did. fn returns refusals as they are, and
// database failures to be named op.
func (s *Store) update(ctx context.Context, op string, fn func(tx *tx) error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fail(op, err)
	}
	defer tx.Rollback(ctx)
	if err := fn(tx); err != nil {
		return fail(op, err)
	}
	return fail(op, tx.commit(ctx))
}

// appendAudit chains events onto the audit log and moves the head, in one
// round trip.
func (tx *tx) appendAudit(ctx context.Context, events ...mtlsid.AuditEvent) error {
	var b pgx.Batch
	queueAudit(tx, &b, events)
	tx.queueHead(&b)
	return tx.send(ctx, &b)
}

// constraint turns the failure of a statement that broke a constraint into
// the refusal it stands for: a foreign key naming no row is ErrNotFound,
// a key already taken ErrConflict, each said of what. Other errors pass.
func constraint(err error, what string) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "23503": // foreign_key_violation
		return fmt.Errorf("%s: %w", what, mtlsid.ErrNotFound)
	case "23505": // unique_violation
		return fmt.Errorf("%s: %w", what, mtlsid.ErrConflict)
	}
	return err
}

// classify makes err match mtlsid.ErrUnavailable, keeping it as the cause,
// when the database could not be reached or is going away, or the server
// asks for a retry.
func classify(err error) error {
	if unavailable(err) {
		return fmt.Errorf("%w: %w", mtlsid.ErrUnavailable, err)
	}
	return err
}

func unavailable(err error) bool {
	var pgErr *pgconn.PgError
	hasPgErr := errors.As(err, &pgErr)
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		// A wrong password or database name is a configuration error that
		// waiting will not fix; anything else in connecting may pass.
		return !hasPgErr || !(strings.HasPrefix(pgErr.Code, "28") || pgErr.Code == "3D000")
	}
	if hasPgErr {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutting down, starting up
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock
			return true
		}
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller's context ended; the database may be fine
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed)
}
