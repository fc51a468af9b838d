package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/storetest"
)

// testURL returns the database that tests may create schemas in. CI sets
// it, which makes these tests mandatory there.
func testURL(tb testing.TB) string {
	u := os.Getenv("MTLSID_TEST_POSTGRES")
	if u == "" {
		tb.Skip("PostgreSQL tests skipped: set MTLSID_TEST_POSTGRES=postgres://... to run them")
	}
	return u
}

// newSchema creates a schema with a random name for tb, drops it at the end
// of tb, and returns a URL whose connections use it.
func newSchema(tb testing.TB) (schemaURL, schema string) {
	tb.Helper()
	base := testURL(tb)
	schema = "mtlsid_test_" + hex.EncodeToString(randBytes(6))
	admin(tb, base, `CREATE SCHEMA `+schema)
	tb.Cleanup(func() { admin(tb, base, `DROP SCHEMA `+schema+` CASCADE`) })
	return withParam(tb, base, "search_path", schema), schema
}

// admin runs one statement on a connection of its own.
func admin(tb testing.TB, base, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("MTLSID_TEST_POSTGRES is set but the database cannot be reached: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// withParam adds a parameter to a URL or key=value connection string.
func withParam(tb testing.TB, base, key, value string) string {
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " " + key + "=" + value
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("MTLSID_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func openURL(tb testing.TB, u string) *Store {
	tb.Helper()
	s, err := Open(tb.Context(), u)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// openTest opens a store in a new schema of its own.
func openTest(tb testing.TB) *Store {
	u, _ := newSchema(tb)
	return openURL(tb, u)
}

func TestStore(t *testing.T) {
	admin(t, testURL(t), `SELECT 1`) // skip or fail once, not in every subtest
	storetest.Run(t, func(t *testing.T) mtlsid.Store { return openTest(t) })
}

func BenchmarkIssue(b *testing.B) {
	admin(b, testURL(b), `SELECT 1`)
	storetest.Bench(b, func(b *testing.B) mtlsid.Store { return openTest(b) })
}

func BenchmarkRelation(b *testing.B) {
	admin(b, testURL(b), `SELECT 1`)
	storetest.BenchRelation(b, func(b *testing.B) mtlsid.Store { return openTest(b) })
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	s, err := Open(t.Context(), "postgres://postgres@127.0.0.1:1/mtlsid_db?sslmode=disable")
	if err == nil {
		s.Close()
		t.Fatal("Open of a closed port succeeded")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("Open took %v to fail", d)
	}
	if !errors.Is(err, mtlsid.ErrUnavailable) || mtlsid.ErrorKind(err) != mtlsid.KindUnavailable {
		t.Errorf("Open of a closed port: %v; want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), `"mtlsid_db"`) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error %q does not name the database and its address", err)
	}
}

func TestOpenMalformed(t *testing.T) {
	for _, u := range []string{
		"postgres://postgres:hunter2@127.0.0.1:notaport/db",
		"postgres://postgres@127.0.0.1/db?sslmode=sometimes",
		"nonsense",
	} {
		s, err := Open(t.Context(), u)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if !strings.Contains(err.Error(), "invalid database URL") {
			t.Errorf("Open(%q): %v; want an invalid URL error", u, err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q): error shows the password: %v", u, err)
		}
		if errors.Is(err, mtlsid.ErrUnavailable) {
			t.Errorf("Open(%q): %v is ErrUnavailable; a retry cannot fix a URL", u, err)
		}
	}
}

func TestOpenUnknownDatabase(t *testing.T) {
	admin(t, testURL(t), `SELECT 1`)
	u, err := url.Parse(testURL(t))
	if err != nil || u.Scheme == "" {
		t.Skip("MTLSID_TEST_POSTGRES is not a URL")
	}
	u.Path = "/mtlsid_no_such_database"
	s, err := Open(t.Context(), u.String())
	if err == nil {
		s.Close()
		t.Fatal("Open of an unknown database succeeded")
	}
	if errors.Is(err, mtlsid.ErrUnavailable) || !strings.Contains(err.Error(), "mtlsid_no_such_database") {
		t.Errorf("Open of an unknown database: %v; want a configuration error naming it", err)
	}
}

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true},
		{"cannot connect now", fmt.Errorf("query: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"too many connections", &pgconn.PgError{Code: "53300"}, true},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"query canceled", &pgconn.PgError{Code: "57014"}, false},
		{"connection lost", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"canceled", context.Canceled, false},
		{"other", errors.New("bug"), false},
	} {
		if got := unavailable(tc.err); got != tc.want {
			t.Errorf("%s: unavailable(%v) = %v; want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// TestTerminated kills the store's server connections, as a server shutting
// down does: the calls that fail must say "try again", and the store must
// recover by itself.
func TestTerminated(t *testing.T) {
	u, _ := newSchema(t)
	app := "mtlsid_test_" + hex.EncodeToString(randBytes(4))
	s := openURL(t, withParam(t, u, "application_name", app))
	admin(t, testURL(t), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '`+app+`'`)
	for try := 0; ; try++ {
		err := s.AppendAudit(t.Context(), mtlsid.AuditEvent{Type: "x"})
		if err == nil {
			break
		}
		t.Logf("call %d after termination: %v", try, err)
		if !errors.Is(err, mtlsid.ErrUnavailable) {
			t.Fatalf("call on a terminated connection: %v; want ErrUnavailable", err)
		}
		if try == 10 {
			t.Fatalf("store did not recover: %v", err)
		}
	}
}

// TestConcurrentOpen starts several nodes on one empty schema at once: the
// advisory lock must let exactly one of them migrate.
func TestConcurrentOpen(t *testing.T) {
	u, schema := newSchema(t)
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), u) })
	}
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		defer s.Close()
	}
	if t.Failed() {
		return
	}
	var n int
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT count(*) FROM `+schema+`.schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if ms, _ := listMigrations(); n != len(ms) {
		t.Errorf("%d migrations recorded; want %d", n, len(ms))
	}
}

// TestTwoNodes writes through two stores on one schema, as two nodes do:
// their writes must take turns on one audit chain.
func TestTwoNodes(t *testing.T) {
	u, _ := newSchema(t)
	nodes := []*Store{openURL(t, u), openURL(t, u)}
	var wg sync.WaitGroup
	errc := make(chan error, 2*len(nodes))
	for n, s := range nodes {
		for g := range 2 {
			wg.Go(func() {
				for i := range 10 {
					serial := fmt.Sprint(n*1000 + g*100 + i)
					errs, err := s.Issue(t.Context(), []mtlsid.Issuance{{
						Identity:    &mtlsid.Identity{ID: "id" + serial, Kind: mtlsid.KindService},
						Certificate: mtlsid.Certificate{Serial: serial, IdentityID: "id" + serial, DER: []byte{1}},
						Audit:       []mtlsid.AuditEvent{{Type: mtlsid.AuditCertIssued, Subject: serial}},
					}})
					if err == nil {
						err = errs[0]
					}
					if err != nil {
						errc <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if n, err := storetest.VerifyChain(t.Context(), nodes[1], 7); err != nil || n != 40 {
		t.Errorf("VerifyChain = %d, %v; want 40, nil", n, err)
	}
}

// TestReopen checks that the CRL number and the chain go on across a
// restart, and that an up-to-date schema is left alone.
func TestReopen(t *testing.T) {
	u, _ := newSchema(t)
	ctx := t.Context()
	s, err := Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	n1, err := s.NextCRLNumber(ctx)
	if err == nil {
		err = s.AppendAudit(ctx, mtlsid.AuditEvent{Type: mtlsid.AuditAuthorityStarted})
	}
	s.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = openURL(t, u)
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
}

// TestNewerSchema checks that a build refuses a database migrated by a
// newer one rather than run on a schema it does not know.
func TestNewerSchema(t *testing.T) {
	u, _ := newSchema(t)
	s := openURL(t, u)
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO schema_migrations (version) VALUES (9999)`); err != nil {
		t.Fatal(err)
	}
	if s2, err := Open(t.Context(), u); err == nil {
		s2.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
}

// TestTamper edits a stored audit entry behind the store's back, as someone
// with the database could, and expects the chain to name that entry.
func TestTamper(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	for range 5 {
		if err := s.AppendAudit(ctx, mtlsid.AuditEvent{Type: mtlsid.AuditCertIssued, Detail: "genuine"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE audit_log SET detail = 'forged' WHERE seq = 3`); err == nil {
		t.Fatal("UPDATE of audit_log succeeded; the append-only trigger is missing")
	}
	if _, err := s.pool.Exec(ctx, `DROP TRIGGER audit_log_append_only ON audit_log`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `UPDATE audit_log SET detail = 'forged' WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	_, err := storetest.VerifyChain(ctx, s, 2)
	var chainErr *mtlsid.AuditChainError
	if !errors.As(err, &chainErr) || chainErr.Seq != 3 {
		t.Errorf("VerifyChain after tampering with entry 3: %v; want an AuditChainError at 3", err)
	}
}

// TestJournalDeleted checks that the revocation that undoes a development
// certificate's journal also deletes it.
func TestJournalDeleted(t *testing.T) {
	s := openTest(t)
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
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM dev_journal`).Scan(&n); err != nil {
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
