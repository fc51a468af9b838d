package revocation

import (
	"bytes"
	"context"
	"crypto/x509"
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
	// SaveCRL stores crl unless the stored one has the same or a larger
	// number, and reports whether it did.
	SaveCRL(ctx context.Context, crl mtlsid.CRL) (bool, error)
	// CurrentCRL returns the stored CRL: mtlsid.ErrNotFound if none.
	CurrentCRL(ctx context.Context) (*mtlsid.CRL, error)
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
// HTTP. The CRL is also kept in the store, so that every node sharing the
// database serves the same one (Load) and its numbers never go down. It is
// safe for concurrent use.
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
	serials    map[string]struct{} // decimal serials listed
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

// Refresh makes and signs a new CRL from the store, saves it there and
// publishes it. On failure the CRL published before stays, and the error
// is returned for the caller to log or retry. The authority calls it after
// every revocation.
//
// Any node may refresh at any time: the number is drawn before the revoked
// certificates are read, so of two refreshes the one with the larger
// number read the list later, and the store keeps only the larger. If a
// larger one is stored already, that one is published instead.
func (c *CRL) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	number, err := c.cfg.Store.NextCRLNumber(ctx)
	if err != nil {
		return fmt.Errorf("crl: next number: %w", err)
	}
	now := c.cfg.Now().UTC().Truncate(time.Second)
	revoked, err := c.cfg.Store.RevokedCertificates(ctx, now)
	if err != nil {
		return fmt.Errorf("crl: list revoked certificates: %w", err)
	}
	next := now.Add(c.cfg.Validity)
	der, err := c.cfg.Sign(big.NewInt(number), revoked, now, next)
	if err != nil {
		return fmt.Errorf("crl: sign: %w", err)
	}
	saved, err := c.cfg.Store.SaveCRL(ctx, mtlsid.CRL{Number: number, DER: der, ThisUpdate: now, NextUpdate: next})
	if err != nil {
		return fmt.Errorf("crl: save: %w", err)
	}
	if !saved {
		_, err := c.load(ctx)
		return err
	}
	serials := make(map[string]struct{}, len(revoked))
	for _, r := range revoked {
		serials[r.Serial] = struct{}{}
	}
	c.publish(&signedCRL{der: der, number: number, thisUpdate: now, nextUpdate: next, serials: serials})
	c.log.InfoContext(ctx, "crl published", "number", number, "revoked", len(revoked), "next_update", next)
	return nil
}

// publish serves s unless a CRL with a larger number is served already.
// Callers hold c.mu.
func (c *CRL) publish(s *signedCRL) {
	if cur := c.current.Load(); cur == nil || cur.number < s.number {
		c.current.Store(s)
	}
}

// Load publishes the CRL stored by any node if it is newer than the one
// this node serves, and reports whether it was. No CRL stored is no error.
func (c *CRL) Load(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.load(ctx)
}

func (c *CRL) load(ctx context.Context) (bool, error) {
	st, err := c.cfg.Store.CurrentCRL(ctx)
	if mtlsid.ErrorKind(err) == mtlsid.KindNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("crl: load: %w", err)
	}
	if cur := c.current.Load(); cur != nil && cur.number >= st.Number {
		return false, nil
	}
	rl, err := x509.ParseRevocationList(st.DER)
	if err != nil {
		return false, fmt.Errorf("crl: stored CRL %d: %w", st.Number, err)
	}
	serials := make(map[string]struct{}, len(rl.RevokedCertificateEntries))
	for _, e := range rl.RevokedCertificateEntries {
		serials[e.SerialNumber.String()] = struct{}{}
	}
	c.publish(&signedCRL{der: st.DER, number: st.Number, thisUpdate: st.ThisUpdate, nextUpdate: st.NextUpdate, serials: serials})
	c.log.DebugContext(ctx, "crl loaded", "number", st.Number)
	return true, nil
}

// Lists reports whether the CRL served lists the decimal serial.
func (c *CRL) Lists(serial string) bool {
	s := c.current.Load()
	if s == nil {
		return false
	}
	_, ok := s.serials[serial]
	return ok
}

// ThisUpdate returns when the CRL served was made, or the zero time if
// there is none.
func (c *CRL) ThisUpdate() time.Time {
	if s := c.current.Load(); s != nil {
		return s.thisUpdate
	}
	return time.Time{}
}

// NextUpdate returns the nextUpdate of the CRL served, or the zero time if
// there is none.
func (c *CRL) NextUpdate() time.Time {
	if s := c.current.Load(); s != nil {
		return s.nextUpdate
	}
	return time.Time{}
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
