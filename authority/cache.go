package authority

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/ttlcache"
)

// DefaultCacheTTL bounds how long a read served from memory may lag the
// database when Config.CacheTTL is zero. Every node drops what any node
// changes as soon as the change's event arrives (see follow); the TTL only
// bounds what an event missed while the feed was down could leave behind,
// and the feed's reconnection flushes the cache anyway.
const DefaultCacheTTL = 5 * time.Second

// readCache keeps the reads behind every Identity-Inquiry: certificates by
// serial, services, relations, and identities' creation times.
type readCache struct {
	certs     *ttlcache.Cache[string, *mtlsid.Certificate]
	services  *ttlcache.Cache[string, *mtlsid.Service]
	relations *ttlcache.Cache[relKey, *mtlsid.Relation]
	created   *ttlcache.Cache[string, time.Time]
	// gen counts the drops of certificates and relations. A read that
	// began before a drop does not fill the cache: it may have read the
	// row as it was before the change the drop is for.
	gen atomic.Uint64
}

type relKey struct{ service, identity string }

func newReadCache(ttl time.Duration, now func() time.Time) *readCache {
	return &readCache{
		certs:     ttlcache.New[string, *mtlsid.Certificate](ttl, 500_000, now),
		services:  ttlcache.New[string, *mtlsid.Service](ttl, 10_000, now),
		relations: ttlcache.New[relKey, *mtlsid.Relation](ttl, 500_000, now),
		created:   ttlcache.New[string, time.Time](time.Hour, 500_000, now),
	}
}

// clear drops everything: events may have been missed.
func (c *readCache) clear() {
	c.gen.Add(1)
	c.certs.Clear()
	c.services.Clear()
	c.relations.Clear()
}

// certificate returns the stored certificate with this decimal serial.
// Callers must not modify it.
func (a *Authority) certificate(ctx context.Context, serial string) (*mtlsid.Certificate, error) {
	if c, ok := a.cache.certs.Get(serial); ok {
		return c, nil
	}
	gen := a.cache.gen.Load()
	c, err := a.store.Certificate(ctx, serial)
	if err != nil {
		return nil, err
	}
	if a.cache.gen.Load() == gen {
		a.cache.certs.Put(serial, c)
	}
	return c, nil
}

// inquiryCertificate is certificate for an Identity-Inquiry of serviceID:
// on a miss it reads, in the same query, the identity's relation to the
// service and its creation time, and caches them for the inquiry's next
// steps.
func (a *Authority) inquiryCertificate(ctx context.Context, serviceID, serial string) (*mtlsid.Certificate, error) {
	if c, ok := a.cache.certs.Get(serial); ok {
		return c, nil
	}
	gen := a.cache.gen.Load()
	rec, err := a.store.Inquiry(ctx, serviceID, serial)
	if err != nil {
		return nil, err
	}
	c := &rec.Certificate
	a.cache.created.Put(c.IdentityID, rec.IdentityCreated)
	if a.cache.gen.Load() == gen {
		a.cache.certs.Put(serial, c)
		a.cache.relations.Put(relKey{serviceID, c.IdentityID}, &rec.Relation)
	}
	return c, nil
}

func (a *Authority) service(ctx context.Context, id string) (*mtlsid.Service, error) {
	if s, ok := a.cache.services.Get(id); ok {
		return s, nil
	}
	s, err := a.store.Service(ctx, id)
	if err != nil {
		return nil, err
	}
	a.cache.services.Put(id, s)
	return s, nil
}

func (a *Authority) relation(ctx context.Context, serviceID, identityID string) (*mtlsid.Relation, error) {
	k := relKey{serviceID, identityID}
	if r, ok := a.cache.relations.Get(k); ok {
		return r, nil
	}
	gen := a.cache.gen.Load()
	r, err := a.store.Relation(ctx, serviceID, identityID)
	if err != nil {
		return nil, err
	}
	if a.cache.gen.Load() == gen {
		a.cache.relations.Put(k, r)
	}
	return r, nil
}

func (a *Authority) identityCreated(ctx context.Context, id string) (time.Time, error) {
	if t, ok := a.cache.created.Get(id); ok {
		return t, nil
	}
	ident, err := a.store.Identity(ctx, id)
	if err != nil {
		return time.Time{}, err
	}
	a.cache.created.Put(id, ident.CreatedAt)
	return ident.CreatedAt, nil
}

// relationChanged drops what the service knows of the identity.
func (a *Authority) relationChanged(serviceID, identityID string) {
	a.cache.gen.Add(1)
	a.cache.relations.Delete(relKey{serviceID, identityID})
}

// relationsChanged drops every relation: the change's identity is not
// known here.
func (a *Authority) relationsChanged() {
	a.cache.gen.Add(1)
	a.cache.relations.Clear()
}

// certificateRevoked drops the certificate; a revoked development
// certificate may have undone changes anywhere in its service, so every
// relation is dropped too.
func (a *Authority) certificateRevoked(serial string) {
	a.cache.gen.Add(1)
	if c, ok := a.cache.certs.Get(serial); !ok || c.Development || c.Profile == mtlsid.ProfileAgent {
		a.cache.relations.Clear()
	}
	a.cache.certs.Delete(serial)
}
