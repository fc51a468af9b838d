package sdk

import (
	"context"
	"sync"
	"time"
)

// result is one cached answer about a certificate: a profile for each
// method, or the PB outcome that refused it.
type result struct {
	cert     *Profile // MethodCertificate
	redirect *Profile // MethodRedirect
	err      error    // an *OutcomeError of class PB
}

type entry struct {
	serial     string
	der        string // "" when only the serial is known
	res        *result
	expires    time.Time
	prev, next *entry
}

type flight struct {
	done    chan struct{}
	res     *result
	err     error
	revoked bool
	stale   bool // a positive answer may predate a role change: do not cache it
}

// cache is a bounded LRU of answers by serial and by certificate DER, with
// a TTL, one lookup in flight per serial (later callers wait for it), and
// drops on revocation. It is safe for concurrent use.
type cache struct {
	mu       sync.Mutex
	max      int
	ttl      time.Duration
	negTTL   time.Duration
	now      func() time.Time
	bySerial map[string]*entry
	byDER    map[string]*entry
	root     entry // sentinel of the LRU list: root.next is the newest
	flights  map[string]*flight
	gen      uint64
	stats    cacheCounters // see stats.go
}

func newCache(max int, ttl, negTTL time.Duration, now func() time.Time) *cache {
	c := &cache{max: max, ttl: ttl, negTTL: negTTL, now: now,
		bySerial: make(map[string]*entry), byDER: make(map[string]*entry), flights: make(map[string]*flight)}
	c.root.next, c.root.prev = &c.root, &c.root
	return c
}

// getDER returns the fresh answer for a certificate, without allocating.
func (c *cache) getDER(der []byte) (*result, bool) {
	now := c.now()
	c.mu.Lock()
	e := c.byDER[string(der)]
	if e == nil || !now.Before(e.expires) {
		c.mu.Unlock()
		return nil, false
	}
	c.toFront(e)
	c.mu.Unlock()
	c.stats.hits.Add(1)
	return e.res, true
}

func (c *cache) getSerial(serial string) (*result, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.bySerial[serial]
	if e == nil || !now.Before(e.expires) {
		return nil, false
	}
	c.toFront(e)
	c.stats.hits.Add(1)
	return e.res, true
}

// lookup returns the cached answer for serial, or fetches it, one fetch
// per serial at a time. fetch's PB outcomes are cached (negTTL); other
// errors are not.
func (c *cache) lookup(ctx context.Context, serial string, der []byte, fetch func(context.Context) (*result, error)) (*result, error) {
	if der != nil {
		if r, ok := c.getDER(der); ok {
			return r, nil
		}
	} else if r, ok := c.getSerial(serial); ok {
		return r, nil
	}
	c.stats.misses.Add(1)
	c.mu.Lock()
	if f := c.flights[serial]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.res, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	c.flights[serial] = f
	gen := c.gen
	c.mu.Unlock()

	// The fetch runs to completion for its waiters even if this caller
	// goes away; it is bounded by the client's timeout.
	res, err := fetch(context.WithoutCancel(ctx))
	c.mu.Lock()
	delete(c.flights, serial)
	if f.revoked && err == nil {
		res, err = &result{err: ErrCertificateRevoked}, nil
	}
	if err == nil && gen == c.gen && !f.revoked && !(f.stale && res.err == nil) {
		ttl := c.ttl
		if res.err != nil {
			ttl = c.negTTL
		}
		c.put(serial, string(der), res, ttl)
	}
	f.res, f.err = res, err
	c.mu.Unlock()
	close(f.done)
	return res, err
}

// store puts an answer learnt another way (the redirect flow).
func (c *cache) store(serial string, res *result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.put(serial, "", res, c.ttl)
}

func (c *cache) put(serial, der string, res *result, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	if old := c.bySerial[serial]; old != nil {
		if der == "" {
			der = old.der // keep the DER index of the same certificate
		}
		c.remove(old)
	}
	e := &entry{serial: serial, der: der, res: res, expires: c.now().Add(ttl)}
	c.bySerial[serial] = e
	if der != "" {
		c.byDER[der] = e
	}
	e.next, e.prev = c.root.next, &c.root
	e.next.prev, c.root.next = e, e
	for len(c.bySerial) > c.max {
		c.remove(c.root.prev)
	}
}

func (c *cache) toFront(e *entry) {
	if c.root.next == e {
		return
	}
	e.prev.next, e.next.prev = e.next, e.prev
	e.next, e.prev = c.root.next, &c.root
	e.next.prev, c.root.next = e, e
}

func (c *cache) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	delete(c.bySerial, e.serial)
	if e.der != "" && c.byDER[e.der] == e {
		delete(c.byDER, e.der)
	}
}

// revoke drops serial, and makes a lookup in flight answer "revoked".
func (c *cache) revoke(serial string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.bySerial[serial]; e != nil {
		c.remove(e)
	}
	if f := c.flights[serial]; f != nil {
		f.revoked = true
	}
}

// reset drops everything: revocations may have been missed.
func (c *cache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.bySerial)
	clear(c.byDER)
	c.root.next, c.root.prev = &c.root, &c.root
	c.gen++
}
