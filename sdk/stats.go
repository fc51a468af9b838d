package sdk

import (
	"sync/atomic"
	"time"
)

// cacheCounters count the identity cache's answers; they are read by
// Middleware.CacheStats.
type cacheCounters struct {
	hits, misses atomic.Uint64
}

// CacheStats are counts of a middleware's identity cache, for metrics.
type CacheStats struct {
	// Hits are lookups answered from the cache; Misses the others (each
	// asked the authority, or waited for the inquiry about the same
	// certificate already in flight).
	Hits, Misses uint64
	// Size is the number of answers held now.
	Size int
}

// CacheStats returns the cache's counts since the middleware was made.
func (m *Middleware) CacheStats() CacheStats {
	m.cache.mu.Lock()
	size := len(m.cache.bySerial)
	m.cache.mu.Unlock()
	return CacheStats{Hits: m.cache.stats.hits.Load(), Misses: m.cache.stats.misses.Load(), Size: size}
}

// WithInquiryObserver calls observe after every inquiry the middleware
// makes to the authority about a certificate, with how long it took
// (retries included) and its error (nil, or an outcome or transport
// error), so that a program can export the authority's latency. observe
// must be fast and safe for concurrent use.
func WithInquiryObserver(observe func(took time.Duration, err error)) MiddlewareOption {
	return func(c *mwConfig) error { c.inquired = observe; return nil }
}
