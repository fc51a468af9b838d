package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// RunNotices runs the conformance suite of mtlsid.NoticeStore: contacts,
// the notice scan, notice records, the delivery log and leases. open is
// as for Run.
func RunNotices(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("Contact", func(t *testing.T) { testContact(t, open) })
	t.Run("NoticesDue", func(t *testing.T) { testNoticesDue(t, open) })
	t.Run("NoticesDuePaging", func(t *testing.T) { testNoticesDuePaging(t, open) })
	t.Run("RecordNotice", func(t *testing.T) { testRecordNotice(t, open) })
	t.Run("Deliveries", func(t *testing.T) { testDeliveries(t, open) })
	t.Run("Lease", func(t *testing.T) { testLease(t, open) })
	t.Run("LeaseRace", func(t *testing.T) { testLeaseRace(t, open) })
}

const day = 24 * time.Hour

// days returns at(0) plus d days.
func days(d float64) time.Time { return at(0).Add(time.Duration(d * float64(day))) }

// lifeCert is a certificate of identityID valid from at(0) for life days.
func lifeCert(serial, identityID string, life float64) mtlsid.Certificate {
	c := certificate(serial, identityID)
	c.NotAfter = days(life)
	return c
}

func contact(identityID string) mtlsid.Contact {
	return mtlsid.Contact{IdentityID: identityID, Email: identityID + "@example.test",
		WebhookURL: "https://hooks.example.test/" + identityID, WebhookSecret: "secret of " + identityID, UpdatedAt: at(2)}
}

func testContact(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	ctx := t.Context()
	ev := event(mtlsid.AuditContactSet, "alice")
	wantErr(t, "SetContact of an unknown identity", s.SetContact(ctx, contact("alice"), ev), mtlsid.ErrNotFound)
	mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
	_, err := s.Contact(ctx, "alice")
	wantErr(t, "Contact before any", err, mtlsid.ErrNotFound)

	must(t, "SetContact", s.SetContact(ctx, contact("alice"), ev))
	got, err := s.Contact(ctx, "alice")
	must(t, "Contact", err)
	diff(t, "contact", *got, contact("alice"))

	changed := mtlsid.Contact{IdentityID: "alice", Email: "new@example.test", UpdatedAt: at(3)}
	must(t, "SetContact (replace)", s.SetContact(ctx, changed, ev))
	got, err = s.Contact(ctx, "alice")
	must(t, "Contact", err)
	diff(t, "replaced contact", *got, changed)

	must(t, "SetContact (clear)", s.SetContact(ctx, mtlsid.Contact{IdentityID: "alice"}, ev))
	_, err = s.Contact(ctx, "alice")
	wantErr(t, "Contact after clearing", err, mtlsid.ErrNotFound)
	wantChainLen(t, s, 3)
}

// due runs NoticesDue at now with the default thresholds and returns
// "serial:threshold" of each notice.
func due(t *testing.T, s mtlsid.Store, now time.Time) []string {
	t.Helper()
	list, err := s.NoticesDue(t.Context(), mtlsid.NoticeQuery{Now: now, Thresholds: mtlsid.DefaultThresholds()})
	if err != nil {
		t.Fatalf("NoticesDue at %v: %v", now, err)
	}
	out := []string{}
	for _, n := range list {
		out = append(out, n.Certificate.Serial+":"+n.Threshold)
	}
	return out
}

func record(t *testing.T, s mtlsid.Store, serial, threshold string, when time.Time) {
	t.Helper()
	must(t, "RecordNotice", s.RecordNotice(t.Context(), mtlsid.SentNotice{Serial: serial, Threshold: threshold, SentAt: when}))
}

