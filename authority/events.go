package authority

import "sync"

// RevocationBuffer is how many revocations a subscriber may fall behind
// before its channel is closed (see SubscribeRevocations).
const RevocationBuffer = 256

// revocationBus fans this node's revocations out to subscribers. It never
// blocks the revoking call: a subscriber that falls RevocationBuffer
// events behind is cut off (its channel closed), so that it reconnects and
// starts over instead of silently missing a revocation.
type revocationBus struct {
	mu   sync.Mutex
	subs map[chan string]struct{}
}

func newRevocationBus() *revocationBus {
	return &revocationBus{subs: make(map[chan string]struct{})}
}

// SubscribeRevocations returns a channel that receives the decimal serial
// of every certificate this Authority revokes from now on, and a function
// that ends the subscription (safe to call more than once). The channel is
// closed when the subscription ends, or when the subscriber falls
// RevocationBuffer events behind: a closed channel means "you may have
// missed revocations; start over". Only revocations made through this
// Authority are seen: in a fleet each node reports its own. It is safe for
// concurrent use.
func (a *Authority) SubscribeRevocations() (<-chan string, func()) {
	b := a.bus
	ch := make(chan string, RevocationBuffer)
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

// publishRevocation tells every subscriber that serial was revoked. It
// never blocks.
func (a *Authority) publishRevocation(serial string) {
	b := a.bus
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- serial:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}
