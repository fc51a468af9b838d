// Package ttlcache is a bounded, concurrent map whose entries expire. The
// authority keeps its hot reads in it (certificates and relations behind
// Identity-Inquiry); writers drop the entries they change.
package ttlcache

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"time"
)

const shards = 64

// Cache maps K to V for up to TTL (each entry a little less, at random), holding at most about Max entries. When a
// shard is full, an arbitrary entry of it makes room. It is safe for
// concurrent use. The zero value is not usable: use New.
type Cache[K comparable, V any] struct {
	ttl      time.Duration
	perShard int
	now      func() time.Time
	seed     maphash.Seed
	shards   [shards]shard[K, V]
}

type shard[K comparable, V any] struct {
	mu   sync.RWMutex
	m    map[K]entry[V]
	puts int // since the last sweep
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache. now nil means time.Now.
func New[K comparable, V any](ttl time.Duration, max int, now func() time.Time) *Cache[K, V] {
	if now == nil {
		now = time.Now
	}
	c := &Cache[K, V]{ttl: ttl, perShard: max/shards + 1, now: now, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = make(map[K]entry[V])
	}
	return c
}

func (c *Cache[K, V]) shard(k K) *shard[K, V] {
	return &c.shards[maphash.Comparable(c.seed, k)%shards]
}

// Get returns the live value for k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put stores v for k.
func (c *Cache[K, V]) Put(k K, v V) {
	s := c.shard(k)
	now := c.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Expired entries are swept out once the puts since the last sweep
	// reach half the shard's size, a constant cost per put: a cache that
	// kept every key it was ever given, up to its bound, held 100,000
	// certificates after a load asking about each once, and the
	// collector's marking of them showed in the answers' tail latency.
	if s.puts++; s.puts >= max(len(s.m)/2, 16) {
		s.puts = 0
		for old, e := range s.m {
			if !now.Before(e.expires) {
				delete(s.m, old)
			}
		}
	}
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		for old := range s.m {
			delete(s.m, old)
			break
		}
	}
	// Up to a fifth less than the TTL, at random, so that entries cached
	// together do not all expire together and send a burst to the database.
	ttl := c.ttl - time.Duration(rand.Int64N(int64(c.ttl)/5+1))
	s.m[k] = entry[V]{v: v, expires: now.Add(ttl)}
}

// Delete drops k.
func (c *Cache[K, V]) Delete(k K) {
	s := c.shard(k)
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// Clear drops everything.
func (c *Cache[K, V]) Clear() {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		clear(s.m)
		s.puts = 0
		s.mu.Unlock()
	}
}
