package sdk

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
)

// CertSource holds the service's API certificate and hands it to TLS at
// every handshake (tls.Config.GetClientCertificate), so that it can be
// replaced while the service runs. It is safe for concurrent use.
type CertSource struct {
	cur               atomic.Pointer[tls.Certificate]
	certFile, keyFile string
}

// NewCertSource returns a source holding cert. Its leaf must parse.
func NewCertSource(cert tls.Certificate) (*CertSource, error) {
	s := &CertSource{}
	if err := s.Set(cert); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadCertSource reads a PEM certificate (with its chain) and key. Reload
// reads them again; a Renewer writes them.
func LoadCertSource(certFile, keyFile string) (*CertSource, error) {
	s := &CertSource{certFile: certFile, keyFile: keyFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again. On failure the current certificate stays.
func (s *CertSource) Reload() error {
	if s.certFile == "" {
		return errors.New("sdk: certificate source has no files")
	}
	c, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("sdk: load API certificate: %w", err)
	}
	return s.Set(c)
}

// Set replaces the certificate. New connections use it at once;
// connections already open keep the one they were made with.
func (s *CertSource) Set(cert tls.Certificate) error {
	if len(cert.Certificate) == 0 {
		return errors.New("sdk: empty certificate")
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return fmt.Errorf("sdk: parse API certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	s.cur.Store(&cert)
	return nil
}

// Certificate returns the current certificate (nil before the first Set).
func (s *CertSource) Certificate() *tls.Certificate { return s.cur.Load() }

// Leaf returns the current certificate's parsed leaf.
func (s *CertSource) Leaf() *x509.Certificate {
	if c := s.cur.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate callback.
func (s *CertSource) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil // no certificate: the server answers ER 1100
}
