package selfapi

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failLimiter counts failed attempts per client address. Successes cost
// nothing, so legitimate bulk enrollment is never slowed; guessing tokens
// is. Entries idle for longer than the refill period are dropped so the map
// stays bounded by the number of recently failing addresses.
type failLimiter struct {
	mu      sync.Mutex
	perMin  int
	now     func() time.Time
	clients map[string]*rate.Limiter
	swept   time.Time
}

func newFailLimiter(perMin int, now func() time.Time) *failLimiter {
	return &failLimiter{perMin: perMin, now: now, clients: map[string]*rate.Limiter{}}
}

// ok reports whether ip may try again.
func (l *failLimiter) ok(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.clients[ip]
	return lim == nil || lim.TokensAt(l.now()) >= 1
}

// failed records one failed attempt by ip.
func (l *failLimiter) failed(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) > time.Minute {
		for k, lim := range l.clients {
			if lim.TokensAt(now) >= float64(l.perMin) {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	lim := l.clients[ip]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(float64(l.perMin)/60), l.perMin)
		l.clients[ip] = lim
	}
	lim.AllowN(now, 1)
}
