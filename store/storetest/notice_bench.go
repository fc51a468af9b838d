package storetest

import (
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// BenchNoticeScan measures the expiry-notice scan (NoticesDue, paged by
// 1000 to the end, as the notifier reads it) over n certificates. seed
// stores them, as fast as the backend can: 1000 identities with
// contacts; 90-day certificates whose NotBefore is spread over the 180
// days before now, so that about half have expired and a third of the
// rest passed their renewal point; every 20th revoked, every 50th
// renewing the one before it. record stores notices in bulk.
//
// It reports two scans: "first", with no notice recorded yet (every due
// notice is returned), and "recorded", after every due notice was
// recorded (the steady state: the scan visits the same candidates and
// returns none). Run with -benchtime=1x: one scan is the measurement.
func BenchNoticeScan(b *testing.B, s mtlsid.Store, n int, seed func(now time.Time, n int), record func([]mtlsid.SentNotice)) {
	now := time.Date(2031, time.June, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	seed(now, n)
	b.Logf("seeded %d certificates in %v", n, time.Since(start).Round(time.Millisecond))
	scanAll := func(b *testing.B) []mtlsid.SentNotice {
		var sent []mtlsid.SentNotice
		q := mtlsid.NoticeQuery{Now: now, Thresholds: mtlsid.DefaultThresholds(), Limit: 1000}
		for {
			page, err := s.NoticesDue(b.Context(), q)
			if err != nil {
				b.Fatalf("NoticesDue: %v", err)
			}
			for _, d := range page {
				sent = append(sent, mtlsid.SentNotice{Serial: d.Certificate.Serial, Threshold: d.Threshold, SentAt: now})
			}
			if len(page) < q.Limit {
				return sent
			}
			last := page[len(page)-1].Certificate
			q.AfterNotAfter, q.AfterSerial = last.NotAfter, last.Serial
		}
	}
	var due []mtlsid.SentNotice
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			due = scanAll(b)
		}
		b.ReportMetric(float64(len(due)), "due")
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/scan")
	})
	if len(due) == 0 {
		b.Fatal("no notice due: the seed is wrong")
	}
	record(due)
	b.Run("recorded", func(b *testing.B) {
		var left []mtlsid.SentNotice
		for b.Loop() {
			left = scanAll(b)
		}
		if len(left) != 0 {
			b.Errorf("%d notices due after recording them all", len(left))
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/scan")
	})
}
