package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/mtlsid/mtlsid"
)

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
