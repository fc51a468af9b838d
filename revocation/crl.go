package revocation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid"
)

// DefaultCRLValidity is nextUpdate - thisUpdate of a CRL when
// CRLConfig.Validity is zero.
const DefaultCRLValidity = 7 * 24 * time.Hour

// crlRetry is how soon Run tries again after a failed refresh.
const crlRetry = time.Minute

// CRLStore is what the CRL publisher needs from the store.
type CRLStore interface {
	// RevokedCertificates returns the revoked certificates that have not
	// expired at now.
	RevokedCertificates(ctx context.Context, now time.Time) ([]mtlsid.Certificate, error)
	// NextCRLNumber returns a number larger than any it returned before.
	NextCRLNumber(ctx context.Context) (int64, error)
}

// CRLConfig configures a CRL publisher.
type CRLConfig struct {
	// Sign makes the DER CRL (ca.CA.CreateCRL). Required.
	Sign func(number *big.Int, revoked []mtlsid.Certificate, thisUpdate, nextUpdate time.Time) ([]byte, error)
	// Store lists the revoked certificates and numbers the CRLs. Required.
	Store CRLStore
	// Validity is nextUpdate - thisUpdate. Zero: DefaultCRLValidity.
	Validity time.Duration
	Now      func() time.Time // nil: time.Now
	Logger   *slog.Logger     // nil: discard
}

// CRL publishes the issuing CA's certificate revocation list. It keeps the
// current signed CRL in memory, remakes it on Refresh, and serves it over
// HTTP. It is safe for concurrent use.
type CRL struct {
	cfg     CRLConfig
	log     *slog.Logger
	mu      sync.Mutex // one refresh at a time, so numbers only go up
	current atomic.Pointer[signedCRL]
}

type signedCRL struct {
	der        []byte
	number     int64
	thisUpdate time.Time
	nextUpdate time.Time
}

// NewCRL returns a publisher with no CRL yet: call Refresh or Run.
func NewCRL(cfg CRLConfig) (*CRL, error) {
	if cfg.Sign == nil || cfg.Store == nil {
		return nil, errors.New("crl: Sign and Store are required")
	}
	if cfg.Validity < 0 {
		return nil, errors.New("crl: Validity must not be negative")
	}
	if cfg.Validity == 0 {
		cfg.Validity = DefaultCRLValidity
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &CRL{cfg: cfg, log: cfg.Logger}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Refresh makes and signs a new CRL from the store and publishes it. On
// failure the CRL published before stays, and the error is returned for
// the caller to log or retry. The authority calls it after every
// revocation.
func (c *CRL) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now().UTC().Truncate(time.Second)
	revoked, err := c.cfg.Store.RevokedCertificates(ctx, now)
	if err != nil {
		return fmt.Errorf("crl: list revoked certificates: %w", err)
	}
	number, err := c.cfg.Store.NextCRLNumber(ctx)
	if err != nil {
		return fmt.Errorf("crl: next number: %w", err)
	}
	next := now.Add(c.cfg.Validity)
	der, err := c.cfg.Sign(big.NewInt(number), revoked, now, next)
	if err != nil {
		return fmt.Errorf("crl: sign: %w", err)
	}
	c.current.Store(&signedCRL{der: der, number: number, thisUpdate: now, nextUpdate: next})
	c.log.InfoContext(ctx, "crl published", "number", number, "revoked", len(revoked), "next_update", next)
	return nil
}

// Run refreshes the CRL now and then every interval until ctx is done.
// The interval is cut to a day and to a third of Validity, so a running
// node never serves a stale CRL even if a refresh or two fail; zero means
// an hour. A failed refresh is logged and retried within a minute.
func (c *CRL) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Hour
	}
	interval = min(interval, 24*time.Hour, c.cfg.Validity/3)
	// A CRL made just before (serve makes one before it listens) is not
	// signed again at once: the first refresh waits an interval.
	first := time.Duration(0)
	if c.current.Load() != nil {
		first = interval
	}
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait := interval
		if err := c.Refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.ErrorContext(ctx, "crl refresh failed", "error", err.Error())
			wait = min(crlRetry, interval)
		}
		t.Reset(wait)
	}
}

// Current returns the DER of the current CRL, or nil if none was made
// yet. The slice must not be modified.
func (c *CRL) Current() []byte {
	if s := c.current.Load(); s != nil {
		return s.der
	}
	return nil
}

// ServeHTTP serves the current CRL as application/pkix-crl, with
// conditional and range requests. Before the first CRL is made it answers
// 503, so a client never mistakes "no CRL yet" for "nothing revoked".
func (c *CRL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := c.current.Load()
	if s == nil {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "the CRL has not been generated yet; try again in a minute", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/pkix-crl")
	h.Set("ETag", `"`+strconv.FormatInt(s.number, 10)+`"`)
	// The CRL is remade at every revocation: caches may keep it briefly,
	// never until nextUpdate.
	maxAge := min(5*time.Minute, max(0, s.nextUpdate.Sub(c.cfg.Now())))
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge.Seconds())))
	http.ServeContent(w, r, "", s.thisUpdate, bytes.NewReader(s.der))
}
