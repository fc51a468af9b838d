package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

const day = 24 * time.Hour

var t0 = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// clock is the injectable clock of the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func (c *clock) Day(d float64)   { c.Set(t0.Add(time.Duration(d * float64(day)))) }
func newClock(d float64) *clock  { c := &clock{}; c.Day(d); return c }
func openSQLite(t *testing.T) mtlsid.Store {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "mtlsid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// person stores an identity with a 120-day certificate (renewal point at
// day 80) and contact c (if any channel is set).
func person(t *testing.T, s mtlsid.Store, id, serial string, c mtlsid.Contact) {
	t.Helper()
	cert := mtlsid.Certificate{Serial: serial, IdentityID: id, Profile: mtlsid.ProfileDevice, Name: "laptop of " + id,
		DeviceType: mtlsid.DeviceDesktop, NotBefore: t0, NotAfter: t0.Add(120 * day), DER: []byte{1}, CreatedAt: t0}
	item := mtlsid.Issuance{At: t0, Certificate: cert}
	if _, err := s.Identity(t.Context(), id); err != nil {
		item.Identity = &mtlsid.Identity{ID: id, Kind: mtlsid.KindPerson, Name: id, CreatedAt: t0}
	}
	errs, err := s.Issue(t.Context(), []mtlsid.Issuance{item})
	if err == nil {
		err = errs[0]
	}
	if err != nil {
		t.Fatal(err)
	}
	if c.Email != "" || c.WebhookURL != "" {
		c.IdentityID = id
		if err := s.SetContact(t.Context(), c, mtlsid.AuditEvent{Type: mtlsid.AuditContactSet, Subject: id}); err != nil {
			t.Fatal(err)
		}
	}
}

// receiver is a webhook endpoint that checks signatures. Paths are
// /<secret>; it fails the first failN requests of each notice with 500.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	failN    int
	attempts map[string]int // serial:threshold
	got      map[string]int // accepted
	bad      []string
}

