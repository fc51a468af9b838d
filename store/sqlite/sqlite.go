package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/mtlsid/mtlsid"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// busyTimeout is how long a write waits for another process holding the
// database's write lock before it fails with KindUnavailable.
const busyTimeout = 10 * time.Second

// Store is an mtlsid.Store on one SQLite file. It is safe for concurrent
// use. Several processes may open the same file: their writes take turns on
// SQLite's lock, waiting up to ten seconds each.
type Store struct {
	path  string
	write *sql.DB // one connection; every transaction is BEGIN IMMEDIATE
	read  *sql.DB

	writeStmts [numWriteQueries]*sql.Stmt // on write
	readStmts  [numReadQueries]*sql.Stmt  // on read

	feed feed // the events of committed transactions, to Follow
}

var _ mtlsid.Store = (*Store)(nil)

// Open opens the SQLite database at path, creating the file and its parent
// directory if they are missing, and brings its schema up to date. It fails
// if the file is not a database or its schema is newer than this build.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create directory for %s: %w", abs, err)
	}

	// The database holds every certificate, token hash and audit entry:
	// readable by its owner only. SQLite gives its -wal and -shm files the
	// database file's mode. An existing file keeps the mode it has.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	f.Close()

	s := &Store{path: abs}
	if s.write, err = openDB(abs, true); err != nil {
		return nil, err
	}
	s.write.SetMaxOpenConns(1)
	s.write.SetMaxIdleConns(1)
	s.write.SetConnMaxIdleTime(0)
	s.write.SetConnMaxLifetime(0)

	// The schema, and with it WAL mode, must be in place before any reader
	// opens the file.
	if err := s.migrate(ctx); err != nil {
		s.write.Close()
		return nil, fmt.Errorf("sqlite: migrate %s: %w", abs, classify(err))
	}

	if s.read, err = openDB(abs, false); err != nil {
		s.write.Close()
		return nil, err
	}
	// Readers wait on each other in SQLite's shared-memory locks, not on
	// the CPU: more connections than cores keeps Identity-Inquiry cache
	// misses from queueing behind each other (measured: 2,900 to 4,500
	// inquiries/s on 2 cores).
	n := max(16, 4*runtime.NumCPU())
	s.read.SetMaxOpenConns(n)
	s.read.SetMaxIdleConns(n)
	if err := s.prepare(ctx); err != nil {
		s.read.Close()
		s.write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, classify(err))
	}
	return s, nil
}

// openDB opens a pool on the file at path. Every connection of a write pool
// begins its transactions IMMEDIATE, taking the write lock up front, so two
// writers never both hold a read lock and deadlock upgrading it.
func openDB(path string, write bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	if write {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	// A file: URI keeps characters such as '?' and '#' in the path from
	// being read as the start of the parameters.
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
	conn, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return sql.OpenDB(conn), nil
}

// Close closes the database. Calls in progress may fail.
func (s *Store) Close() error {
	return errors.Join(s.closeStmts(), s.read.Close(), s.write.Close())
}

// Ping checks that both the read and the write connections answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return fail("ping", err)
	}
	if err := s.write.PingContext(ctx); err != nil {
		return fail("ping", err)
	}
	return nil
}

// tx is a write transaction: the time it writes for zero times, the
// prepared statements it has bound, and the head of the audit chain as this
// transaction has moved it.
type tx struct {
	*sql.Tx
	now      time.Time
	prepared *[numWriteQueries]*sql.Stmt // the store's
	bound    [numWriteQueries]*sql.Stmt  // bound to Tx; see stmt

	headLoaded bool
	headDirty  bool
	head       mtlsid.AuditEntry // only Seq and Hash

	feed   *feed          // the store's
	events []mtlsid.Event // for feed, once committed
}

// begin starts a write transaction. It waits for the write lock before it
// reads the clock, so the times of later transactions are not earlier.
func (s *Store) begin(ctx context.Context) (*tx, error) {
	t, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &tx{Tx: t, now: time.Now().UTC().Truncate(time.Microsecond), prepared: &s.writeStmts, feed: &s.feed}, nil
}

// commit saves the moved chain head, commits, and then hands the
// transaction's events to the followers.
func (tx *tx) commit(ctx context.Context) error {
	if tx.headDirty {
		if _, err := tx.exec(ctx, updateAuditHead, tx.head.Seq, tx.head.Hash); err != nil {
			return fmt.Errorf("update audit head: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	tx.feed.publish(tx.events)
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

func micros(t time.Time) int64 { return t.UnixMicro() }

// optMicros stores a zero time as NULL.
func optMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(n int64) time.Time { return time.UnixMicro(n).UTC() }

func fromOptMicros(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return fromMicros(n.Int64)
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
	return fmt.Errorf("sqlite: %s: %w", op, classify(err))
}

// update runs fn in a write transaction and commits what it did. fn
// returns refusals as they are, and database failures to be named op.
func (s *Store) update(ctx context.Context, op string, fn func(tx *tx) error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fail(op, err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return fail(op, err)
	}
	return fail(op, tx.commit(ctx))
}

// constraint turns the failure of a statement that broke a constraint into
// the refusal it stands for: a foreign key naming no row is ErrNotFound,
// a key already taken ErrConflict, each said of what. Other errors pass.
func constraint(err error, what string) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return fmt.Errorf("%s: %w", what, mtlsid.ErrNotFound)
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%s: %w", what, mtlsid.ErrConflict)
	}
	return err
}

// rowsAffected returns how many rows a statement changed.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// classify marks the failures that a later retry may not meet: a lock held
// past the busy timeout, a full disk, an I/O error, an unopenable file.
func classify(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL:
		return fmt.Errorf("%w: %w", mtlsid.ErrUnavailable, err)
	}
	return err
}
