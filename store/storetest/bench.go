package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/mtlsid/mtlsid"
)

// BenchRelation measures Relation, the read behind every identity inquiry,
// of a person that a service knows well and two others know a little:
// from one goroutine, and from GOMAXPROCS at once. It reports
// relations/s. open is as for Bench.
func BenchRelation(b *testing.B, open func(b *testing.B) mtlsid.Store) {
	s := open(b)
	buildWorld(b, s)
	ctx := b.Context()
	c := mtlsid.Change{At: at(10), By: prodSerial, Audit: event(mtlsid.AuditTrustAdded, "bob")}
	for _, role := range []string{"viewer", "editor", "admin"} {
		must(b, "GrantRole", s.GrantRole(ctx, grant(appID, "bob", role, 10), c))
	}
	must(b, "BindLocalUser", s.BindLocalUser(ctx, localUser(appID, "bob", "bobby", 10), 0, c))
	must(b, "SetSecret", s.SetSecret(ctx, appID, "bob", "secret", c))
	for _, svc := range []string{appID, webID} {
		must(b, "AddTrust", s.AddTrust(ctx, svc, "bob", 20, c))
		must(b, "RecordConsent", s.RecordConsent(ctx, svc, "bob", at(10), event(mtlsid.AuditConsent, "bob")))
	}
	must(b, "ReportIntrusion", s.ReportIntrusion(ctx, intrusion("ir_1", webID, "bob", bobSerial, 10), c))
	check := func(r *mtlsid.Relation, err error) {
		if err != nil {
			b.Fatalf("Relation: %v", err)
		}
		if len(r.Roles) != 3 || r.LocalUser == nil || r.TrustTotal != 40 {
			b.Fatalf("Relation = %+v", r)
		}
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			check(s.Relation(ctx, appID, "bob"))
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "relations/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				check(s.Relation(ctx, appID, "bob"))
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "relations/s")
	})
}

// Bench measures Issue throughput with batches of 1 and 64 enrollments,
// each creating an identity with a 1 KiB certificate and one audit event,
// and reports certs/s. open must return a new, empty store and close it
// at the end of the benchmark it is given.
func Bench(b *testing.B, open func(b *testing.B) mtlsid.Store) {
	for _, size := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b)
			der := make([]byte, 1024)
			items := make([]mtlsid.Issuance, size)
			n := 0
			for b.Loop() {
				for i := range items {
					n++
					serial := strconv.Itoa(n)
					c := certificate(serial, "id"+serial)
					c.DER = der
					items[i] = mtlsid.Issuance{At: at(1), Identity: identity("id" + serial), Certificate: c,
						Audit: []mtlsid.AuditEvent{event(mtlsid.AuditCertIssued, serial)}}
				}
				errs, err := s.Issue(b.Context(), items)
				if err == nil {
					err = errors.Join(errs...)
				}
				if err != nil {
					b.Fatalf("Issue: %v", err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "certs/s")
		})
	}
}
