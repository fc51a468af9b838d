package revocation

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/ca"
)

// testPKI is a real CA with one issued leaf, kept in a map-backed store.
type testPKI struct {
	ca    *ca.CA
	leaf  *x509.Certificate
	key   crypto.Signer
	store *memStore
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	c, err := ca.Init(filepath.Join(t.TempDir(), "ca"), ca.InitConfig{})
	if err != nil {
		t.Fatal(err)
	}
	c, err = c.WithConfig(ca.Config{OCSPURL: "http://127.0.0.1/ca/ocsp"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.GenerateKey(ca.ECDSAP256, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := c.Issue(ca.Request{Profile: mtlsid.ProfileDevice, PublicKey: key.Public(), CommonName: "laptop", DeviceType: mtlsid.DeviceDesktop})
	if err != nil {
		t.Fatal(err)
	}
	s := newMemStore()
	s.add(mtlsid.Certificate{Serial: leaf.SerialNumber.String(), Profile: mtlsid.ProfileDevice, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, DER: leaf.Raw})
	return &testPKI{ca: c, leaf: leaf, key: key, store: s}
}

// memStore is an in-memory certificate store with failure injection.
type memStore struct {
	mu     sync.Mutex
	certs  map[string]mtlsid.Certificate
	number int64
	crl    *mtlsid.CRL // the stored CRL
	err    error       // returned by every call while set
}

func newMemStore() *memStore { return &memStore{certs: map[string]mtlsid.Certificate{}} }

func (s *memStore) add(c mtlsid.Certificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.certs[c.Serial] = c
}

func (s *memStore) revoke(serial string, at time.Time, reason int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.certs[serial]
	c.RevokedAt, c.RevocationReason = at, reason
	s.certs[serial] = c
}

func (s *memStore) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *memStore) Lookup(_ context.Context, serial string) (*mtlsid.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	c, ok := s.certs[serial]
	if !ok {
		return nil, mtlsid.ErrNotFound
	}
	return &c, nil
}

func (s *memStore) RevokedCertificates(_ context.Context, now time.Time) ([]mtlsid.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	var out []mtlsid.Certificate
	for _, c := range s.certs {
		if c.Revoked() && now.Before(c.NotAfter) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *memStore) NextCRLNumber(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	s.number++
	return s.number, nil
}

func (s *memStore) SaveCRL(_ context.Context, crl mtlsid.CRL) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false, s.err
	}
	if s.crl != nil && s.crl.Number >= crl.Number {
		return false, nil
	}
	s.crl = &crl
	return true, nil
}

func (s *memStore) CurrentCRL(context.Context) (*mtlsid.CRL, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.crl == nil {
		return nil, mtlsid.ErrNotFound
	}
	c := *s.crl
	return &c, nil
}

func writePEM(t *testing.T, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var data []byte
	for _, c := range certs {
		data = append(data, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