func newReceiver(t *testing.T, failN int) *receiver {
	r := &receiver{failN: failN, attempts: map[string]int{}, got: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		secret := strings.TrimPrefix(req.URL.Path, "/")
		r.mu.Lock()
		defer r.mu.Unlock()
		if !Verify(secret, body, req.Header.Get(SignatureHeader)) || req.Header.Get("Content-Type") != "application/json" {
			r.bad = append(r.bad, string(body))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil {
			r.bad = append(r.bad, string(body))
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		key := p.Certificate.Serial + ":" + p.Threshold
		r.attempts[key]++
		if r.attempts[key] <= r.failN {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		r.got[key]++
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) delivered() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.got {
		out[k] = v
	}
	if len(r.bad) > 0 {
		out["bad"] = len(r.bad)
	}
	return out
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	if cfg.WebhookBackoff == 0 {
		cfg.WebhookBackoff = 5 * time.Millisecond
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func scan(t *testing.T, n *Notifier) Stats {
	t.Helper()
	st, err := n.Scan(t.Context())
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return st
}

func sent(t *testing.T, s mtlsid.Store, serial string) []string {
	t.Helper()
	list, err := s.SentNotices(t.Context(), serial)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, n := range list {
		out = append(out, n.Threshold)
	}
	return out
}

// TestNotices sends through a real SMTP server (mailpit, STARTTLS and
// PLAIN auth) and a real webhook receiver, across the thresholds of one
// certificate's life, with an organization's summary.
func TestNotices(t *testing.T) {
	mp := startMailpit(t, "", true)
	hooks := newReceiver(t, 0)
	s := openSQLite(t)
	ctx := t.Context()
	person(t, s, "alice", "1001", mtlsid.Contact{Email: "alice@example.test", WebhookURL: hooks.URL + "/alice-secret", WebhookSecret: "alice-secret"})
	person(t, s, "bob", "1002", mtlsid.Contact{}) // no contact: no notices

	// A service of organization acme with an API certificate.
	if err := s.CreateOrg(ctx, mtlsid.Organization{ID: "acme", Name: "Acme", Email: "ops@acme.test", CreatedAt: t0},
		mtlsid.Member{IdentityID: "alice", Role: mtlsid.OrgAdministrator}, mtlsid.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateService(ctx, mtlsid.Service{ID: "app.acme", OrgID: "acme", Name: "app", CreatedAt: t0},
		mtlsid.Domain{Name: "app.acme.mtls.local", ServiceID: "app.acme", Default: true, VerifiedAt: t0, Method: "default"}, mtlsid.AuditEvent{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	person(t, s, "app.acme", "1003", mtlsid.Contact{})

	clk := newClock(10)
	n := newNotifier(t, Config{
		Store: s, Now: clk.Now, PublicURL: "https://id.example.test:8443/",
		SMTP: SMTPConfig{Addr: mp.smtpAddr, From: "mtlsid <notices@id.example.test>", User: "mtlsid", Password: "pw",
			TLS: SMTPStartTLS, TLSConfig: mp.tlsConfig()},
	})
	if st := scan(t, n); !st.Leader || st.Due != 0 {
		t.Fatalf("scan at day 10: %+v; want leader, nothing due", st)
	}

	clk.Day(81)
	if st := scan(t, n); st.Due != 2 || st.Sent != 2 {
		t.Fatalf("scan at day 81: %+v; want 2 due and sent", st)
	}
	msgs := mp.messages(t)
	if len(msgs) != 2 {
		t.Fatalf("%d messages delivered; want 2 (alice's and acme's summary)", len(msgs))
	}
	alice, org := msgs[0], msgs[1]
	if alice.To[0].Address != "alice@example.test" || !strings.Contains(alice.Subject, `"laptop of alice" should be renewed now`) {
		t.Errorf("alice's notice: to %v, subject %q", alice.To, alice.Subject)
	}
	for _, want := range []string{"Serial:      1001", "Expires:     2030-05-01 00:00 UTC",
		"mtlsid renew --name 'laptop of alice' --server https://id.example.test:8443", "https://id.example.test:8443/my"} {
		if !strings.Contains(alice.Text, want) {
			t.Errorf("alice's notice lacks %q:\n%s", want, alice.Text)
		}
	}
	if org.To[0].Address != "ops@acme.test" || !strings.Contains(org.Text, "app.acme") || !strings.Contains(org.Text, "serial 1003") {
		t.Errorf("organization summary: to %v:\n%s", org.To, org.Text)
	}
	diff := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v; want %v", what, got, want)
		}
	}
	diff("webhooks", hooks.delivered(), map[string]int{"1001:renewal": 1})
	diff("alice's notices", sent(t, s, "1001"), []string{"renewal"})

	// Again at the same moment: nothing more.
	if st := scan(t, n); st.Due != 0 {
		t.Errorf("second scan at day 81: %+v; want nothing due", st)
	}
	// 7 days before expiry, then at expiry.
	clk.Day(113.5)
	scan(t, n)
	clk.Day(120.01)
	scan(t, n)
	diff("webhooks", hooks.delivered(), map[string]int{"1001:renewal": 1, "1001:7d": 1, "1001:expired": 1})
	diff("alice's notices", sent(t, s, "1001"), []string{"renewal", "7d", "expired"})
	if got := len(mp.messages(t)); got != 6 {
		t.Errorf("%d messages; want 6", got)
	}
	last := mp.messages(t)[4]
	if !strings.Contains(last.Subject, "has expired") {
		t.Errorf("expiry notice subject %q", last.Subject)
	}
	log, err := s.Deliveries(ctx, "alice", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != 6 || log[0].Status != StatusSent {
		t.Errorf("alice's delivery log: %+v; want 6 sent", log)
	}
}

// TestImplicitTLS sends over TLS from the first byte.
func TestImplicitTLS(t *testing.T) {
	mp := startMailpitTLS(t)
	s := openSQLite(t)
	person(t, s, "alice", "1", mtlsid.Contact{Email: "alice@example.test"})
	n := newNotifier(t, Config{Store: s, Now: newClock(81).Now,
		SMTP: SMTPConfig{Addr: mp.smtpAddr, From: "notices@id.example.test", TLS: SMTPTLS, TLSConfig: mp.tlsConfig()}})
	if st := scan(t, n); st.Sent != 1 {
		t.Fatalf("scan: %+v; want 1 sent", st)
	}
	if msgs := mp.messages(t); len(msgs) != 1 || !strings.Contains(msgs[0].Text, "mtlsid renew --name 'laptop of alice'") {
		t.Errorf("messages: %+v", msgs)
	}
}

// TestSMTPDown: while the SMTP server is down, notices stay due; once it
// is up, each arrives once.
func TestSMTPDown(t *testing.T) {
	s := openSQLite(t)
	person(t, s, "alice", "1", mtlsid.Contact{Email: "alice@example.test"})
	person(t, s, "bob", "2", mtlsid.Contact{Email: "bob@example.test"})
	addr := freeAddr(t) // nothing listens there yet
	clk := newClock(81)
	n := newNotifier(t, Config{Store: s, Now: clk.Now, SMTP: SMTPConfig{Addr: addr, From: "n@id.example.test", TLS: SMTPNone, Timeout: 2 * time.Second}})
	for range 2 {
		if st := scan(t, n); st.Due != 2 || st.Sent != 0 {
			t.Fatalf("scan with SMTP down: %+v; want 2 due, none sent", st)
		}
	}
	log, _ := s.Deliveries(t.Context(), "", 100)
	if len(log) != 4 || log[0].Status != StatusFailed || log[0].Error == "" {
		t.Errorf("delivery log: %+v; want 4 failures with errors", log)
	}

	mp := startMailpit(t, addr, false)
	clk.Day(81.01)
	if st := scan(t, n); st.Sent != 2 {
		t.Fatalf("scan with SMTP up: %+v; want 2 sent", st)
	}
	clk.Day(81.02)
	scan(t, n)
	msgs := mp.messages(t)
	if len(msgs) != 2 {
		t.Errorf("%d messages; want 2, once each", len(msgs))
	}
}

// TestWebhookRetry: failed attempts are retried with backoff within the
// scan, and each attempt is in the delivery log; a webhook that fails
// every attempt leaves the notice due.
func TestWebhookRetry(t *testing.T) {
	t.Run("recovers", func(t *testing.T) {
		hooks := newReceiver(t, 2)
		s := openSQLite(t)
		person(t, s, "alice", "1", mtlsid.Contact{WebhookURL: hooks.URL + "/k", WebhookSecret: "k"})
		n := newNotifier(t, Config{Store: s, Now: newClock(81).Now, WebhookAttempts: 3})
		if st := scan(t, n); st.Sent != 1 {
			t.Fatalf("scan: %+v; want 1 sent", st)
		}
		log, _ := s.Deliveries(t.Context(), "alice", 10)
		var statuses []string
		for _, d := range log {
			statuses = append(statuses, d.Status)
		}
		if fmt.Sprint(statuses) != "[sent failed failed]" {
			t.Errorf("delivery log statuses (newest first) %v", statuses)
		}
	})
	t.Run("gives up until the next scan", func(t *testing.T) {
		hooks := newReceiver(t, 3)
		s := openSQLite(t)
		person(t, s, "alice", "1", mtlsid.Contact{WebhookURL: hooks.URL + "/k", WebhookSecret: "k"})
		n := newNotifier(t, Config{Store: s, Now: newClock(81).Now, WebhookAttempts: 3})
		if st := scan(t, n); st.Sent != 0 {
			t.Fatalf("first scan: %+v; want none sent", st)
		}
		if st := scan(t, n); st.Sent != 1 {
			t.Fatalf("second scan: %+v; want 1 sent", st)
		}
		if got := hooks.delivered(); got["1:renewal"] != 1 || len(got) != 1 {
			t.Errorf("delivered %v", got)
		}
	})
	t.Run("wrong secret is refused", func(t *testing.T) {
		hooks := newReceiver(t, 0)
		s := openSQLite(t)
		person(t, s, "alice", "1", mtlsid.Contact{WebhookURL: hooks.URL + "/right", WebhookSecret: "wrong"})
		n := newNotifier(t, Config{Store: s, Now: newClock(81).Now, WebhookAttempts: 1})
		if st := scan(t, n); st.Sent != 0 {
			t.Errorf("scan: %+v; want nothing accepted", st)
		}
	})
}

// TestLease: a second node does nothing while the first holds the lease,
// and takes over once it expires.
func TestLease(t *testing.T) {
	hooks := newReceiver(t, 0)
	s := openSQLite(t)
	person(t, s, "alice", "1", mtlsid.Contact{WebhookURL: hooks.URL + "/k", WebhookSecret: "k"})
	clk := newClock(10)
	a := newNotifier(t, Config{Store: s, Now: clk.Now, Holder: "a", LeaseTTL: time.Minute})
	b := newNotifier(t, Config{Store: s, Now: clk.Now, Holder: "b", LeaseTTL: time.Minute})
	if st := scan(t, a); !st.Leader {
		t.Fatal("a did not take the lease")
	}
	clk.Set(clk.Now().Add(30 * time.Second))
	if st := scan(t, b); st.Leader {
		t.Fatal("b took a's lease")
	}
	clk.Day(81) // a's lease long expired
	if st := scan(t, b); !st.Leader || st.Sent != 1 {
		t.Fatalf("b after a's lease expired: %+v", st)
	}
	if st := scan(t, a); st.Leader {
		t.Fatal("a took b's lease back")
	}
}

// TestLeaseHeartbeat: while Run goes on, its heartbeat keeps the lease
// past its TTL, between scans, so another node does not take it; when Run
// ends the lease is given up and the other node takes it at its next scan.
func TestLeaseHeartbeat(t *testing.T) {
	s := openSQLite(t)
	const ttl = 2 * time.Second
	a := newNotifier(t, Config{Store: s, Holder: "a", LeaseTTL: ttl, Interval: time.Hour})
	b := newNotifier(t, Config{Store: s, Holder: "b", LeaseTTL: ttl, Interval: time.Hour})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for !a.holding.Load() { // a's first scan, at once
		if time.Now().After(deadline) {
			t.Fatal("a never took the lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Two and a half TTLs with no scan of a's (its interval is an hour):
	// only the heartbeat keeps the lease a's.
	time.Sleep(5 * time.Second)
	if st := scan(t, b); st.Leader {
		t.Fatal("b took the lease while a's heartbeat ran")
	}
	cancel()
	<-done
	if st := scan(t, b); !st.Leader {
		t.Fatal("b did not take the lease a gave up")
	}
}

func TestRenewCommand(t *testing.T) {
	for _, tc := range []struct{ name, server, want string }{
		{"laptop", "", "mtlsid renew --name laptop"},
		{"bob's pc", "https://id:8443", `mtlsid renew --name 'bob'\''s pc' --server https://id:8443`},
		{"", "", "mtlsid renew --name ''"},
	} {
		if got := RenewCommand(&mtlsid.Certificate{Name: tc.name}, tc.server); got != tc.want {
			t.Errorf("RenewCommand(%q) = %s; want %s", tc.name, got, tc.want)
		}
	}
}

func TestConfig(t *testing.T) {
	s := openSQLite(t)
	for name, smtp := range map[string]SMTPConfig{
		"bad mode":   {Addr: "127.0.0.1:25", From: "a@b.test", TLS: "ssl"},
		"no port":    {Addr: "127.0.0.1", From: "a@b.test"},
		"bad sender": {Addr: "127.0.0.1:25", From: "not an address"},
	} {
		if _, err := New(Config{Store: s, SMTP: smtp}); err == nil {
			t.Errorf("%s: New accepted %+v", name, smtp)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a store succeeded")
	}
}
