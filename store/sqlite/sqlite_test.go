package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/storetest"
)

func openTest(tb testing.TB, path string) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), path)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) mtlsid.Store {
		return openTest(t, filepath.Join(t.TempDir(), "mtlsid.db"))
	})
}

func BenchmarkIssue(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) mtlsid.Store {
		return openTest(b, filepath.Join(b.TempDir(), "mtlsid.db"))
	})
}

func BenchmarkRelation(b *testing.B) {
	storetest.BenchRelation(b, func(b *testing.B) mtlsid.Store {
		return openTest(b, filepath.Join(b.TempDir(), "mtlsid.db"))
	})
}

func TestOpenCreatesDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b?c#d", "mtlsid.db")
	openTest(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
}

// TestOpenOwnerOnly: a new database and its WAL are readable by their
// owner only, whatever the umask.
func TestOpenOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mtlsid.db")
	openTest(t, path)
	for _, p := range []string{path, path + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s: mode %v, want -rw-------", filepath.Base(p), m)
		}
	}
}

func TestOpenNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(path, []byte("this is not a SQLite database, not even close......................................................................"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("Open of a junk file succeeded")
	}
}

// TestPragmas checks the settings that durability and concurrency rest on.
func TestPragmas(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mtlsid.db"))
	for _, tc := range []struct {
		db     string
		pragma string
		want   string
	}{
		{"write", "journal_mode", "wal"},
		{"write", "synchronous", "2"}, // FULL
		{"write", "foreign_keys", "1"},
		{"write", "busy_timeout", "10000"},
		{"read", "query_only", "1"},
		{"read", "busy_timeout", "10000"},
	} {
		db := s.write
		if tc.db == "read" {
			db = s.read
		}
		var got string
		if err := db.QueryRowContext(t.Context(), "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s pool: PRAGMA %s = %s; want %s", tc.db, tc.pragma, got, tc.want)
		}
	}
}

// TestReopen checks that what was written survives closing and opening the
// file again, and that opening an up-to-date file applies nothing twice.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mtlsid.db")
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	n1, err := s.NextCRLNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, mtlsid.AuditEvent{Type: mtlsid.AuditAuthorityStarted}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTest(t, path)
	n2, err := s.NextCRLNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n2 <= n1 {
		t.Errorf("CRL number %d after reopening; want more than %d", n2, n1)
	}
	if err := s.AppendAudit(ctx, mtlsid.AuditEvent{Type: mtlsid.AuditAuthorityStarted}); err != nil {
		t.Fatal(err)
	}
	if n, err := storetest.VerifyChain(ctx, s, 10); err != nil || n != 2 {
		t.Errorf("VerifyChain = %d, %v; want 2, nil", n, err)
	}
	var versions int
	if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if ms, _ := listMigrations(); versions != len(ms) {
		t.Errorf("%d migrations recorded; want %d", versions, len(ms))
	}
}

// TestNewerSchema checks that a build refuses a database migrated by a
// newer one rather than run on a schema it does not know.
func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mtlsid.db")
	s := openTest(t, path)
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(t.Context(), path); err == nil {
		s2.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
}

// TestTamper edits a stored audit entry behind the store's back, as someone
// with the database file could, and expects the chain to name that entry.
func TestTamper(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mtlsid.db"))
	ctx := t.Context()
	for range 5 {
		if err := s.AppendAudit(ctx, mtlsid.AuditEvent{Type: mtlsid.AuditCertIssued, Detail: "genuine"}); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := s.write.ExecContext(ctx, `UPDATE audit_log SET detail = 'forged' WHERE seq = 3`); err == nil {
		t.Fatal("UPDATE of audit_log succeeded; the append-only trigger is missing")
	}
	if _, err := s.write.ExecContext(ctx, `DROP TRIGGER audit_log_no_update`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(ctx, `UPDATE audit_log SET detail = 'forged' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}

	_, err := storetest.VerifyChain(ctx, s, 2)
	var chainErr *mtlsid.AuditChainError
	if !errors.As(err, &chainErr) || chainErr.Seq != 3 {
		t.Errorf("VerifyChain after tampering with entry 3: %v; want an AuditChainError at 3", err)
	}
}

// TestCanceled checks that a canceled write leaves nothing and the store
// stays usable.
func TestCanceled(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mtlsid.db"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.AppendAudit(ctx, mtlsid.AuditEvent{Type: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("AppendAudit with a canceled context: %v; want context.Canceled", err)
	}
	if err := s.AppendAudit(t.Context(), mtlsid.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if n, err := storetest.VerifyChain(t.Context(), s, 10); err != nil || n != 1 {
		t.Errorf("VerifyChain = %d, %v; want 1, nil", n, err)
	}
}

// TestSchemaChange checks that the statements prepared at Open keep working
// after the schema changes under them, as when another process migrates the
// file.
func TestSchemaChange(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mtlsid.db"))
	ctx := t.Context()
	issue := func(serial string) {
		t.Helper()
		errs, err := s.Issue(ctx, []mtlsid.Issuance{{
			Identity:    &mtlsid.Identity{ID: "id" + serial, Kind: mtlsid.KindService},
			Certificate: mtlsid.Certificate{Serial: serial, IdentityID: "id" + serial, DER: []byte{1}},
			Audit:       []mtlsid.AuditEvent{{Type: mtlsid.AuditCertIssued, Subject: serial}},
		}})
		if err == nil {
			err = errs[0]
		}
		if err != nil {
			t.Fatalf("Issue %s: %v", serial, err)
		}
		if _, err := s.Certificate(ctx, serial); err != nil {
			t.Fatalf("Certificate %s: %v", serial, err)
		}
	}
	issue("1")
	if _, err := s.write.ExecContext(ctx, `CREATE INDEX certificates_created_at ON certificates (created_at)`); err != nil {
		t.Fatal(err)
	}
	issue("2")
	if n, err := storetest.VerifyChain(ctx, s, 10); err != nil || n != 2 {
		t.Errorf("VerifyChain = %d, %v; want 2, nil", n, err)
	}
}

// TestJournalDeleted checks that the revocation that undoes a development
// certificate's journal also deletes it.
func TestJournalDeleted(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mtlsid.db"))
	ctx := t.Context()
	issue := func(items ...mtlsid.Issuance) {
		t.Helper()
		errs, err := s.Issue(ctx, items)
		if err == nil {
			err = errors.Join(errs...)
		}
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
	}
	issue(mtlsid.Issuance{Identity: &mtlsid.Identity{ID: "bob", Kind: mtlsid.KindPerson}, Certificate: mtlsid.Certificate{Serial: "1", IdentityID: "bob"}})
	if err := s.CreateOrg(ctx, mtlsid.Organization{ID: "acme"}, mtlsid.Member{IdentityID: "bob"}, mtlsid.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateService(ctx, mtlsid.Service{ID: "app.acme", OrgID: "acme", Name: "app"}, mtlsid.Domain{Name: "app.acme.test"}, mtlsid.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	issue(mtlsid.Issuance{Certificate: mtlsid.Certificate{Serial: "2", IdentityID: "app.acme", Development: true}})
	dev := mtlsid.Change{By: "2", Development: true, Audit: mtlsid.AuditEvent{Type: "x"}}
	if err := s.AddTrust(ctx, "app.acme", "bob", 5, dev); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecret(ctx, "app.acme", "bob", "s", dev); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM dev_journal`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("%d journal entries; want 2", n)
	}
	if err := s.Revoke(ctx, mtlsid.Revocation{Serial: "2"}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d journal entries after the undo; want none", n)
	}
}