func testNoticesDue(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	setup := func(t *testing.T) mtlsid.Store {
		s := open(t)
		// A 120-day certificate: renewal point at day 80, then 90, 113,
		// 119 and 120.
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: lifeCert("1", "alice", 120)})
		must(t, "SetContact", s.SetContact(t.Context(), contact("alice"), event(mtlsid.AuditContactSet, "alice")))
		return s
	}
	t.Run("thresholds", func(t *testing.T) {
		s := setup(t)
		for _, step := range []struct {
			day    float64
			want   []string
			record bool
		}{
			{10, []string{}, false},
			{79.9, []string{}, false},
			{80.1, []string{"1:renewal"}, true},
			{85, []string{}, false},
			{90.1, []string{"1:30d"}, false},
			// 30d never recorded: only the most urgent goes out.
			{113.5, []string{"1:7d"}, true},
			{119.5, []string{"1:1d"}, true},
			{120.5, []string{"1:expired"}, false},
			{126, []string{"1:expired"}, true},
			{126.5, []string{}, false},
		} {
			got := due(t, s, days(step.day))
			diff(t, fmt.Sprintf("due at day %v", step.day), got, step.want)
			if step.record && len(got) == 1 {
				record(t, s, "1", got[0][2:], days(step.day))
			}
		}
	})
	t.Run("expired beyond grace", func(t *testing.T) {
		s := setup(t)
		diff(t, "due long after expiry", due(t, s, days(120).Add(mtlsid.NoticeGrace+time.Minute)), []string{})
	})
	t.Run("contact fields", func(t *testing.T) {
		s := setup(t)
		list, err := s.NoticesDue(t.Context(), mtlsid.NoticeQuery{Now: days(81), Thresholds: mtlsid.DefaultThresholds()})
		must(t, "NoticesDue", err)
		if len(list) != 1 {
			t.Fatalf("NoticesDue = %+v; want one", list)
		}
		want := lifeCert("1", "alice", 120)
		want.DER = nil
		diff(t, "certificate", list[0].Certificate, want)
		diff(t, "contact", list[0].Contact, contact("alice"))
		if list[0].ServiceID != "" || list[0].OrgEmail != "" {
			t.Errorf("a person's notice has service %q, org e-mail %q", list[0].ServiceID, list[0].OrgEmail)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		s := setup(t)
		must(t, "Revoke", s.Revoke(t.Context(), mtlsid.Revocation{Serial: "1", At: days(50), Reason: mtlsid.ReasonSuperseded}))
		diff(t, "due of a revoked certificate", due(t, s, days(81)), []string{})
	})
	t.Run("renewed", func(t *testing.T) {
		s := setup(t)
		renewal := lifeCert("2", "alice", 240)
		renewal.RenewedFrom = "1"
		mustIssue(t, s, mtlsid.Issuance{At: days(70), Certificate: renewal})
		diff(t, "due of a renewed certificate", due(t, s, days(81)), []string{})
		// A revoked renewal renews nothing.
		must(t, "Revoke", s.Revoke(t.Context(), mtlsid.Revocation{Serial: "2", At: days(75)}))
		diff(t, "due once the renewal is revoked", due(t, s, days(81)), []string{"1:renewal"})
	})
	t.Run("no contact", func(t *testing.T) {
		s := setup(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("bob"), Certificate: lifeCert("2", "bob", 120)})
		diff(t, "due", due(t, s, days(81)), []string{"1:renewal"})
		must(t, "SetContact", s.SetContact(t.Context(), mtlsid.Contact{IdentityID: "bob", WebhookURL: "https://h.test/"}, event(mtlsid.AuditContactSet, "bob")))
		diff(t, "due with a webhook only", due(t, s, days(81)), []string{"1:renewal", "2:renewal"})
	})
	t.Run("service of an organization", func(t *testing.T) {
		s := setup(t)
		ctx := t.Context()
		must(t, "CreateOrg", s.CreateOrg(ctx, org(orgID), mtlsid.Member{IdentityID: "alice"}, event(mtlsid.AuditOrgCreated, orgID)))
		svc, def := service("app", orgID, 1)
		must(t, "CreateService", s.CreateService(ctx, svc, def, event(mtlsid.AuditServiceCreated, svc.ID)))
		c := apiCert("2", appID, false)
		c.NotAfter = days(120)
		mustIssue(t, s, mtlsid.Issuance{At: at(2), Certificate: c})
		list, err := s.NoticesDue(ctx, mtlsid.NoticeQuery{Now: days(81), Thresholds: mtlsid.DefaultThresholds()})
		must(t, "NoticesDue", err)
		if len(list) != 2 || list[1].Certificate.Serial != "2" {
			t.Fatalf("NoticesDue = %+v; want alice's and the service's", list)
		}
		n := list[1]
		if n.ServiceID != appID || n.OrgID != orgID || n.OrgEmail != org(orgID).Email || n.Contact.IdentityID != "" {
			t.Errorf("service notice: service %q, org %q, org e-mail %q, contact %+v", n.ServiceID, n.OrgID, n.OrgEmail, n.Contact)
		}
	})
	t.Run("short life", func(t *testing.T) {
		s := open(t)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: lifeCert("1", "alice", 20)})
		must(t, "SetContact", s.SetContact(t.Context(), contact("alice"), event(mtlsid.AuditContactSet, "alice")))
		// 30 days before expiry is before it was issued: no notice for it.
		diff(t, "due at day 1", due(t, s, days(1)), []string{})
		// 7 days before expiry is day 13, the renewal point day 13.33.
		diff(t, "due at day 13.2", due(t, s, days(13.2)), []string{"1:7d"})
		diff(t, "due at day 14", due(t, s, days(14)), []string{"1:renewal"})
	})
	t.Run("no thresholds", func(t *testing.T) {
		s := setup(t)
		list, err := s.NoticesDue(t.Context(), mtlsid.NoticeQuery{Now: days(81)})
		if err != nil || len(list) != 0 {
			t.Errorf("NoticesDue without thresholds = %v, %v; want none", list, err)
		}
	})
}

