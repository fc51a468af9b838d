package authority

import (
	"context"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid"
)

// EventBuffer is how many events a subscriber may fall behind before its
// channel is closed (see Subscribe).
const EventBuffer = 256

// Event is a change committed on the database, by this node or another,
// as the authority tells its subscribers (the /v1/events streams, the CRL
// job).
type Event struct {
	// Kind is mtlsid.EventRevoked, EventRoles, EventRelation or EventCRL.
	Kind mtlsid.EventKind
	// Serial is the revoked certificate's decimal serial (EventRevoked).
	Serial string
	// ServiceID and IdentityID name whose relation changed (EventRoles,
	// EventRelation).
	ServiceID, IdentityID string
	// Serials are the identity's certificates that are neither revoked nor
	// expired (EventRoles only): services cache answers by serial. Looked
	// up once per event for every subscriber.
	Serials []string
}

// bus fans events out to subscribers. It never blocks the publisher: a
// subscriber that falls EventBuffer events behind is cut off (its channel
// closed), so that it starts over instead of silently missing one.
type bus struct {
	mu   sync.Mutex
	subs map[chan Event]struct{}
}

func newBus() *bus { return &bus{subs: make(map[chan Event]struct{})} }

// Subscribe returns a channel that receives every event from now on, and
// a function that ends the subscription (safe to call more than once).
// The channel is closed when the subscription ends, when the subscriber
// falls EventBuffer events behind, and when the authority's feed of the
// database's events reconnects: a closed channel means "you may have
// missed events; start over". In a fleet on PostgreSQL every node's
// changes are seen (LISTEN/NOTIFY). It is safe for concurrent use.
func (a *Authority) Subscribe() (<-chan Event, func()) {
	b := a.bus
	ch := make(chan Event, EventBuffer)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if _, ok := b.subs[ch]; ok {
				delete(b.subs, ch)
				close(ch)
			}
		})
	}
}

func (b *bus) publish(ev Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- ev:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// reset cuts every subscriber off.
func (b *bus) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		delete(b.subs, ch)
		close(ch)
	}
}

func (b *bus) empty() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs) == 0
}

// follow follows the store's events until ctx ends: every change by any
// node drops what this node cached of it, and goes to the subscribers.
// The changes this node makes were dropped from its cache as it made them;
// dropping them again costs one read.
//
// following is closed at the first EventReset: events flow from then on.
func (a *Authority) follow(ctx context.Context, following chan<- struct{}) {
	first := true
	err := a.store.Follow(ctx, func(ev mtlsid.Event) {
		switch ev.Kind {
		case mtlsid.EventReset:
			a.cache.clear()
			a.bus.reset()
			if first {
				close(following)
			} else {
				a.log.Warn("event feed reconnected: read cache flushed, event streams restarted")
			}
			first = false
		case mtlsid.EventRevoked:
			a.certificateRevoked(ev.Serial)
			a.bus.publish(Event{Kind: ev.Kind, Serial: ev.Serial})
		case mtlsid.EventRoles, mtlsid.EventRelation:
			a.relationChanged(ev.ServiceID, ev.IdentityID)
			if a.bus.empty() {
				return
			}
			out := Event{Kind: ev.Kind, ServiceID: ev.ServiceID, IdentityID: ev.IdentityID}
			if ev.Kind == mtlsid.EventRoles {
				out.Serials = a.activeSerials(ctx, ev.IdentityID)
			}
			a.bus.publish(out)
		case mtlsid.EventCRL:
			a.bus.publish(Event{Kind: ev.Kind})
		}
	})
	if err != nil && ctx.Err() == nil {
		a.log.Error("event feed stopped", "err", err)
	}
}

// activeSerials returns the identity's certificates that are neither
// revoked nor expired. If the store cannot say, it returns none: the
// subscribers' caches then age out as they would without events.
func (a *Authority) activeSerials(ctx context.Context, identityID string) []string {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	certs, err := a.store.IdentityCertificates(rctx, identityID)
	if err != nil {
		a.log.Warn("event: cannot list the certificates of an identity", "identity", identityID, "err", err)
		return nil
	}
	now := a.now()
	var out []string
	for _, c := range certs {
		if st := c.Status(now); st != mtlsid.StatusRevoked && st != mtlsid.StatusExpired {
			out = append(out, c.Serial)
		}
	}
	return out
}
