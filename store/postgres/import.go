package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mtlsid/mtlsid"
)

// Import writes rows copied from another database (`mtlsid migrate`) into
// this one, all in one transaction: Commit makes the whole copy visible at
// once, and Rollback, or a failure before Commit, leaves the database as
// it was. It holds the audit chain's head locked from the start, so no
// node writing to this database can interleave with the copy. An Import
// is not safe for concurrent use.
type Import struct {
	tx     pgx.Tx
	tables map[string]*importTable
	order  []string // tables that others reference first
}

type importTable struct {
	name string
	cols map[string]importColumn
	// key is the one boolean primary-key column of a single-row table
	// (audit_head, crl_number), "" otherwise. Such a table holds its row
	// from the migration that made it: a copy updates the row.
	key  string
	refs []string // tables its foreign keys name
}

type importColumn struct {
	typ      string // pg_type.typname
	identity bool   // GENERATED ... AS IDENTITY
}

// BeginImport starts an import into the database's current schema.
func (s *Store) BeginImport(ctx context.Context) (*Import, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fail("import", err)
	}
	im := &Import{tx: tx}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM audit_head FOR UPDATE`); err != nil {
		tx.Rollback(ctx)
		return nil, fail("import: lock audit head", err)
	}
	if err := im.loadCatalog(ctx); err != nil {
		tx.Rollback(ctx)
		return nil, fail("import: read catalog", err)
	}
	return im, nil
}

// loadCatalog reads the tables of the current schema, their columns, keys
// and foreign keys, and orders the tables so that each comes after those
// it references.
func (im *Import) loadCatalog(ctx context.Context) error {
	im.tables = map[string]*importTable{}
	rows, err := im.tx.Query(ctx, `
		SELECT c.relname, a.attname, t.typname, a.attidentity <> ''
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		JOIN pg_type t ON t.oid = a.atttypid
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
			AND c.relname <> 'schema_migrations'`)
	if err != nil {
		return err
	}
	var table, col, typ string
	var identity bool
	_, err = pgx.ForEachRow(rows, []any{&table, &col, &typ, &identity}, func() error {
		t := im.tables[table]
		if t == nil {
			t = &importTable{name: table, cols: map[string]importColumn{}}
			im.tables[table] = t
		}
		t.cols[col] = importColumn{typ: typ, identity: identity}
		return nil
	})
	if err != nil {
		return err
	}
	if len(im.tables) == 0 {
		return errors.New("the schema has no tables")
	}

	// Single-row tables: a primary key of one boolean column.
	rows, err = im.tx.Query(ctx, `
		SELECT c.relname, a.attname
		FROM pg_index i
		JOIN pg_class c ON c.oid = i.indrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
		WHERE n.nspname = current_schema() AND i.indisprimary AND i.indnatts = 1 AND a.atttypid = 'boolean'::regtype`)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, []any{&table, &col}, func() error {
		if t := im.tables[table]; t != nil {
			t.key = col
		}
		return nil
	})
	if err != nil {
		return err
	}

	var ref string
	rows, err = im.tx.Query(ctx, `
		SELECT c.relname, r.relname
		FROM pg_constraint k
		JOIN pg_class c ON c.oid = k.conrelid
		JOIN pg_class r ON r.oid = k.confrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND k.contype = 'f'`)
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, []any{&table, &ref}, func() error {
		if t := im.tables[table]; t != nil && ref != table {
			t.refs = append(t.refs, ref)
		}
		return nil
	})
	if err != nil {
		return err
	}
	im.order, err = dependencyOrder(im.tables)
	return err
}

// dependencyOrder sorts tables so that every table comes after the tables
// it references, and otherwise by name.
func dependencyOrder(tables map[string]*importTable) ([]string, error) {
	names := make([]string, 0, len(tables))
	for name := range tables {
		names = append(names, name)
	}
	slices.Sort(names)
	done := map[string]bool{}
	var order []string
	for len(order) < len(names) {
		progress := false
		for _, name := range names {
			if done[name] {
				continue
			}
			ready := true
			for _, r := range tables[name].refs {
				if _, known := tables[r]; known && !done[r] {
					ready = false
				}
			}
			if ready {
				done[name] = true
				order = append(order, name)
				progress = true
			}
		}
		if !progress {
			return nil, errors.New("the tables' foreign keys form a cycle")
		}
	}
	return order, nil
}

// Tables returns the schema's tables (not schema_migrations), each after
// the tables it references.
func (im *Import) Tables() []string { return slices.Clone(im.order) }

// NonEmpty returns the tables that hold rows, leaving out the single-row
// tables every schema starts with (the audit chain's head, the CRL
// number). A database no node has used returns none.
func (im *Import) NonEmpty(ctx context.Context) ([]string, error) {
	var full []string
	for _, name := range im.order {
		if im.tables[name].key != "" {
			continue
		}
		var has bool
		if err := im.tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+pgx.Identifier{name}.Sanitize()+`)`).Scan(&has); err != nil {
			return nil, fail("import: read "+name, err)
		}
		if has {
			full = append(full, name)
		}
	}
	return full, nil
}

// Clear deletes every row of every table but the single-row ones, the
// audit log included, and restarts the numbering of identity columns. The
// audit log's append-only triggers are switched off for this transaction
// only: they stop the store's own code, not its owner. Nothing is
// deleted unless the import commits.
func (im *Import) Clear(ctx context.Context) error {
	var names []string
	for _, name := range im.order {
		if im.tables[name].key == "" {
			names = append(names, pgx.Identifier{name}.Sanitize())
		}
	}
	if len(names) == 0 {
		return nil
	}
	for _, n := range names {
		if _, err := im.tx.Exec(ctx, `ALTER TABLE `+n+` DISABLE TRIGGER USER`); err != nil {
			return fail("import: clear", err)
		}
	}
	if _, err := im.tx.Exec(ctx, `TRUNCATE `+strings.Join(names, ", ")+` RESTART IDENTITY`); err != nil {
		return fail("import: clear", err)
	}
	for _, n := range names {
		if _, err := im.tx.Exec(ctx, `ALTER TABLE `+n+` ENABLE TRIGGER USER`); err != nil {
			return fail("import: clear", err)
		}
	}
	return nil
}

// CopyTable writes rows into table, under the given column names. Each
// row holds, per column, nil, an int64, a float64, a string, a []byte, a
// bool or a time.Time; an int64 going into a timestamptz column is Unix
// microseconds and one going into a boolean column is 0 or 1 (SQLite's
// forms). A column this database lacks is an error, and so is a value it
// cannot take. Columns the rows lack get their defaults (an identity
// column numbers the rows in the order given). Identity columns that are
// given keep their values, and their sequences move past the largest.
// Into a single-row table, CopyTable writes the one row given over the
// row that is there, ignoring the given key column. It returns how many
// rows it wrote.
func (im *Import) CopyTable(ctx context.Context, table string, columns []string, rows iter.Seq2[[]any, error]) (int64, error) {
	t := im.tables[table]
	if t == nil {
		return 0, fmt.Errorf("postgres: import: the target has no table %q (is its schema older than the source's?)", table)
	}
	conv := make([]func(any) (any, error), len(columns))
	for i, c := range columns {
		col, ok := t.cols[c]
		if !ok {
			return 0, fmt.Errorf("postgres: import: the target's table %s has no column %q (is its schema older than the source's?)", table, c)
		}
		f, err := converter(col.typ)
		if err != nil {
			return 0, fmt.Errorf("postgres: import: %s.%s: %w", table, c, err)
		}
		conv[i] = f
	}
	convert := func(row []any) ([]any, error) {
		if len(row) != len(columns) {
			return nil, fmt.Errorf("row of %d values for %d columns", len(row), len(columns))
		}
		out := make([]any, len(row))
		for i, v := range row {
			var err error
			if out[i], err = conv[i](v); err != nil {
				return nil, fmt.Errorf("column %s: %w", columns[i], err)
			}
		}
		return out, nil
	}
	if t.key != "" {
		return im.copySingle(ctx, t, columns, rows, convert)
	}

	next, stop := iter.Pull2(rows)
	defer stop()
	src := &copySource{next: next, convert: convert}
	n, err := im.tx.CopyFrom(ctx, pgx.Identifier{table}, columns, src)
	if src.err != nil {
		err = src.err // the cause, not the server's "COPY from stdin failed"
	}
	if err != nil {
		return n, fmt.Errorf("postgres: import: %s: %w", table, classify(err))
	}
	for _, c := range columns {
		if !t.cols[c].identity || n == 0 {
			continue
		}
		id := pgx.Identifier{c}.Sanitize()
		if _, err := im.tx.Exec(ctx, `SELECT setval(pg_get_serial_sequence($1, $2), (SELECT max(`+id+`) FROM `+pgx.Identifier{table}.Sanitize()+`))`,
			pgx.Identifier{table}.Sanitize(), c); err != nil {
			return n, fail("import: "+table+": move sequence of "+c, err)
		}
	}
	return n, nil
}

// copySingle writes the one row of a single-row table over the row there.
func (im *Import) copySingle(ctx context.Context, t *importTable, columns []string, rows iter.Seq2[[]any, error], convert func([]any) ([]any, error)) (int64, error) {
	var got [][]any
	for row, err := range rows {
		if err != nil {
			return 0, err
		}
		vals, err := convert(row)
		if err != nil {
			return 0, fmt.Errorf("postgres: import: %s: %w", t.name, err)
		}
		got = append(got, vals)
	}
	if len(got) != 1 {
		return 0, fmt.Errorf("postgres: import: %s holds one row, and the source gave %d", t.name, len(got))
	}
	var sets []string
	var args []any
	for i, c := range columns {
		if c == t.key {
			continue
		}
		args = append(args, got[0][i])
		sets = append(sets, fmt.Sprintf("%s = $%d", pgx.Identifier{c}.Sanitize(), len(args)))
	}
	if len(sets) == 0 {
		return 1, nil
	}
	name := pgx.Identifier{t.name}.Sanitize()
	tag, err := im.tx.Exec(ctx, `UPDATE `+name+` SET `+strings.Join(sets, ", "), args...)
	if err != nil {
		return 0, fail("import: "+t.name, err)
	}
	if tag.RowsAffected() != 1 {
		return 0, fmt.Errorf("postgres: import: %s has %d rows, want 1", t.name, tag.RowsAffected())
	}
	return 1, nil
}

// copySource feeds pulled rows to CopyFrom, converting each.
type copySource struct {
	next    func() ([]any, error, bool)
	convert func([]any) ([]any, error)
	row     []any
	err     error
}

func (c *copySource) Next() bool {
	if c.err != nil {
		return false
	}
	row, err, ok := c.next()
	if !ok {
		return false
	}
	if err == nil {
		row, err = c.convert(row)
	}
	if err != nil {
		c.err = err
		return false
	}
	c.row = row
	return true
}

func (c *copySource) Values() ([]any, error) { return c.row, nil }
func (c *copySource) Err() error             { return c.err }

// converter returns how a value read from another database becomes one
// for a column of type typ.
func converter(typ string) (func(any) (any, error), error) {
	bad := func(v any) error { return fmt.Errorf("a %T cannot go into a %s column", v, typ) }
	switch typ {
	case "timestamptz", "timestamp":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil:
				return nil, nil
			case int64:
				return time.UnixMicro(v).UTC(), nil
			case time.Time:
				return v.UTC(), nil
			}
			return nil, bad(v)
		}, nil
	case "bool":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil, bool:
				return v, nil
			case int64:
				if v != 0 && v != 1 {
					return nil, fmt.Errorf("%d is not a boolean", v)
				}
				return v == 1, nil
			}
			return nil, bad(v)
		}, nil
	case "int2", "int4", "int8":
		return func(v any) (any, error) {
			switch v.(type) {
			case nil, int64:
				return v, nil
			}
			return nil, bad(v)
		}, nil
	case "float4", "float8":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil, float64:
				return v, nil
			case int64:
				return float64(v), nil
			}
			return nil, bad(v)
		}, nil
	case "text", "varchar", "bpchar", "json", "jsonb":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil, string:
				return v, nil
			case []byte:
				return string(v), nil
			}
			return nil, bad(v)
		}, nil
	case "bytea":
		return func(v any) (any, error) {
			switch v := v.(type) {
			case nil:
				return nil, nil
			case []byte:
				return v, nil
			case string:
				return []byte(v), nil
			}
			return nil, bad(v)
		}, nil
	}
	return nil, fmt.Errorf("columns of type %s cannot be imported", typ)
}

// Count returns how many rows table holds, as this import sees it.
func (im *Import) Count(ctx context.Context, table string) (int64, error) {
	if im.tables[table] == nil {
		return 0, fmt.Errorf("postgres: import: no table %q", table)
	}
	var n int64
	err := im.tx.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n)
	return n, fail("import: count "+table, err)
}

// AuditLog returns up to limit audit entries with Seq > after, in order,
// as this import sees them: a copy is checked before it commits.
func (im *Import) AuditLog(ctx context.Context, after int64, limit int) ([]mtlsid.AuditEntry, error) {
	rows, err := im.tx.Query(ctx, `
		SELECT seq, time, type, actor, subject, detail, prev_hash, hash
		FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, fail("import: audit log", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (mtlsid.AuditEntry, error) {
		var e mtlsid.AuditEntry
		err := row.Scan(&e.Seq, &e.Time, &e.Type, &e.Actor, &e.Subject, &e.Detail, &e.PrevHash, &e.Hash)
		e.Time = e.Time.UTC()
		return e, err
	})
	return entries, fail("import: audit log", err)
}

// AuditHead returns the head of the audit chain as this import sees it:
// the last entry's Seq and Hash (0 and zeros for an empty chain).
func (im *Import) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := im.tx.QueryRow(ctx, `SELECT seq, hash FROM audit_head`).Scan(&seq, &hash)
	return seq, hash, fail("import: audit head", err)
}

// Commit makes the import visible.
func (im *Import) Commit(ctx context.Context) error {
	return fail("import: commit", im.tx.Commit(ctx))
}

// Rollback drops the import; after Commit it does nothing.
func (im *Import) Rollback(ctx context.Context) error {
	err := im.tx.Rollback(ctx)
	if errors.Is(err, pgx.ErrTxClosed) {
		return nil
	}
	return fail("import: rollback", err)
}