func testNoticesDuePaging(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	ctx := t.Context()
	mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: lifeCert("0", "alice", 100)})
	must(t, "SetContact", s.SetContact(ctx, contact("alice"), event(mtlsid.AuditContactSet, "alice")))
	var want []string
	for i := range 7 {
		// Two certificates per expiry, so that pages split ties.
		serial := serialOf(i)
		mustIssue(t, s, mtlsid.Issuance{At: at(1), Certificate: lifeCert(serial, "alice", float64(100+i/2))})
		want = append(want, serial)
	}
	var got []string
	q := mtlsid.NoticeQuery{Now: days(99.5), Thresholds: mtlsid.DefaultThresholds(), Limit: 3}
	for range 10 {
		page, err := s.NoticesDue(ctx, q)
		must(t, "NoticesDue", err)
		for _, n := range page {
			if n.Certificate.Serial != "0" {
				got = append(got, n.Certificate.Serial)
			}
		}
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1].Certificate
		q.AfterNotAfter, q.AfterSerial = last.NotAfter, last.Serial
	}
	diff(t, "serials over every page", got, want)
}

func testRecordNotice(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	ctx := t.Context()
	mustIssue(t, s, mtlsid.Issuance{At: at(1), Identity: identity("alice"), Certificate: certificate("1", "alice")})
	record(t, s, "1", mtlsid.ThresholdRenewal, at(10))
	record(t, s, "1", mtlsid.Threshold30Days, at(20))
	wantErr(t, "second RecordNotice", s.RecordNotice(ctx, mtlsid.SentNotice{Serial: "1", Threshold: mtlsid.ThresholdRenewal, SentAt: at(30)}), mtlsid.ErrConflict)
	wantErr(t, "RecordNotice of an unknown serial", s.RecordNotice(ctx, mtlsid.SentNotice{Serial: "2", Threshold: "7d", SentAt: at(30)}), mtlsid.ErrNotFound)
	got, err := s.SentNotices(ctx, "1")
	must(t, "SentNotices", err)
	diff(t, "sent notices", got, []mtlsid.SentNotice{
		{Serial: "1", Threshold: mtlsid.ThresholdRenewal, SentAt: at(10)},
		{Serial: "1", Threshold: mtlsid.Threshold30Days, SentAt: at(20)},
	})
	wantChainLen(t, s, 0)
}

