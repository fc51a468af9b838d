package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// The fast path (fast.go) serves an HTTP/1.1 connection for as long as
// its requests are of the kinds it takes; at the first other one, or at
// once for HTTP/2, it hands the connection to the listener's http.Server,
// which serves it to the end. The types here do the handing over and keep
// count of the connections the fast path holds, for shutdown.

// connQueue is the http.Server's listener: its connections are those the
// fast path hands over.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// push gives c to the server; false when the server has shut down.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// replayConn is a TLS connection whose first bytes the fast path has
// already read: they are read again from buf. Not being a *tls.Conn, it
// is served by http.Server as plain HTTP/1.1, so the server does not set
// Request.TLS; siteHandler sets it from the state ConnContext put in the
// request's context (tlsStateKey).
type replayConn struct {
	*tls.Conn
	r     io.Reader
	state *tls.ConnectionState
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type tlsStateKey struct{}

// connContext is the http.Server's ConnContext.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if rc, ok := c.(*replayConn); ok {
		return context.WithValue(ctx, tlsStateKey{}, rc.state)
	}
	return ctx
}

// withTLS sets r.TLS for a request on a connection the fast path handed
// over (r is the handler's own copy).
func withTLS(r *http.Request) {
	if r.TLS == nil {
		if cs, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
			r.TLS = cs
		}
	}
}

// handoff gives tc, with what br holds of it, to l's http.Server. It
// reports false when the server has shut down: tc is still the caller's.
func (l *listener) handoff(tc *tls.Conn, br *bufio.Reader, cs *tls.ConnectionState) bool {
	var c net.Conn = tc
	if br != nil && br.Buffered() > 0 {
		b, _ := br.Peek(br.Buffered())
		c = &replayConn{Conn: tc, r: io.MultiReader(bytes.NewReader(bytes.Clone(b)), tc), state: cs}
	}
	return l.queue.push(c)
}

// fastConns are the connections the fast path holds.
type fastConns struct {
	mu      sync.Mutex
	conns   map[*fastConn]struct{}
	closing atomic.Bool
}

func (s *fastConns) add(c *fastConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	if s.conns == nil {
		s.conns = map[*fastConn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *fastConns) remove(c *fastConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// shutdown closes the idle connections, and each busy one as its request
// ends, until none is left or ctx ends (then it closes them all).
func (s *fastConns) shutdown(ctx context.Context) error {
	s.closing.Store(true)
	wait := time.Millisecond
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.idle.Load() {
				c.raw.Close()
			}
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.mu.Lock()
			for c := range s.conns {
				c.raw.Close()
			}
			s.mu.Unlock()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}
