package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
)

// TestAutoServerCertificate: a tls.auto perimeter serves the service's
// server certificate from the authority (its default domain
// shop.acme.mtls.test), stored 0600 in the state directory, reused by the
// next start, and renewed in the background when due.
func TestAutoServerCertificate(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.consent(alice)
	up := newUpstream(t)
	mw := newMW(t, e)
	const host = "shop.acme.mtls.test"
	stateDir := filepath.Join(t.TempDir(), "state")
	cfg := gateway.Config{StateDir: stateDir, Client: e.client, Perimeters: []gateway.Perimeter{{
		Name: "shop", Listen: "127.0.0.1:0", Hostnames: []string{host},
		TLS: gateway.TLSFiles{Auto: true}, Upstream: up.ts.URL,
	}}}
	served := func(g *gateway.Gateway) *x509.Certificate {
		t.Helper()
		c, err := tls.Dial("tcp", g.Addrs()[0].String(), &tls.Config{RootCAs: e.roots, ServerName: host})
		if err != nil {
			t.Fatalf("handshake verifying the authority's server certificate: %v", err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}

	g := startGateway(t, cfg, mw, nil)
	leaf := served(g)
	if !slices.Contains(leaf.DNSNames, host) || leaf.VerifyHostname(host) != nil {
		t.Errorf("served certificate names %v, want %s", leaf.DNSNames, host)
	}
	for _, f := range []string{"server.cer", "server.key"} {
		fi, err := os.Stat(filepath.Join(stateDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	hc := httpsClient(g.Addrs()[0].String(), host, e.roots, &alice.tls, true)
	if s, err := getStatus(hc, "https://"+host+"/"); s != 200 {
		t.Fatalf("request through the auto certificate: %d %v", s, err)
	}
	if st := g.Status(); !st.Perimeters[0].Certificate.Auto || st.Perimeters[0].Certificate.Serial != "0x"+leaf.SerialNumber.Text(16) {
		t.Errorf("status certificate: %+v", st.Perimeters[0].Certificate)
	}

	// A second start reads the stored certificate: no new one.
	g2 := startGateway(t, cfg, mw, nil)
	if again := served(g2); again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("restart obtained a new certificate %v instead of reusing %v", again.SerialNumber, leaf.SerialNumber)
	}

	// Five sixths of the life later (a fake clock), the background
	// renewal forces a new one, served to new handshakes while a
	// connection made before keeps working.
	late := cfg
	late.Clock = func() time.Time { return leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 6 / 7) }
	late.StateDir = stateDir
	g3, err := gateway.New(late, mw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g3.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g3.Serve() }()
	defer func() {
		if err := g3.Shutdown(t.Context()); err != nil {
			t.Error(err)
		}
		<-done
	}()
	waitUntil(t, "the renewed certificate", func() bool {
		return served(g3).SerialNumber.Cmp(leaf.SerialNumber) != 0
	})
	renewed := served(g3)
	if !slices.Contains(renewed.DNSNames, host) {
		t.Errorf("renewed certificate names %v", renewed.DNSNames)
	}
	if s, err := getStatus(hc, "https://"+host+"/"); s != 200 {
		t.Errorf("connection made before the renewal: %d %v", s, err)
	}

	bad := cfg
	bad.StateDir = ""
	if err := bad.Validate(); err == nil {
		t.Error("tls.auto without state_dir accepted")
	}
}
