package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/mtlsid/mtlsid/store/migrate"
	"github.com/mtlsid/mtlsid/store/postgres"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

const migrateUsage = "usage: mtlsid migrate --from sqlite:PATH --to postgres://USER@HOST:PORT/DB [--force]\n" +
	"  PATH is the SQLite file or the data directory holding mtlsid.db"

// runMigrate handles `mtlsid migrate`: it copies a single-machine SQLite
// database into PostgreSQL, checks the copy, and commits it whole or not at
// all. The CA's files are not in the database: they stay where they are.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("migrate", stderr)
	from := fs.String("from", "", "source database: sqlite:PATH, the file or the data directory holding mtlsid.db")
	to := fs.String("to", "", "target database: postgres://USER@HOST:PORT/DB (its migrations are run first)")
	force := fs.Bool("force", false, "replace a target that holds data: deletes everything in it, its audit log included, in the copy's transaction")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" || len(fs.Args()) > 0 {
		return &usageError{migrateUsage}
	}
	path, err := migrateSource(*from)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(*to, "postgres://") && !strings.HasPrefix(*to, "postgresql://") {
		return &usageError{fmt.Sprintf("--to %q: the target must be a PostgreSQL URL, postgres://USER@HOST:PORT/DB", redactURL(*to))}
	}

	src, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("open source %s: %w; nothing was changed", path, err)
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, *to)
	if err != nil {
		return fmt.Errorf("open target %s: %w; nothing was copied", redactURL(*to), err)
	}
	defer dst.Close()

	snap, err := src.Snapshot(ctx)
	if err != nil {
		return err
	}
	defer snap.Close()
	im, err := dst.BeginImport(ctx)
	if err != nil {
		return err
	}
	rep, err := migrate.Copy(ctx, snap, im, migrate.Options{Replace: *force})
	var full *migrate.NotEmptyError
	if errors.As(err, &full) {
		return fmt.Errorf("%w: nothing was copied; use a new database (or schema), or --force to replace everything in it", err)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w; the target was left as it was", err)
	}

	fmt.Fprintf(stdout, "copied %s into %s\n", path, redactURL(*to))
	if rep.Cleared {
		fmt.Fprintln(stdout, "the target held data: it was replaced (--force)")
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS\t")
	tables := slices.SortedFunc(slices.Values(rep.Tables), func(a, b migrate.TableReport) int { return strings.Compare(a.Name, b.Name) })
	for _, t := range tables {
		if t.Note != "" {
			fmt.Fprintf(tw, "%s\t-\t%s\n", t.Name, t.Note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\tcount checked\n", t.Name, t.Rows)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "audit chain intact in the target: %d entries verified\n", rep.AuditEntries)
	caDir := filepath.Join(filepath.Dir(path), "ca")
	fmt.Fprintf(stdout, "\nThe CA's keys are not in the database: copy %s to each node's data directory,\n"+
		"then start: mtlsid serve --data DIR --database '%s'\n", caDir, redactURL(*to))
	return nil
}

// migrateSource turns --from into the SQLite file to read. It must exist:
// opening a missing file would create an empty database.
func migrateSource(from string) (string, error) {
	path, ok := strings.CutPrefix(from, "sqlite:")
	if !ok {
		return "", &usageError{fmt.Sprintf("--from %q: the source must be sqlite:PATH (the SQLite file or the data directory)", redactURL(from))}
	}
	path = strings.TrimPrefix(path, "//")
	if path == "" {
		return "", &usageError{"--from sqlite: needs a path, as in sqlite:mtlsid-data"}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("source %s: %w; nothing was changed", path, err)
	}
	if fi.IsDir() {
		path = filepath.Join(path, "mtlsid.db")
		if fi, err = os.Stat(path); err != nil {
			return "", fmt.Errorf("source: no mtlsid database in that directory: %w; nothing was changed", err)
		}
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("source %s is not a file; nothing was changed", path)
	}
	return path, nil
}
