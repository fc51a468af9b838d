package postgres

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/storetest"
)

// BenchmarkNoticeScan measures the expiry-notice scan over
// MTLSID_BENCH_CERTS certificates (default 1,000,000); see
// storetest.BenchNoticeScan. Run it with -benchtime=1x:
//
//	go test ./store/postgres -run '^$' -bench NoticeScan -benchtime=1x
func BenchmarkNoticeScan(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("MTLSID_BENCH_CERTS")); err == nil && v > 0 {
		n = v
	}
	s := openTest(b)
	storetest.BenchNoticeScan(b, s, n, func(now time.Time, n int) { seedNotices(b, s, now, n) },
		func(sent []mtlsid.SentNotice) { recordNotices(b, s, sent) })
}

// seedNotices stores n certificates of 1000 identities with contacts,
// generated inside PostgreSQL by generate_series (one statement, no
// round trips); see storetest.BenchNoticeScan for their spread.
func seedNotices(b *testing.B, s *Store, now time.Time, n int) {
	ctx := b.Context()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO identities (id, kind, name, created_at)
			SELECT 'id' || i, 'person', 'person ' || i, $1 FROM generate_series(0, 999) i`, []any{now}},
		{`INSERT INTO contacts (identity_id, email, webhook_url, webhook_secret, updated_at)
			SELECT id, id || '@example.test', '', '', $1 FROM identities WHERE id LIKE 'id%'`, []any{now}},
		{`INSERT INTO certificates (serial, identity_id, profile, name, device_type, not_before, not_after,
				der, renewed_from, development, created_at, revoked_at, revocation_reason)
			SELECT 'b' || i, 'id' || (i % 1000), 'device', 'device ' || i, 'Browser', nb, nb + interval '90 days',
				'\x00', CASE WHEN i % 50 = 1 AND i > 1 THEN 'b' || (i - 1) ELSE '' END, false, nb,
				CASE WHEN i % 20 = 0 THEN nb + interval '1 day' END, 0
			FROM (SELECT i, $2::timestamptz - ((i::bigint * 7919) % 15552000) * interval '1 second' AS nb
				FROM generate_series(1, $1::int) i) c`, []any{n, now}},
		{`ANALYZE`, nil},
	} {
		if _, err := s.pool.Exec(ctx, q.sql, q.args...); err != nil {
			b.Fatalf("seed: %v", err)
		}
	}
}

// recordNotices records notices with COPY.
func recordNotices(b *testing.B, s *Store, sent []mtlsid.SentNotice) {
	rows := make([][]any, len(sent))
	for i, n := range sent {
		rows[i] = []any{n.Serial, n.Threshold, n.SentAt}
	}
	if _, err := s.pool.CopyFrom(b.Context(), pgx.Identifier{"notices"}, []string{"serial", "threshold", "sent_at"}, pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(b.Context(), `ANALYZE notices`); err != nil {
		b.Fatal(err)
	}
}
