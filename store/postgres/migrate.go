package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
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
// of its own.
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
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Nodes starting at once queue here, before even creating the
		// bookkeeping table (two concurrent CREATE TABLE IF NOT EXISTS can
		// collide). The key names the schema, so that schemas sharing a
		// database migrate independently.
		if _, err := tx.Exec(ctx,
			`SELECT pg_advisory_xact_lock(hashtextextended('mtlsid.migrate:' || coalesce(current_schema(), ''), 0))`); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    bigint PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var applied, newest int64
		if err := tx.QueryRow(ctx,
			`SELECT count(*) FILTER (WHERE version = $1), coalesce(max(version), 0) FROM schema_migrations`,
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
		if _, err := tx.Exec(ctx, string(body)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.version)
		return err
	})
}
