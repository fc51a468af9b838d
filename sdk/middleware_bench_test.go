package sdk_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/mtlsid/mtlsid/sdk"
)

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkMiddlewareCached is the middleware's cached path: a request
// whose TLS client certificate the cache already holds (OK 0001), through
// Wrap to a handler that reads the profile.
func BenchmarkMiddlewareCached(b *testing.B) {
	e := newEnv(b, sqliteStore(b))
	alice := e.enroll("alice")
	s := e.newService(b)
	if resp, _ := e.signIn(b, s, s.browser(alice), alice, "/hello"); resp.StatusCode != 200 {
		b.Fatal(resp.Status)
	}
	var found bool
	h := s.m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		found = sdk.FromContext(r.Context()) != nil
	}))
	req, _ := http.NewRequest(http.MethodGet, s.public+"/hello", nil)
	req.RemoteAddr = "192.0.2.1:5555"
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice.cert}, VerifiedChains: [][]*x509.Certificate{{alice.cert}}}
	w := &discard{h: http.Header{}}
	h.ServeHTTP(w, req)
	if !found {
		b.Fatal("not identified")
	}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	if !found {
		b.Fatal("not identified")
	}
}
