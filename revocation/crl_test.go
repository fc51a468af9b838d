package revocation

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mtlsid/mtlsid"
)

func newTestCRL(t *testing.T, p *testPKI, now func() time.Time) *CRL {
	t.Helper()
	c, err := NewCRL(CRLConfig{Sign: p.ca.CreateCRL, Store: p.store, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCRLRefreshAndServe(t *testing.T) {
	p := newTestPKI(t)
	c := newTestCRL(t, p, nil)
	srv := httptest.NewServer(c)
	defer srv.Close()

	if c.Current() != nil {
		t.Error("Current before the first refresh")
	}
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "not been generated") {
		t.Errorf("before refresh: %s %q", resp.Status, body)
	}

	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	first := parseCRL(t, p, c.Current())
	if len(first.RevokedCertificateEntries) != 0 || first.Number.Int64() != 1 {
		t.Errorf("first CRL: %d entries, number %v", len(first.RevokedCertificateEntries), first.Number)
	}
	if got := first.NextUpdate.Sub(first.ThisUpdate); got != DefaultCRLValidity {
		t.Errorf("validity %v", got)
	}

	serial := p.leaf.SerialNumber.String()
	p.store.revoke(serial, time.Now().Add(-time.Minute), mtlsid.ReasonKeyCompromise)
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	second := parseCRL(t, p, c.Current())
	if second.Number.Cmp(first.Number) <= 0 || len(second.RevokedCertificateEntries) != 1 ||
		second.RevokedCertificateEntries[0].SerialNumber.Cmp(p.leaf.SerialNumber) != 0 ||
		second.RevokedCertificateEntries[0].ReasonCode != mtlsid.ReasonKeyCompromise {
		t.Errorf("second CRL: number %v, entries %+v", second.Number, second.RevokedCertificateEntries)
	}

	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/pkix-crl" || string(body) != string(c.Current()) {
		t.Errorf("GET: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	if etag := resp.Header.Get("ETag"); etag != `"2"` {
		t.Errorf("ETag %q", etag)
	}

	// A failed refresh keeps the CRL published before.
	p.store.setErr(mtlsid.ErrUnavailable)
	if err := c.Refresh(ctx); !errors.Is(err, mtlsid.ErrUnavailable) {
		t.Errorf("Refresh with the store down: %v", err)
	}
	p.store.setErr(nil)
	if parseCRL(t, p, c.Current()).Number.Cmp(second.Number) != 0 {
		t.Error("a failed refresh replaced the CRL")
	}

	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	crlDER := filepath.Join(dir, "crl.der")
	if err := os.WriteFile(crlDER, c.Current(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "crl", "-inform", "DER", "-in", crlDER, "-text", "-noout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	// openssl prints whole octets: an odd number of hex digits gets a 0.
	hex := strings.ToUpper(p.leaf.SerialNumber.Text(16))
	if len(hex)%2 == 1 {
		hex = "0" + hex
	}
	if !strings.Contains(string(out), "Serial Number: "+hex) {
		t.Errorf("openssl crl does not list %s:\n%s", hex, out)
	}

	crlPEM := filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(crlPEM, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: c.Current()}), 0o600); err != nil {
		t.Fatal(err)
	}
	chain := writePEM(t, dir, "chain.pem", p.ca.Root(), p.ca.Issuer())
	leaf := writePEM(t, dir, "leaf.pem", p.leaf)
	out, err = exec.Command(openssl, "verify", "-crl_check", "-CAfile", chain, "-CRLfile", crlPEM, leaf).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate revoked") {
		t.Errorf("openssl verify -crl_check: %v\n%s", err, out)
	}
}

func parseCRL(t *testing.T, p *testPKI, der []byte) *x509.RevocationList {
	t.Helper()
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(p.ca.Issuer()); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	return crl
}

func TestCRLRun(t *testing.T) {
	p := newTestPKI(t)
	synctest.Test(t, func(t *testing.T) {
		var signed atomic.Int32
		failing := atomic.Bool{}
		c, err := NewCRL(CRLConfig{
			Store: p.store,
			Sign: func(n *big.Int, revoked []mtlsid.Certificate, this, next time.Time) ([]byte, error) {
				if failing.Load() {
					return nil, errors.New("signer down")
				}
				signed.Add(1)
				return p.ca.CreateCRL(n, revoked, this, next)
			},
			Validity: 24 * time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			c.Run(ctx, 48*time.Hour) // cut to Validity/3 = 8h
			close(done)
		}()
		synctest.Wait()
		if signed.Load() != 1 || c.Current() == nil {
			t.Fatalf("after start: %d CRLs", signed.Load())
		}
		time.Sleep(8*time.Hour - time.Second)
		synctest.Wait()
		if signed.Load() != 1 {
			t.Errorf("refreshed before the interval: %d", signed.Load())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if signed.Load() != 2 {
			t.Errorf("after 8h: %d CRLs, want 2", signed.Load())
		}

		// A failure is retried within a minute, not after 8 hours.
		failing.Store(true)
		time.Sleep(8 * time.Hour)
		synctest.Wait()
		failing.Store(false)
		time.Sleep(time.Minute)
		synctest.Wait()
		if signed.Load() != 3 {
			t.Errorf("after a failure and a minute: %d CRLs, want 3", signed.Load())
		}

		cancel()
		synctest.Wait()
		select {
		case <-done:
		default:
			t.Error("Run did not stop when its context ended")
		}
	})
}

func TestNewCRLValidates(t *testing.T) {
	p := newTestPKI(t)
	for name, cfg := range map[string]CRLConfig{
		"no sign":  {Store: p.store},
		"no store": {Sign: p.ca.CreateCRL},
		"negative": {Sign: p.ca.CreateCRL, Store: p.store, Validity: -time.Hour},
	} {
		if _, err := NewCRL(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
