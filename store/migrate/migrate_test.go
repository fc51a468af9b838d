package migrate_test

import (
	"context"
	"errors"
	"iter"
	"path/filepath"
	"slices"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/store/migrate"
	"github.com/mtlsid/mtlsid/store/postgres"
	"github.com/mtlsid/mtlsid/store/sqlite"
	"github.com/mtlsid/mtlsid/store/storetest"
)

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mtlsid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// copyInto runs migrate.Copy from src's snapshot into dst, with src
// wrapped by wrap if it is not nil.
func copyInto(t *testing.T, src *sqlite.Store, dst *postgres.Store, opt migrate.Options, wrap func(migrate.Source) migrate.Source) (*migrate.Report, error) {
	t.Helper()
	snap, err := src.Snapshot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	im, err := dst.BeginImport(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var s migrate.Source = snap
	if wrap != nil {
		s = wrap(s)
	}
	return migrate.Copy(t.Context(), s, im, opt)
}

// TestCopySQLiteToPostgres is the conformance check of the copy: every
// read method of the copy answers as the source does.
func TestCopySQLiteToPostgres(t *testing.T) {
	src := openSQLite(t)
	storetest.RunCopy(t, src, func(t *testing.T) mtlsid.Store {
		dst := openPostgres(t, pgtest.URL(t))
		rep, err := copyInto(t, src, dst, migrate.Options{}, nil)
		if err != nil {
			t.Fatalf("Copy: %v", err)
		}
		if rep.Cleared || rep.AuditEntries == 0 {
			t.Errorf("report: %+v", rep)
		}
		copied := map[string]int64{}
		for _, tr := range rep.Tables {
			if tr.Note == "" {
				copied[tr.Name] = tr.Rows
			}
		}
		// Every table Populate fills is copied with rows, and the lease is
		// left behind.
		for _, name := range []string{"identities", "certificates", "tokens", "audit_log", "audit_head", "crl_number",
			"organizations", "org_members", "services", "domains", "service_roles", "role_grants", "local_users",
			"trust", "secrets", "intrusions", "consents", "dev_journal", "intents", "contacts", "notices",
			"notice_deliveries", "org_invites", "device_names"} {
			if copied[name] == 0 {
				t.Errorf("table %s: copied %d rows", name, copied[name])
			}
		}
		// A store that keeps the fleet's shared secrets carries them too.
		if _, ok := any(src).(interface {
			SharedSecret(context.Context, string, []byte) ([]byte, error)
		}); ok && copied["shared_secrets"] == 0 {
			t.Error("shared secrets were not copied")
		}
		if _, ok := copied["leases"]; ok {
			t.Error("leases were copied")
		}
		return dst
	})
}

func TestCopyRefusesNonEmptyTarget(t *testing.T) {
	src := openSQLite(t)
	storetest.Populate(t, src)
	url := pgtest.URL(t)
	dst := openPostgres(t, url)
	ctx := t.Context()
	if err := dst.AppendAudit(ctx, mtlsid.AuditEvent{Type: "target.own", Actor: "local", Subject: "x"}); err != nil {
		t.Fatal(err)
	}
	_, err := copyInto(t, src, dst, migrate.Options{}, nil)
	var full *migrate.NotEmptyError
	if !errors.As(err, &full) || !slices.Contains(full.Tables, "audit_log") {
		t.Fatalf("Copy into a non-empty target: %v", err)
	}
	log, err := dst.AuditLog(ctx, 0, 10)
	if err != nil || len(log) != 1 || log[0].Type != "target.own" {
		t.Fatalf("target changed: %v %v", log, err)
	}

	// Replace empties it in the same transaction, audit log included.
	rep, err := copyInto(t, src, dst, migrate.Options{Replace: true}, nil)
	if err != nil || !rep.Cleared {
		t.Fatalf("Copy with Replace: %+v %v", rep, err)
	}
	storetest.SameContents(t, src, dst)
}

// failingSource fails after reading some rows of one table.
type failingSource struct {
	migrate.Source
	table string
}

var errInjected = errors.New("injected read failure")

func (f failingSource) Table(ctx context.Context, name string) ([]string, iter.Seq2[[]any, error], error) {
	cols, rows, err := f.Source.Table(ctx, name)
	if err != nil || name != f.table {
		return cols, rows, err
	}
	return cols, func(yield func([]any, error) bool) {
		n := 0
		for row, err := range rows {
			if n == 1 {
				yield(nil, errInjected)
				return
			}
			n++
			if !yield(row, err) {
				return
			}
		}
	}, nil
}

// TestCopyFailureLeavesTargetUnchanged: a copy that fails part way leaves
// nothing behind, and the target takes a whole copy afterwards.
func TestCopyFailureLeavesTargetUnchanged(t *testing.T) {
	src := openSQLite(t)
	storetest.Populate(t, src)
	dst := openPostgres(t, pgtest.URL(t))
	ctx := t.Context()
	for _, table := range []string{"certificates", "audit_log", "notice_deliveries"} {
		_, err := copyInto(t, src, dst, migrate.Options{}, func(s migrate.Source) migrate.Source { return failingSource{s, table} })
		if !errors.Is(err, errInjected) {
			t.Fatalf("failing %s: %v", table, err)
		}
		im, err := dst.BeginImport(ctx)
		if err != nil {
			t.Fatal(err)
		}
		full, err := im.NonEmpty(ctx)
		im.Rollback(ctx)
		if err != nil || len(full) != 0 {
			t.Fatalf("after failing %s the target holds %v (%v)", table, full, err)
		}
		if seq, _, err := auditHead(ctx, dst); err != nil || seq != 0 {
			t.Fatalf("after failing %s the audit head is at %d (%v)", table, seq, err)
		}
	}
	if _, err := copyInto(t, src, dst, migrate.Options{}, nil); err != nil {
		t.Fatal(err)
	}
	storetest.SameContents(t, src, dst)
}

func auditHead(ctx context.Context, s *postgres.Store) (int64, []byte, error) {
	im, err := s.BeginImport(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer im.Rollback(ctx)
	return im.AuditHead(ctx)
}

// TestCopyBrokenChainRefused: a source whose audit chain does not verify
// is not copied.
func TestCopyBrokenChainRefused(t *testing.T) {
	src := openSQLite(t)
	storetest.Populate(t, src)
	dst := openPostgres(t, pgtest.URL(t))
	_, err := copyInto(t, src, dst, migrate.Options{}, func(s migrate.Source) migrate.Source { return tamperSource{s} })
	var broken *mtlsid.AuditChainError
	if !errors.As(err, &broken) {
		t.Fatalf("Copy of a tampered chain: %v", err)
	}
	if seq, _, err := auditHead(t.Context(), dst); err != nil || seq != 0 {
		t.Fatalf("after a refused copy the audit head is at %d (%v)", seq, err)
	}
}

// tamperSource changes the detail of the third audit entry as it is read.
type tamperSource struct{ migrate.Source }

func (s tamperSource) Table(ctx context.Context, name string) ([]string, iter.Seq2[[]any, error], error) {
	cols, rows, err := s.Source.Table(ctx, name)
	if err != nil || name != "audit_log" {
		return cols, rows, err
	}
	detail := slices.Index(cols, "detail")
	return cols, func(yield func([]any, error) bool) {
		n := 0
		for row, err := range rows {
			if n++; n == 3 && err == nil {
				row[detail] = "tampered"
			}
			if !yield(row, err) {
				return
			}
		}
	}, nil
}
