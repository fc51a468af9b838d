package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid/internal/connlimit"
	"github.com/mtlsid/mtlsid/sdk"
)

// streams serves the TCP perimeters and the pass-through listeners: the
// connection-level side of the Gateway, next to the HTTP servers. It
// tracks every open connection so that shutdown can close them.
type streams struct {
	log       *slog.Logger
	metrics   *Metrics          // nil: none
	listeners []*streamListener // TCP perimeters, then pass-through, in configuration order

	ctx    context.Context // cancelled when the last connections are closed
	cancel context.CancelFunc

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closed  bool
	handler sync.WaitGroup // connection handlers
}

type streamListener struct {
	kind, name, addr string
	handle           func(context.Context, net.Conn)
	ln               net.Listener
}

// newStreams validates and prepares the TCP perimeters and pass-through
// listeners of cfg; it reads their TLS and CA files now.
func newStreams(cfg Config, mw *sdk.Middleware, agent *sdk.CertSource, log *slog.Logger, metrics *Metrics) (*streams, error) {
	if err := cfg.validateStreams(); err != nil {
		return nil, err
	}
	s := &streams{log: log, metrics: metrics, conns: map[net.Conn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, tc := range cfg.TCP {
		tc.ExemptIPs = slices.Clone(tc.ExemptIPs)
		_ = tc.validate() // fills the defaults; validateStreams checked it
		if mw == nil {
			return nil, errors.New("gateway: a middleware is required for tcp perimeters")
		}
		t, err := newTCPPerimeter(tc, mw, agent, log)
		if err != nil {
			return nil, err
		}
		t.upstreamFailed = s.upstreamFailed
		s.listeners = append(s.listeners, &streamListener{kind: "tcp", name: tc.Name, addr: tc.Listen, handle: t.serve})
	}
	for _, pc := range cfg.Passthrough {
		pc.Routes = slices.Clone(pc.Routes)
		_ = pc.validate()
		p := newPassthrough(pc, log)
		p.upstreamFailed = s.upstreamFailed
		s.listeners = append(s.listeners, &streamListener{kind: "passthrough", name: pc.Name, addr: pc.Listen, handle: p.serve})
	}
	return s, nil
}

// listen binds every address; on failure none stays bound. Once bound,
// it does nothing.
func (s *streams) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) > 0 && s.listeners[0].ln != nil {
		return nil
	}
	for i, l := range s.listeners {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range s.listeners[:i] {
				o.ln.Close()
				o.ln = nil
			}
			return fmt.Errorf("gateway: listen %s (%s %s): %w", l.addr, l.kind, l.name, err)
		}
		l.ln = connlimit.Listener(ln, connlimit.Default)
	}
	return nil
}

// listening reports whether listen bound anything.
func (s *streams) listening() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.listeners) > 0 && s.listeners[0].ln != nil
}

// addr returns the bound address of the listener of that kind and name.
func (s *streams) addr(kind, name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.kind == kind && l.name == name && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// serve accepts on every listener until shutdown; it returns nil then,
// or the first error that stopped a listener.
func (s *streams) serve() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	var ls []*streamListener
	for _, l := range s.listeners {
		if l.ln != nil {
			ls = append(ls, l)
		}
	}
	s.mu.Unlock()
	errc := make(chan error, len(ls))
	for _, l := range ls {
		s.log.Info(l.kind+" listener serving", "name", l.name, "listen", l.ln.Addr().String())
		go func() { errc <- s.accept(l) }()
	}
	var first error
	for range ls {
		if err := <-errc; err != nil && first == nil {
			first = err
			s.closeListeners() // one broken listener stops the gateway, as with HTTP
		}
	}
	return first
}

func (s *streams) accept(l *streamListener) error {
	var active interface {
		Inc()
		Dec()
	} = nopGauge{}
	if s.metrics != nil {
		// The gauge of the HTTP listeners, labelled "tcp NAME" or
		// "passthrough NAME".
		active = s.metrics.connections.WithLabelValues(l.kind + " " + l.name)
	}
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, as
				// net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "listen", l.addr, "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("gateway: accept on %s: %w", l.addr, err)
		}
		delay = 0
		if !s.track(c) {
			c.Close()
			continue
		}
		active.Inc()
		go func() {
			defer s.handler.Done()
			defer s.untrack(c)
			defer active.Dec()
			l.handle(s.ctx, c)
		}()
	}
}

type nopGauge struct{}

func (nopGauge) Inc() {}
func (nopGauge) Dec() {}

// upstreamFailed counts a connection to an upstream that failed.
func (s *streams) upstreamFailed(name, upstream string) {
	if s.metrics != nil {
		s.metrics.upstreamErrors.WithLabelValues(name, upstream).Inc()
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// track records c; it is false once shutdown has begun.
func (s *streams) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.handler.Add(1)
	return true
}

func (s *streams) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *streams) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.ln != nil {
			l.ln.Close()
		}
	}
}

// shutdown stops accepting, lets open connections run until ctx ends,
// then closes them, waits for their handlers and returns ctx's error, as
// http.Server.Shutdown does. Relayed protocols (database sessions...)
// seldom end by themselves: give ctx the time a drain deserves.
func (s *streams) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeListeners()
	done := make(chan struct{})
	go func() { s.handler.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		n := len(s.conns)
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.log.Info("shutdown: closed open tcp and passthrough connections", "connections", n)
		s.cancel()
		<-done
		return ctx.Err()
	}
	s.cancel()
	return nil
}

// TCPAddr returns the bound address of the TCP perimeter of that name,
// or nil (before Listen, or no such perimeter).
func (g *Gateway) TCPAddr(name string) net.Addr { return g.streams.addr("tcp", name) }

// PassthroughAddr returns the bound address of the pass-through listener
// of that name, or nil (before Listen, or no such listener).
func (g *Gateway) PassthroughAddr(name string) net.Addr { return g.streams.addr("passthrough", name) }
