package sdk

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"
)

// Option configures an IdentityClient made by NewIdentityClient.
type Option func(*clientConfig) error

type clientConfig struct {
	timeout    time.Duration
	retries    int
	backoff    time.Duration
	maxBackoff time.Duration
	roots      *x509.CertPool
	certs      *CertSource
	http       *http.Client
	log        *slog.Logger
	set        bool // made by NewIdentityClient
}

// Defaults of the client's options.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultRetries    = 3
	DefaultBackoff    = 100 * time.Millisecond
	DefaultMaxBackoff = 2 * time.Second
)

// WithTimeout bounds each attempt of a call (default DefaultTimeout); the
// caller's context bounds the whole call, retries included.
func WithTimeout(d time.Duration) Option {
	return func(c *clientConfig) error {
		if d <= 0 {
			return errors.New("sdk: timeout must be positive")
		}
		c.timeout = d
		return nil
	}
}

// WithRetries sets how many times a call is retried after a transient
// failure (default DefaultRetries; 0 disables retries). Only transient
// failures are retried: a connection that could not be made, any network
// error on an inquiry, and 503 / ER 1106 (the authority's database is
// unreachable, so nothing was done).
func WithRetries(n int) Option {
	return func(c *clientConfig) error {
		if n < 0 {
			return errors.New("sdk: retries must not be negative")
		}
		c.retries = n
		return nil
	}
}

// WithBackoff sets the first retry's delay and the cap (defaults
// DefaultBackoff and DefaultMaxBackoff). Each retry doubles the delay,
// with full jitter.
func WithBackoff(first, max time.Duration) Option {
	return func(c *clientConfig) error {
		if first <= 0 || max < first {
			return errors.New("sdk: backoff needs 0 < first <= max")
		}
		c.backoff, c.maxBackoff = first, max
		return nil
	}
}

// WithRootCAs trusts pool for the authority's server certificate (default:
// the system pool).
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *clientConfig) error { c.roots = pool; return nil }
}

// WithRootCAFile trusts the PEM certificates in path (the authority's
// root, as `mtlsid` downloads it).
func WithRootCAFile(path string) Option {
	return func(c *clientConfig) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("sdk: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("sdk: no certificate in %s", path)
		}
		c.roots = pool
		return nil
	}
}

// WithCertificate authenticates with the service's API certificate from
// src, read at every TLS handshake, so that a renewal takes effect
// without a restart.
func WithCertificate(src *CertSource) Option {
	return func(c *clientConfig) error { c.certs = src; return nil }
}

// WithCertificateFiles loads the API certificate from PEM files (see
// LoadCertSource).
func WithCertificateFiles(certFile, keyFile string) Option {
	return func(c *clientConfig) error {
		src, err := LoadCertSource(certFile, keyFile)
		if err != nil {
			return err
		}
		c.certs = src
		return nil
	}
}

// WithHTTPClient uses hc as is, instead of a client the SDK builds: its
// transport must then carry the TLS configuration (roots and API
// certificate), and WithRootCAs and WithCertificate are ignored.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *clientConfig) error { c.http = hc; return nil }
}

// WithLogger sends the client's (and the middleware's) logs to l. Nil,
// the default, discards them.
func WithLogger(l *slog.Logger) Option {
	return func(c *clientConfig) error { c.log = l; return nil }
}
