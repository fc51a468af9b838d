package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid/internal/connlimit"
	"github.com/mtlsid/mtlsid/sdk"
)

// streams serves the TCP perimeters and the pass-through listeners: the
// connection-level side of the Gateway, next to the HTTP servers. It
// tracks every open connection so that shutdown can close them.
//
// A reload (prepare, then commit or abort) keeps the listeners whose
// address is unchanged and swaps the settings they give new connections;
// connections already open keep the settings they started with (but for
// the role recheck of TCP perimeters, see tcpPerimeter.recheck).
type streams struct {
	log     *slog.Logger
	metrics *Metrics // nil: none

	ctx    context.Context // cancelled when the last connections are closed
	cancel context.CancelFunc

	// tcp is the current TCP perimeters by name: the rechecks of open
	// connections follow their perimeter's current settings.
	tcp atomic.Pointer[map[string]*tcpPerimeter]

	mu        sync.Mutex
	listeners []*streamListener // TCP perimeters, then pass-through, in configuration order
	bound     bool              // listen was called: reloads bind added addresses
	serving   bool
	fatal     func(error) // reports a listener that failed; set by serve
	conns     map[net.Conn]struct{}
	closed    bool
	accepting sync.WaitGroup // accept loops
	handler   sync.WaitGroup // connection handlers
}

// streamListener is one address. Its settings (cur) are swapped by
// reloads; each connection reads them once, when it is accepted.
type streamListener struct {
	kind, addr string
	ln         net.Listener // nil until bound
	cur        atomic.Pointer[streamConfig]
}

// streamConfig is what a listener serves new connections with.
type streamConfig struct {
	name   string
	serve  func(context.Context, net.Conn)
	active gauge // open connections
}

type gauge interface {
	Inc()
	Dec()
}

// streamPlan is a prepared configuration of the streams: its listeners
// in order, kept ones and new ones (bound already when the streams are),
// with their new settings.
type streamPlan struct {
	entries []planEntry
	tcp     map[string]*tcpPerimeter
}

type planEntry struct {
	l      *streamListener
	cfg    *streamConfig
	opened bool // a new listener bound by prepare
	kept   bool // an existing listener
}

func newStreams(log *slog.Logger, metrics *Metrics) *streams {
	s := &streams{log: log, metrics: metrics, conns: map[net.Conn]struct{}{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// prepare validates and prepares the TCP perimeters and pass-through
// listeners of cfg, reading their TLS and CA files now. Once the streams
// are bound, it binds the added addresses too: on error, none stays
// bound and nothing changed. Give the plan to commit or abort.
func (s *streams) prepare(cfg Config, mw *sdk.Middleware, agent *sdk.CertSource) (*streamPlan, error) {
	if err := cfg.validateStreams(); err != nil {
		return nil, err
	}
	if len(cfg.TCP) > 0 && mw == nil {
		return nil, errors.New("gateway: a middleware is required for tcp perimeters")
	}
	plan := &streamPlan{tcp: map[string]*tcpPerimeter{}}
	type want struct {
		kind, addr string
		cfg        *streamConfig
	}
	var wants []want
	for _, tc := range cfg.TCP {
		tc.ExemptIPs = slices.Clone(tc.ExemptIPs)
		_ = tc.validate() // fills the defaults; validateStreams checked it
		t, err := newTCPPerimeter(tc, mw, agent, s.log)
		if err != nil {
			return nil, err
		}
		t.upstreamFailed = s.upstreamFailed
		t.lookup = s.tcpPerimeter
		plan.tcp[tc.Name] = t
		wants = append(wants, want{"tcp", tc.Listen, s.config("tcp", tc.Name, t.serve)})
	}
	for _, pc := range cfg.Passthrough {
		pc.Routes = slices.Clone(pc.Routes)
		_ = pc.validate()
		p := newPassthrough(pc, s.log)
		p.upstreamFailed = s.upstreamFailed
		wants = append(wants, want{"passthrough", pc.Listen, s.config("passthrough", pc.Name, p.serve)})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("gateway: shut down")
	}
	for _, w := range wants {
		e := planEntry{cfg: w.cfg}
		for _, l := range s.listeners {
			if l.addr != w.addr {
				continue
			}
			if ephemeral(w.addr) && (l.kind != w.kind || l.cur.Load().name != w.cfg.name) {
				continue // ":0" is a new port for each listener; kept by kind and name
			}
			if l.kind != w.kind {
				s.abortLocked(plan)
				return nil, fmt.Errorf("%w: %s changes from %s to %s: a listener cannot change kind without a restart",
					ErrConfig, w.addr, l.kind, w.kind)
			}
			e.l, e.kept = l, true
			break
		}
		if e.l == nil {
			e.l = &streamListener{kind: w.kind, addr: w.addr}
			e.l.cur.Store(w.cfg)
			if s.bound {
				if err := e.l.bind(); err != nil {
					s.abortLocked(plan)
					return nil, err
				}
				e.opened = true
			}
		}
		plan.entries = append(plan.entries, e)
	}
	return plan, nil
}

// config makes the settings of one listener.
func (s *streams) config(kind, name string, serve func(context.Context, net.Conn)) *streamConfig {
	c := &streamConfig{name: name, serve: serve, active: nopGauge{}}
	if s.metrics != nil {
		// The gauge of the HTTP listeners, labelled "tcp NAME" or
		// "passthrough NAME".
		c.active = s.metrics.connections.WithLabelValues(kind + " " + name)
	}
	return c
}

func ephemeral(addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	return port == "0"
}

func (l *streamListener) bind() error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s (%s %s): %w", l.addr, l.kind, l.cur.Load().name, err)
	}
	l.ln = connlimit.Listener(ln, connlimit.Default)
	return nil
}

// abort closes the listeners prepare bound for plan.
func (s *streams) abort(plan *streamPlan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.abortLocked(plan)
}

func (s *streams) abortLocked(plan *streamPlan) {
	for _, e := range plan.entries {
		if e.opened {
			e.l.ln.Close()
			e.l.ln = nil
		}
	}
}

// commit makes plan the configuration: kept listeners give new
// connections the new settings, added ones start accepting (when
// serving), removed ones are closed; the connections they accepted run
// on until they end, or until shutdown.
func (s *streams) commit(plan *streamPlan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[*streamListener]bool{}
	ls := make([]*streamListener, 0, len(plan.entries))
	for _, e := range plan.entries {
		keep[e.l] = true
		ls = append(ls, e.l)
		e.l.cur.Store(e.cfg)
		if e.opened {
			s.log.Info(e.l.kind+" listener opened", "name", e.cfg.name, "listen", e.l.ln.Addr().String())
			if s.serving {
				s.start(e.l)
			}
		}
	}
	for _, l := range s.listeners {
		if keep[l] || l.ln == nil {
			continue
		}
		s.log.Info(l.kind+" listener closing; its open connections run on", "name", l.cur.Load().name, "listen", l.ln.Addr().String())
		l.ln.Close()
	}
	s.listeners = ls
	s.tcp.Store(&plan.tcp)
}

// tcpPerimeter returns the current TCP perimeter of that name, or nil.
func (s *streams) tcpPerimeter(name string) *tcpPerimeter {
	if m := s.tcp.Load(); m != nil {
		return (*m)[name]
	}
	return nil
}

// addrs returns the kinds of the listeners on fixed ports, by address.
func (s *streams) addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, l := range s.listeners {
		if !ephemeral(l.addr) {
			out[l.addr] = l.kind
		}
	}
	return out
}

