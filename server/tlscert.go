package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/internal/atomicfile"
)

// servingCert keeps the authority's own TLS certificate: loaded from the
// data directory when it still fits, otherwise issued anew by the
// authority, and replaced before it expires. A failed renewal keeps the
// current certificate.
type servingCert struct {
	auth      *authority.Authority
	dir       string
	hostnames []string
	lifetime  time.Duration
	now       func() time.Time
	current   atomic.Pointer[tls.Certificate]
}

// get is the tls.Config.GetCertificate hook.
func (s *servingCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.current.Load()
	if c == nil {
		return nil, errors.New("no serving certificate")
	}
	return c, nil
}

// ensure loads the stored certificate, or issues a new one when there is
// none, it names other hosts, is signed by another CA, or is due for
// renewal. It reports whether it issued one.
func (s *servingCert) ensure(ctx context.Context) (bool, error) {
	if c, err := s.load(); err == nil && s.fits(c) {
		s.current.Store(c)
		return false, nil
	}
	out, err := s.auth.IssueServerCertificate(ctx, s.hostnames, s.lifetime)
	if err != nil {
		return false, fmt.Errorf("issue serving certificate: %w", err)
	}
	keyPEM, err := out.PrivateKeyPEM()
	if err != nil {
		return false, err
	}
	certPEM := append(out.CertificatePEM(), out.ChainPEM()...)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return false, err
	}
	if err := atomicfile.Write(filepath.Join(s.dir, "server.key"), keyPEM, 0o600); err != nil {
		return false, err
	}
	if err := atomicfile.Write(filepath.Join(s.dir, "server.crt"), certPEM, 0o644); err != nil {
		return false, err
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, err
	}
	s.current.Store(&c)
	return true, nil
}

func (s *servingCert) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(filepath.Join(s.dir, "server.crt"), filepath.Join(s.dir, "server.key"))
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// fits reports whether c can keep serving: same names, issued by the
// current CA, and not yet two thirds through its life.
func (s *servingCert) fits(c *tls.Certificate) bool {
	leaf := c.Leaf
	if leaf == nil {
		return false
	}
	ca := s.auth.CA()
	if leaf.CheckSignatureFrom(ca.Issuer()) != nil {
		return false
	}
	if !slices.Equal(certNames(leaf), normalizeNames(s.hostnames)) {
		return false
	}
	return s.now().Before(mtlsid.RenewalPoint(leaf.NotBefore, leaf.NotAfter))
}

// renewAt returns when the current certificate should be replaced.
func (s *servingCert) renewAt() time.Time {
	c := s.current.Load()
	if c == nil || c.Leaf == nil {
		return s.now()
	}
	return mtlsid.RenewalPoint(c.Leaf.NotBefore, c.Leaf.NotAfter)
}

func certNames(c *x509.Certificate) []string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	slices.Sort(names)
	return names
}

func normalizeNames(hosts []string) []string {
	var names []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSpace(h))
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		}
		names = append(names, h)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// pemCerts encodes certificates as PEM.
func pemCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}
