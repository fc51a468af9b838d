package agent_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/agent"
	"github.com/mtlsid/mtlsid/notify"
)

// TestAgentAndNoticesEndToEnd runs a real authority with the notifier, a
// device certificate living 6 s whose owner has a webhook, and the agent
// renewing at 80% of the life: the renewal-point notice arrives exactly
// once (signed), the agent renews, and the renewed certificate gets no
// further notice.
func TestAgentAndNoticesEndToEnd(t *testing.T) {
	e := startAuthority(t, 6*time.Second)
	dir := t.TempDir()
	f := e.enroll(t, dir, "laptop")
	first := serial(t, f)
	rec, err := e.store.Certificate(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}

	const secret = "webhook-secret"
	var mu sync.Mutex
	got := map[string]int{} // serial:threshold
	bad := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p notify.Payload
		mu.Lock()
		defer mu.Unlock()
		if !notify.Verify(secret, body, r.Header.Get(notify.SignatureHeader)) || json.Unmarshal(body, &p) != nil {
			bad++
			http.Error(w, "bad", http.StatusUnauthorized)
			return
		}
		got[p.Certificate.Serial+":"+p.Threshold]++
	}))
	defer hook.Close()
	if err := e.store.SetContact(context.Background(), mtlsid.Contact{IdentityID: rec.IdentityID, WebhookURL: hook.URL, WebhookSecret: secret},
		mtlsid.AuditEvent{Type: mtlsid.AuditContactSet, Subject: rec.IdentityID}); err != nil {
		t.Fatal(err)
	}
	n, err := notify.New(notify.Config{Store: e.store, Interval: 200 * time.Millisecond, LeaseTTL: 5 * time.Second, WebhookBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	go n.Run(ctx)
	a := &agent.Agent{Engine: &agent.Engine{Server: e.url, Roots: e.roots, Fraction: 0.8}, Identities: []agent.Identity{{Name: "laptop", Files: f}}}
	go a.Run(ctx)
	for serial(t, f) == first {
		if ctx.Err() != nil {
			t.Fatal("no renewal within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // several more scans
	mu.Lock()
	defer mu.Unlock()
	if bad > 0 {
		t.Errorf("%d webhook deliveries failed the signature check", bad)
	}
	if got[first+":"+mtlsid.ThresholdRenewal] != 1 {
		t.Errorf("renewal-point notice for the first certificate: %v, want exactly one", got)
	}
	if got[first+":"+mtlsid.ThresholdExpired] != 0 {
		t.Errorf("a renewed certificate got an expiry notice: %v", got)
	}
}
