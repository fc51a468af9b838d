package authority

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/ca"
)

// Config configures an Authority. Store and CA are required; every other
// field has a documented default.
type Config struct {
	Store mtlsid.Store
	CA    *ca.CA
	// Logger receives operational logs. Nil discards them.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// Rand is the source of token secrets and generated keys. Nil means
	// crypto/rand.
	Rand io.Reader
	// TokenLifetime is how long a minted token stays valid when the request
	// names no lifetime. Zero means 24 hours.
	TokenLifetime time.Duration
	// MaxBatch bounds how many issuances one store transaction carries.
	// Zero means 256.
	MaxBatch int
	// OnRevoke, if set, is called after every committed revocation, e.g. to
	// refresh the CRL. It must not block for long.
	OnRevoke func(ctx context.Context)
	// OnIssue, if set, is called once for every certificate committed.
	OnIssue func(profile mtlsid.Profile)
	// BaseDomain is the parent of services' default domains
	// (<service>.<org>.<BaseDomain>). Empty means "mtls.local".
	BaseDomain string
	// Verifier checks domain challenges. Nil means domains other than the
	// default ones cannot be verified (KindNotImplemented).
	Verifier DomainVerifier
	// OpenSignup lets people sign up without an enrollment token (see
	// SignUp). False means a token is needed.
	OpenSignup bool
	// CacheTTL bounds how long an Identity-Inquiry answer read from memory
	// may lag the database if an event was missed. Zero means
	// DefaultCacheTTL.
	CacheTTL time.Duration
}

// Authority runs mtlsid's use cases. It is safe for concurrent use. It
// follows the store's events (see mtlsid.FleetStore.Follow) from New to
// Close, so that a change made by any node sharing the database drops
// what this node cached and reaches its subscribers. Close stops its
// group committer and the following; calls after Close fail.
type Authority struct {
	store    mtlsid.Store
	ca       *ca.CA
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	tokenTTL time.Duration
	onRevoke func(context.Context)
	onIssue  func(mtlsid.Profile)
	commit   *committer

	baseDomain string
	verifier   DomainVerifier
	openSignup bool
	recent     *recentCalls
	cache      *readCache
	bus        *bus
	stopFollow context.CancelFunc
	followDone chan struct{}
}

// followWait bounds how long New waits for the store's events to flow.
const followWait = 5 * time.Second

// New returns an Authority for cfg, starts its group committer, and
// starts following the store's events, waiting up to five seconds for
// them to flow.
func New(cfg Config) (*Authority, error) {
	if cfg.Store == nil {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "authority: no store")
	}
	if cfg.CA == nil {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "authority: no CA")
	}
	a := &Authority{
		store:    cfg.Store,
		ca:       cfg.CA,
		log:      cfg.Logger,
		now:      cfg.Now,
		rand:     cfg.Rand,
		tokenTTL: cfg.TokenLifetime,
		onRevoke: cfg.OnRevoke,
		onIssue:  cfg.OnIssue,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.tokenTTL <= 0 {
		a.tokenTTL = 24 * time.Hour
	}
	maxBatch := cfg.MaxBatch
	if maxBatch <= 0 {
		maxBatch = 256
	}
	a.baseDomain = cfg.BaseDomain
	if a.baseDomain == "" {
		a.baseDomain = "mtls.local"
	}
	if !validHostname(a.baseDomain) || strings.HasPrefix(a.baseDomain, "*") {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "authority: base domain %q is not a domain name", a.baseDomain)
	}
	a.verifier = cfg.Verifier
	a.openSignup = cfg.OpenSignup
	a.recent = newRecentCalls(recentPerIdentity, recentIdentities)
	ttl := cfg.CacheTTL
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	a.cache = newReadCache(ttl, a.now)
	a.bus = newBus()
	a.commit = newCommitter(cfg.Store, maxBatch, a.log)
	ctx, cancel := context.WithCancel(context.Background())
	a.stopFollow, a.followDone = cancel, make(chan struct{})
	following := make(chan struct{})
	go func() { defer close(a.followDone); a.follow(ctx, following) }()
	// Wait until the events flow, so that a subscriber of this node misses
	// none; a database slow to answer only delays that (its reconnection
	// restarts the subscribers that came before).
	select {
	case <-following:
	case <-time.After(followWait):
		a.log.Warn("not following the database's events yet; going on", "waited", followWait)
	}
	return a, nil
}

// Close stops following the store's events, and the group committer after
// the batch in flight. It is safe to call more than once.
func (a *Authority) Close() {
	a.stopFollow()
	<-a.followDone
	a.commit.close()
}

// CA returns the authority's certificate authority.
func (a *Authority) CA() *ca.CA { return a.ca }

// Store returns the authority's store.
func (a *Authority) Store() mtlsid.Store { return a.store }

// clock returns the current time truncated to the precision the stores keep,
// so what is hashed into the audit chain is what is stored.
func (a *Authority) clock() time.Time { return a.now().UTC().Truncate(time.Microsecond) }

// issue signs nothing: it commits a prepared issuance through the group
// committer and reports the item's own outcome.
func (a *Authority) issue(ctx context.Context, it mtlsid.Issuance) error {
	err := a.commit.submit(ctx, it)
	if err == nil && a.onIssue != nil {
		a.onIssue(it.Certificate.Profile)
	}
	return err
}
