package sqlite

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/storetest"
)

// BenchmarkNoticeScan measures the expiry-notice scan over
// MTLSID_BENCH_CERTS certificates (default 1,000,000); see
// storetest.BenchNoticeScan. Run it with -benchtime=1x:
//
//	go test ./store/sqlite -run '^$' -bench NoticeScan -benchtime=1x
func BenchmarkNoticeScan(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("MTLSID_BENCH_CERTS")); err == nil && v > 0 {
		n = v
	}
	s := openTest(b, filepath.Join(b.TempDir(), "mtlsid.db"))
	storetest.BenchNoticeScan(b, s, n, func(now time.Time, n int) { seedNotices(b, s, now, n) },
		func(sent []mtlsid.SentNotice) { recordNotices(b, s, sent) })
}

// seedNotices stores n certificates of 1000 identities with contacts,
// generated inside SQLite by a recursive CTE (one statement, no
// round trips); see storetest.BenchNoticeScan for their spread.
func seedNotices(b *testing.B, s *Store, now time.Time, n int) {
	ctx := b.Context()
	nowUS := now.UnixMicro()
	const dayUS = int64(24 * time.Hour / time.Microsecond)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999)
			INSERT INTO identities (id, kind, name, created_at) SELECT 'id' || i, 'person', 'person ' || i, ? FROM n`, []any{nowUS}},
		{`INSERT INTO contacts (identity_id, email, webhook_url, webhook_secret, updated_at)
			SELECT id, id || '@example.test', '', '', ? FROM identities WHERE id LIKE 'id%'`, []any{nowUS}},
		{`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?),
			c(i, nb) AS (SELECT i, ? - ((i * 7919) % 15552000) * 1000000 FROM n)
			INSERT INTO certificates (serial, identity_id, profile, name, device_type, not_before, not_after,
				der, renewed_from, development, created_at, revoked_at, revocation_reason)
			SELECT 'b' || i, 'id' || (i % 1000), 'device', 'device ' || i, 'Browser', nb, nb + 90 * ?,
				x'00', CASE WHEN i % 50 = 1 AND i > 1 THEN 'b' || (i - 1) ELSE '' END, 0, nb,
				CASE WHEN i % 20 = 0 THEN nb + ? ELSE NULL END, 0
			FROM c`, []any{n, nowUS, dayUS, dayUS}},
		{`ANALYZE`, nil},
	} {
		if _, err := s.write.ExecContext(ctx, q.sql, q.args...); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
}

// recordNotices records notices 500 to a statement, in one transaction.
func recordNotices(b *testing.B, s *Store, sent []mtlsid.SentNotice) {
	tx, err := s.write.BeginTx(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	for len(sent) > 0 {
		chunk := sent[:min(500, len(sent))]
		sent = sent[len(chunk):]
		q := "INSERT INTO notices (serial, threshold, sent_at) VALUES "
		args := make([]any, 0, 3*len(chunk))
		for i, n := range chunk {
			if i > 0 {
				q += ", "
			}
			q += "(?, ?, ?)"
			args = append(args, n.Serial, n.Threshold, n.SentAt.UnixMicro())
		}
		if _, err := tx.ExecContext(b.Context(), q, args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
}
