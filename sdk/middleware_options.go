package sdk

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// MiddlewareOption configures a Middleware made by NewMiddleware.
type MiddlewareOption func(*mwConfig) error

type mwConfig struct {
	proxies     []netip.Prefix
	proxyCerts  map[[32]byte]bool
	nginxHeader string
	cacheSize   int
	cacheTTL    time.Duration
	sessionKey  []byte
	cookieName  string
	sessionTTL  time.Duration
	publicURL   *url.URL
	signupURL   string
	page        func(http.ResponseWriter, *http.Request, Page)
	noRedirect  bool
	noEvents    bool
	clientCAs   *x509.CertPool
	now         func() time.Time
	log         *slog.Logger
	inquired    func(time.Duration, error) // see WithInquiryObserver (stats.go)
}

// Middleware defaults.
const (
	DefaultCacheSize  = 10_000
	DefaultCacheTTL   = 60 * time.Second
	DefaultSessionTTL = 12 * time.Hour
	DefaultCookieName = "mtlsid_session"
	// negativeTTL bounds how long a PB answer (needs validation, revoked,
	// ...) is cached.
	negativeTTL = 5 * time.Second
)

// WithTrustedProxies trusts forwarded-certificate headers on requests
// from these addresses ("10.0.0.0/8", "127.0.0.1"). Headers from every
// other address are removed before the handler sees the request.
func WithTrustedProxies(cidrs ...string) MiddlewareOption {
	return func(c *mwConfig) error {
		for _, s := range cidrs {
			if !strings.Contains(s, "/") {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return fmt.Errorf("sdk: trusted proxy %q: %w", s, err)
				}
				c.proxies = append(c.proxies, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return fmt.Errorf("sdk: trusted proxy %q: %w", s, err)
			}
			c.proxies = append(c.proxies, p.Masked())
		}
		return nil
	}
}

// WithTrustedProxyCerts trusts forwarded headers on requests whose TLS
// client certificate (verified, see TLSConfig) has one of these SHA-256
// fingerprints (hex, colons allowed): the proxy's own certificate, which
// is stronger than an address. That certificate never identifies a
// person itself.
func WithTrustedProxyCerts(fingerprints ...string) MiddlewareOption {
	return func(c *mwConfig) error {
		if c.proxyCerts == nil {
			c.proxyCerts = make(map[[32]byte]bool)
		}
		for _, f := range fingerprints {
			b, err := hex.DecodeString(strings.ReplaceAll(f, ":", ""))
			if err != nil || len(b) != 32 {
				return fmt.Errorf("sdk: %q is not a SHA-256 fingerprint", f)
			}
			c.proxyCerts[[32]byte(b)] = true
		}
		return nil
	}
}

// WithNginxHeader names the header an nginx proxy puts
// $ssl_client_escaped_cert in (default "X-SSL-Client-Cert").
func WithNginxHeader(name string) MiddlewareOption {
	return func(c *mwConfig) error { c.nginxHeader = http.CanonicalHeaderKey(name); return nil }
}

// WithCache bounds the identity cache to size certificates and ttl per
// answer (defaults DefaultCacheSize, DefaultCacheTTL). Revocations the
// authority streams drop an answer at once; ttl bounds everything else
// (role changes, and revocations made on another node of a fleet).
func WithCache(size int, ttl time.Duration) MiddlewareOption {
	return func(c *mwConfig) error {
		if size <= 0 || ttl <= 0 {
			return errors.New("sdk: cache size and TTL must be positive")
		}
		c.cacheSize, c.cacheTTL = size, ttl
		return nil
	}
}

// WithSessionKey signs the redirect flow's session cookie with key (at
// least 32 bytes; keep it secret and the same on every instance). Without
// it a random key is made at start, so sessions end at a restart.
func WithSessionKey(key []byte) MiddlewareOption {
	return func(c *mwConfig) error {
		if len(key) < 32 {
			return errors.New("sdk: session key must be at least 32 bytes")
		}
		c.sessionKey = key
		return nil
	}
}

// WithSessionCookie names the session cookie and sets its lifetime
// (defaults DefaultCookieName, DefaultSessionTTL).
func WithSessionCookie(name string, ttl time.Duration) MiddlewareOption {
	return func(c *mwConfig) error {
		if name == "" || ttl <= 0 {
			return errors.New("sdk: cookie name and lifetime are required")
		}
		c.cookieName, c.sessionTTL = name, ttl
		return nil
	}
}

// WithPublicURL is the service's address as browsers see it (such as
// https://shop.example.com), used to build the return URL of the redirect
// flow. It must be one of the service's verified domains. Default: the
// request's scheme and Host.
func WithPublicURL(u string) MiddlewareOption {
	return func(c *mwConfig) error {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
			return fmt.Errorf("sdk: public URL %q is not an absolute http(s) URL", u)
		}
		p.Path, p.RawQuery = strings.TrimRight(p.Path, "/"), ""
		c.publicURL = p
		return nil
	}
}

// WithSignupURL is where the default page sends people without a
// certificate (default: the authority's home page, which explains how to
// enroll).
func WithSignupURL(u string) MiddlewareOption {
	return func(c *mwConfig) error { c.signupURL = u; return nil }
}

// WithPage replaces the page shown instead of the handler (no
// certificate, not allowed, authority unreachable). render must write the
// status in p.Status.
func WithPage(render func(w http.ResponseWriter, r *http.Request, p Page)) MiddlewareOption {
	return func(c *mwConfig) error { c.page = render; return nil }
}

// WithoutRedirect turns the redirect flow off: people without a
// certificate (or whose certificate needs validation) get the page.
func WithoutRedirect() MiddlewareOption {
	return func(c *mwConfig) error { c.noRedirect = true; return nil }
}

// WithoutRevocationEvents does not follow the authority's revocation
// stream; only the cache TTL bounds how long a revoked certificate is
// accepted.
func WithoutRevocationEvents() MiddlewareOption {
	return func(c *mwConfig) error { c.noEvents = true; return nil }
}

// WithClientCAs is the pool TLSConfig verifies client certificates with
// (default: the authority's trust chain, downloaded by NewMiddleware).
func WithClientCAs(pool *x509.CertPool) MiddlewareOption {
	return func(c *mwConfig) error { c.clientCAs = pool; return nil }
}

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) MiddlewareOption {
	return func(c *mwConfig) error { c.now = now; return nil }
}

// WithMiddlewareLogger sends the middleware's logs to l (nil discards).
func WithMiddlewareLogger(l *slog.Logger) MiddlewareOption {
	return func(c *mwConfig) error { c.log = l; return nil }
}

func randomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return b
}
