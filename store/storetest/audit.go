package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/mtlsid/mtlsid"
)

func testAudit(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	t.Run("append and page", func(t *testing.T) {
		s := open(t)
		events := []mtlsid.AuditEvent{
			event(mtlsid.AuditAuthorityStarted, "a"),
			event(mtlsid.AuditCACreated, "b"),
			{Time: at(5), Type: mtlsid.AuditEnrollmentRejected, Actor: "système", Subject: "", Detail: "ünïcode ✓"},
		}
		if err := s.AppendAudit(t.Context(), events...); err != nil {
			t.Fatalf("AppendAudit: %v", err)
		}
		if err := s.AppendAudit(t.Context()); err != nil {
			t.Fatalf("AppendAudit of nothing: %v", err)
		}
		first, err := s.AuditLog(t.Context(), 0, 2)
		if err != nil {
			t.Fatalf("AuditLog: %v", err)
		}
		rest, err := s.AuditLog(t.Context(), 2, 10)
		if err != nil {
			t.Fatalf("AuditLog: %v", err)
		}
		all := append(first, rest...)
		if len(first) != 2 || len(all) != 3 {
			t.Fatalf("pages of %d and %d entries; want 2 and 1", len(first), len(rest))
		}
		var got []mtlsid.AuditEvent
		for i, e := range all {
			if e.Seq != int64(i+1) {
				t.Errorf("entry %d has Seq %d", i, e.Seq)
			}
			got = append(got, e.AuditEvent)
		}
		diff(t, "events", got, events)
		if end, err := s.AuditLog(t.Context(), 3, 10); err != nil || len(end) != 0 {
			t.Errorf("AuditLog past the end = %v, %v; want none", end, err)
		}
		wantChainLen(t, s, 3)
	})
	t.Run("limit below 1", func(t *testing.T) {
		s := open(t)
		if _, err := s.AuditLog(t.Context(), 0, 0); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("AuditLog with limit 0: %v; want KindInvalid", err)
		}
	})
	t.Run("invalid text", func(t *testing.T) {
		s := open(t)
		err := s.AppendAudit(t.Context(), event("ok", "a"), event("bad", "\x00"))
		if mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("AppendAudit with a NUL: %v; want KindInvalid", err)
		}
		wantChainLen(t, s, 0)
	})
	t.Run("chain after mixed writes", func(t *testing.T) {
		s := open(t)
		want := int64(0)
		for i := range 10 {
			secret, serial, next := fmt.Sprint("t", i), serialOf(2*i), serialOf(2*i+1)
			mustCreateToken(t, s, token(secret))
			want++
			renew := mtlsid.Issuance{At: at(2), Certificate: certificate(next, "id"+serial), RevokeSerial: serial,
				Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertRenewed, next)}}
			// The second item fails (the token is used by the first), and
			// its audit events must not join the chain.
			errs := issue(t, s, enroll(at(1), secret, "id"+serial, serial), enroll(at(1), secret, "x"+serial, "x"+serial))
			if errs[0] != nil || !errors.Is(errs[1], mtlsid.ErrTokenUsed) {
				t.Fatalf("round %d: errs %v", i, errs)
			}
			want += 2
			mustIssue(t, s, renew)
			want++
			if i%3 == 0 {
				if err := s.Revoke(t.Context(), mtlsid.Revocation{Serial: next, At: at(3), Audit: event(mtlsid.AuditCertRevoked, next)}); err != nil {
					t.Fatal(err)
				}
				want++
			}
			if err := s.AppendAudit(t.Context(), event("a", serial), event("b", serial)); err != nil {
				t.Fatal(err)
			}
			want += 2
			if _, err := s.NextCRLNumber(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		for _, pageSize := range []int{1, 7, 1000} {
			n, err := VerifyChain(t.Context(), s, pageSize)
			if err != nil || n != want {
				t.Errorf("VerifyChain with pages of %d = %d, %v; want %d, nil", pageSize, n, err, want)
			}
		}
	})
}

// testConcurrency issues batches from several goroutines at once; the audit
// chain must come out whole, with no fork and no gap.
func testConcurrency(t *testing.T, open func(t *testing.T) mtlsid.Store) {
	const workers, batches, size = 8, 4, 8
	s := open(t)
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				items := make([]mtlsid.Issuance, size)
				for i := range items {
					serial := serialOf(((w*batches)+b)*size + i)
					items[i] = mtlsid.Issuance{At: at(1), Identity: identity("id" + serial), Certificate: certificate(serial, "id"+serial),
						Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertIssued, serial)}}
				}
				errs, err := s.Issue(t.Context(), items)
				if err == nil {
					err = errors.Join(errs...)
				}
				if err != nil {
					errc <- fmt.Errorf("worker %d, batch %d: %w", w, b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	wantChainLen(t, s, workers*batches*size)
	for i := range workers * batches * size {
		mustCertificate(t, s, serialOf(i))
	}
}