func testDeliveries(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	ctx := t.Context()
	d := func(identityID, channel, status string, minutes int) mtlsid.Delivery {
		return mtlsid.Delivery{Serial: "1", IdentityID: identityID, Threshold: "7d", Channel: channel,
			Target: identityID + "@example.test", Status: status, At: at(minutes)}
	}
	log := []mtlsid.Delivery{d("alice", "email", "failed", 1), d("bob", "webhook", "sent", 2), d("alice", "email", "sent", 3)}
	log[0].Error = "connection refused"
	for _, e := range log {
		must(t, "LogDelivery", s.LogDelivery(ctx, e))
	}
	got, err := s.Deliveries(ctx, "alice", 10)
	must(t, "Deliveries", err)
	if len(got) != 2 {
		t.Fatalf("Deliveries(alice) = %+v; want 2", got)
	}
	for i, want := range []mtlsid.Delivery{log[2], log[0]} {
		want.ID = got[i].ID
		diff(t, fmt.Sprintf("delivery %d", i), got[i], want)
	}
	if got[0].ID <= got[1].ID {
		t.Errorf("delivery IDs %d, %d: newest first wants the larger first", got[0].ID, got[1].ID)
	}
	all, err := s.Deliveries(ctx, "", 2)
	must(t, "Deliveries(all)", err)
	if len(all) != 2 || all[0].IdentityID != "alice" || all[1].IdentityID != "bob" {
		t.Errorf("Deliveries(all, 2) = %+v", all)
	}
}

func testLease(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	ctx := t.Context()
	acquire := func(holder string, minutes int, want bool) {
		t.Helper()
		got, err := s.AcquireLease(ctx, "notices", holder, 10*time.Minute, at(minutes))
		must(t, "AcquireLease", err)
		if got != want {
			t.Errorf("AcquireLease(%s) at minute %d = %v; want %v", holder, minutes, got, want)
		}
	}
	renew := func(holder string, minutes int, want bool) {
		t.Helper()
		got, err := s.RenewLease(ctx, "notices", holder, 10*time.Minute, at(minutes))
		must(t, "RenewLease", err)
		if got != want {
			t.Errorf("RenewLease(%s) at minute %d = %v; want %v", holder, minutes, got, want)
		}
	}
	acquire("a", 0, true)
	acquire("b", 1, false)
	acquire("a", 2, true) // extends to 12
	renew("a", 5, true)   // extends to 15
	renew("b", 5, false)
	acquire("b", 14, false)
	acquire("b", 15, true) // a's expired
	renew("a", 16, false)
	must(t, "ReleaseLease by a non-holder", s.ReleaseLease(ctx, "notices", "a"))
	acquire("a", 16, false)
	must(t, "ReleaseLease", s.ReleaseLease(ctx, "notices", "b"))
	acquire("a", 17, true)
	// Leases are independent of each other.
	if ok, err := s.AcquireLease(ctx, "other", "b", time.Minute, at(17)); !ok || err != nil {
		t.Errorf("AcquireLease(other) = %v, %v; want true", ok, err)
	}
}

// testLeaseRace has many holders try at once: exactly one wins.
func testLeaseRace(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	s := open(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	var errs []error
	for i := range 8 {
		wg.Go(func() {
			holder := fmt.Sprint("node-", i)
			ok, err := s.AcquireLease(t.Context(), "notices", holder, time.Minute, at(0))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				winners = append(winners, holder)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(winners) != 1 {
		t.Errorf("lease winners %v; want exactly one", winners)
	}
}
