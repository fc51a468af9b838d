package sdk_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// TestCacheStats: the first lookup of a certificate asks the authority
// (a miss, observed), the next ones are hits.
func TestCacheStats(t *testing.T) {
	e := newEnv(t, sqliteStore(t))
	var inquiries atomic.Int32
	mw, err := sdk.NewMiddleware(context.Background(), e.newClient(), sdk.WithoutRevocationEvents(),
		sdk.WithInquiryObserver(func(took time.Duration, err error) {
			if took > 0 {
				inquiries.Add(1)
			}
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()
	alice := e.enroll("alice")
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice.cert}, VerifiedChains: [][]*x509.Certificate{{alice.cert}}}
	for range 3 {
		_, _ = mw.IdentifyTLS(context.Background(), cs) // PB 0003: not shared yet, cached briefly
	}
	if s := mw.CacheStats(); s.Hits != 2 || s.Misses != 1 || s.Size != 1 {
		t.Errorf("stats %+v, want 2 hits, 1 miss, 1 entry", s)
	}
	if n := inquiries.Load(); n != 1 {
		t.Errorf("%d inquiries observed, want 1", n)
	}
}
