package sqlite

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// migrations are the schema changes, applied in the order of the number
// that starts each file's name. A file, once released, never changes: a
// change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version int64
	name    string
}

// listMigrations returns the embedded migrations in order.
func listMigrations() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names { // fs.Glob sorts, and numbers are zero-padded
		base := path.Base(name)
		num, _, _ := strings.Cut(base, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number", base)
		}
		if len(ms) > 0 && v <= ms[len(ms)-1].version {
			return nil, fmt.Errorf("migration %s: number %d is out of order", base, v)
		}
		ms = append(ms, migration{version: v, name: name})
	}
	return ms, nil
}

// migrate applies the migrations the database lacks, each in a transaction
// of its own. The write lock that BEGIN IMMEDIATE takes keeps two processes
// opening the file at once from applying one twice.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := listMigrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := s.applyMigration(ctx, m, ms[len(ms)-1].version); err != nil {
			return fmt.Errorf("migration %s: %w", path.Base(m.name), err)
		}
	}
	return nil
}

func (s *Store) applyMigration(ctx context.Context, m migration, latest int64) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return err
	}
	var applied, newest int64
	if err := tx.QueryRowContext(ctx,
		`SELECT count(*) FILTER (WHERE version = ?), coalesce(max(version), 0) FROM schema_migrations`,
		m.version).Scan(&applied, &newest); err != nil {
		return err
	}
	if newest > latest {
		return fmt.Errorf("database schema version %d is newer than this build knows (%d)", newest, latest)
	}
	if applied > 0 {
		return nil
	}

	body, err := migrations.ReadFile(m.name)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		m.version, time.Now().UnixMicro()); err != nil {
		return err
	}
	return tx.Commit()
}