// listen binds every address; on failure none stays bound. Once bound,
// later prepares bind the added addresses themselves.
func (s *streams) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var opened []*streamListener
	for _, l := range s.listeners {
		if l.ln != nil {
			continue
		}
		if err := l.bind(); err != nil {
			for _, o := range opened {
				o.ln.Close()
				o.ln = nil
			}
			return err
		}
		opened = append(opened, l)
	}
	s.bound = true
	return nil
}

// listening reports whether listen bound anything.
func (s *streams) listening() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.ContainsFunc(s.listeners, func(l *streamListener) bool { return l.ln != nil })
}

// addr returns the bound address of the listener of that kind and name.
func (s *streams) addr(kind, name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.listeners {
		if l.kind == kind && l.cur.Load().name == name && l.ln != nil {
			return l.ln.Addr()
		}
	}
	return nil
}

// serve starts accepting on every bound listener, and on those later
// reloads add, until shutdown. fatal is called with the error that
// stopped a listener (all of them are closed then, as one broken HTTP
// listener stops the gateway).
func (s *streams) serve(fatal func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.serving {
		return
	}
	s.serving, s.fatal = true, fatal
	for _, l := range s.listeners {
		if l.ln != nil {
			s.log.Info(l.kind+" listener serving", "name", l.cur.Load().name, "listen", l.ln.Addr().String())
			s.start(l)
		}
	}
}

// start accepts on l in the background; s.mu is held.
func (s *streams) start(l *streamListener) {
	ln := l.ln
	s.accepting.Go(func() {
		if err := s.accept(l, ln); err != nil {
			s.closeListeners()
			s.fatal(err)
		}
	})
}

func (s *streams) accept(l *streamListener, ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
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
		sc := l.cur.Load() // the settings of the moment, for this connection's life
		sc.active.Inc()
		go func() {
			defer s.handler.Done()
			defer s.untrack(c)
			defer sc.active.Dec()
			sc.serve(s.ctx, c)
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

// shutdown stops accepting, lets open connections (those of listeners
// reloads removed included) run until ctx ends, then closes them, waits
// for their handlers and returns ctx's error, as http.Server.Shutdown
// does. Relayed protocols (database sessions...) seldom end by
// themselves: give ctx the time a drain deserves.
func (s *streams) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeListeners()
	s.accepting.Wait()
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
