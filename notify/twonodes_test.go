package notify

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/store/postgres"
)

// TestTwoNodes runs two notifiers, each on its own connection pool to one
// PostgreSQL database as two `serve` nodes would, scanning at the same
// moments: every notice arrives exactly once, by e-mail and by webhook.
func TestTwoNodes(t *testing.T) {
	url := pgtest.URL(t)
	open := func() mtlsid.Store {
		s, err := postgres.Open(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s1, s2 := open(), open()
	mp := startMailpit(t, "", false)
	hooks := newReceiver(t, 0)
	const people = 20
	for i := range people {
		id := fmt.Sprint("p", i)
		person(t, s1, id, fmt.Sprint(5000+i), mtlsid.Contact{Email: id + "@example.test", WebhookURL: hooks.URL + "/s" + id, WebhookSecret: "s" + id})
	}
	clk := newClock(10)
	smtp := SMTPConfig{Addr: mp.smtpAddr, From: "n@id.example.test", TLS: SMTPNone}
	nodes := []*Notifier{
		newNotifier(t, Config{Store: s1, Now: clk.Now, Holder: "node-1", SMTP: smtp, BatchSize: 7, LeaseTTL: time.Hour}),
		newNotifier(t, Config{Store: s2, Now: clk.Now, Holder: "node-2", SMTP: smtp, BatchSize: 7, LeaseTTL: time.Hour}),
	}
	leaders := map[string]int{}
	// Each step is more than the lease TTL after the one before, so the
	// lease is up for grabs at every step.
	steps := []float64{81, 91, 113.5, 119.5, 120.01}
	for _, d := range steps {
		clk.Day(d)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, n := range nodes {
			for range 2 { // each node scans twice at once, as a slow round overlapping the next would
				wg.Go(func() {
					st, err := n.Scan(t.Context())
					if err != nil {
						t.Errorf("Scan: %v", err)
					}
					if st.Leader && st.Sent > 0 {
						mu.Lock()
						leaders[n.cfg.Holder]++
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
	}
	got := hooks.delivered()
	if len(got) != people*len(steps) {
		t.Errorf("%d distinct webhook notices; want %d", len(got), people*len(steps))
	}
	for k, v := range got {
		if v != 1 {
			t.Errorf("webhook notice %s delivered %d times", k, v)
		}
	}
	for addr, v := range mp.count(t) {
		if v != len(steps) {
			t.Errorf("%s got %d e-mails; want %d, one per threshold", addr, v, len(steps))
		}
	}
	if len(mp.count(t)) != people {
		t.Errorf("e-mail went to %d addresses; want %d", len(mp.count(t)), people)
	}
	t.Logf("scans that sent, per node: %v", leaders)
}
