package web

import (
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// addrLimiter allows n events per period per client address, with a burst
// of n. Idle addresses are dropped so the map stays bounded by the number
// of recently active ones. It is safe for concurrent use.
type addrLimiter struct {
	mu      sync.Mutex
	n       int
	every   rate.Limit
	now     func() time.Time
	clients map[string]*rate.Limiter
	swept   time.Time
	period  time.Duration
}

func newAddrLimiter(n int, period time.Duration, now func() time.Time) *addrLimiter {
	return &addrLimiter{n: n, every: rate.Limit(float64(n) / period.Seconds()), now: now, period: period, clients: map[string]*rate.Limiter{}}
}

// allow takes one event for addr and reports whether it was within the
// limit.
func (l *addrLimiter) allow(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) > l.period {
		for k, lim := range l.clients {
			if lim.TokensAt(now) >= float64(l.n) {
				delete(l.clients, k)
			}
		}
		l.swept = now
	}
	lim := l.clients[addr]
	if lim == nil {
		lim = rate.NewLimiter(l.every, l.n)
		l.clients[addr] = lim
	}
	return lim.AllowN(now, 1)
}

// clientAddr is the address the connection came from. Forwarded headers
// are not believed: the pages are served by mtlsid itself, not behind a
// proxy that ends TLS (it would hide the client certificate).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
