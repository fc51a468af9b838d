package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
)

// Snapshot reads every table of the database as it was when the snapshot
// began: it holds one read transaction, so writers (a server still
// running) may go on without the reader seeing half of their work. It is
// how `mtlsid migrate` copies a database out. Close it when done; a
// Snapshot is not safe for concurrent use.
type Snapshot struct {
	tx *sql.Tx
}

// Snapshot begins a consistent read of the whole database.
func (s *Store) Snapshot(ctx context.Context) (*Snapshot, error) {
	tx, err := s.read.BeginTx(ctx, nil)
	if err != nil {
		return nil, fail("snapshot", err)
	}
	// SQLite takes the snapshot at the first read, not at BEGIN: read now
	// so that every later query sees the same moment.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema`).Scan(&n); err != nil {
		tx.Rollback()
		return nil, fail("snapshot", err)
	}
	return &Snapshot{tx: tx}, nil
}

// Close ends the snapshot's read transaction.
func (sn *Snapshot) Close() error { return sn.tx.Rollback() }

// Tables returns the names of the database's tables, sorted, leaving out
// SQLite's own and the migrations' bookkeeping (schema_migrations): the
// target of a copy has its own.
func (sn *Snapshot) Tables(ctx context.Context) ([]string, error) {
	rows, err := sn.tx.QueryContext(ctx, `SELECT name FROM sqlite_schema
		WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name <> 'schema_migrations'
		ORDER BY name`)
	if err != nil {
		return nil, fail("snapshot tables", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fail("snapshot tables", err)
		}
		names = append(names, name)
	}
	return names, fail("snapshot tables", rows.Err())
}

// Table returns a table's column names, in the table's order, and its
// rows. Each row holds, per column, nil, an int64, a float64, a string or
// a []byte, as SQLite stores it: times are Unix microseconds and booleans
// 0 or 1 (see the migrations). Rows come in the order they were inserted
// (rowid), or by primary key in a WITHOUT ROWID table, so that a target
// numbering rows as they arrive keeps their order. Stop ranging to stop
// reading; the second value of the sequence is a read failure, after
// which it ends.
func (sn *Snapshot) Table(ctx context.Context, name string) ([]string, iter.Seq2[[]any, error], error) {
	if !validName(name) {
		return nil, nil, fmt.Errorf("sqlite: snapshot: bad table name %q", name)
	}
	var withoutRowid int
	err := sn.tx.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?`, name).Scan(&withoutRowid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, fmt.Errorf("sqlite: snapshot: no table %q", name)
	}
	if err != nil {
		return nil, nil, fail("snapshot table "+name, err)
	}
	q := `SELECT * FROM "` + name + `"`
	if withoutRowid == 0 {
		q += ` ORDER BY rowid`
	}
	rows, err := sn.tx.QueryContext(ctx, q)
	if err != nil {
		return nil, nil, fail("snapshot table "+name, err)
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return nil, nil, fail("snapshot table "+name, err)
	}
	seq := func(yield func([]any, error) bool) {
		defer rows.Close()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				yield(nil, fail("snapshot table "+name, err))
				return
			}
			if !yield(vals, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(nil, fail("snapshot table "+name, err))
		}
	}
	return cols, seq, nil
}

// validName accepts the names the migrations give tables: lower-case
// letters, digits and underscores. Names are quoted into queries, so
// nothing else may pass.
func validName(name string) bool {
	return name != "" && strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}
