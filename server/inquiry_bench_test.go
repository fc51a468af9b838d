package server_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
)

// BenchmarkInquiry measures Identity-Inquiry over keep-alive mTLS with the
// client in the same process (bench/inquiry.sh runs the load generator in
// a separate process against 100,000 identities; this one is for quick
// profiles: -cpuprofile).
func BenchmarkInquiry(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { benchInquiry(b, openSQLite(b)) })
	b.Run("postgres", func(b *testing.B) { benchInquiry(b, openPostgres(b, pgtest.URL(b))) })
}

func benchInquiry(b *testing.B, store mtlsid.Store) {
	e := newEnv(b, store)
	admin := e.enroll("admin", mtlsid.TokenDevice)
	api := e.apiCert(admin, e.org(admin, "bench", "api").ID, false)
	var serials []string
	for range 200 {
		serials = append(serials, e.enroll("person", mtlsid.TokenDevice).serial)
	}
	tr := e.httpClient(&api.tls).Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 64
	client := &sdk.IdentityClient{URL: e.url, HTTP: &http.Client{Transport: tr}}
	var next, failed atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			r, err := client.Do(context.Background(), http.MethodGet, wire.ObjIdentityInquiry, wire.IdentityInquiry{SerialNumber: serials[int(i)%len(serials)]})
			if err != nil || r.Outcome() != wire.PB0003 {
				failed.Add(1)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "inquiries/s")
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d inquiries failed", n)
	}
}
