package sdk_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/mtlsid/mtlsid/sdk"
)

// TestIdentifyTLS covers what the gateway's TCP perimeters rely on:
// only a verified certificate is looked up, and the authority's PB
// answers come back as errors to test with errors.Is. (Identified
// certificates and revocations are tested through the gateway.)
func TestIdentifyTLS(t *testing.T) {
	e := newEnv(t, sqliteStore(t))
	mw, err := sdk.NewMiddleware(context.Background(), e.newClient(), sdk.WithoutRevocationEvents())
	if err != nil {
		t.Fatal(err)
	}
	defer mw.Close()
	alice := e.enroll("alice")
	ctx := context.Background()
	for name, cs := range map[string]*tls.ConnectionState{
		"nil":            nil,
		"no certificate": {},
		"not verified":   {PeerCertificates: []*x509.Certificate{alice.cert}},
	} {
		if p, err := mw.IdentifyTLS(ctx, cs); p != nil || !errors.Is(err, sdk.ErrNoCertificate) {
			t.Errorf("%s: %v %v", name, p, err)
		}
	}
	verified := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice.cert}, VerifiedChains: [][]*x509.Certificate{{alice.cert}}}
	for range 2 { // the second answer comes from the cache
		p, err := mw.IdentifyTLS(ctx, verified)
		if p != nil || !errors.Is(err, sdk.ErrNeedsValidation) || !errors.Is(err, sdk.ErrProblem) {
			t.Fatalf("not yet shared: %v %v", p, err)
		}
	}
}
