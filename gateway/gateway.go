package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid/internal/connlimit"
	"github.com/mtlsid/mtlsid/sdk"
)

// Gateway serves the HTTP perimeters of a Config. Make it with New, then
// Listen and Serve (or Run); Reload replaces the configuration while it
// serves; Shutdown stops it. It is safe for concurrent use.
//
// Every request and handshake reads the current routing state (cur)
// once: a reload swaps it, so that new requests and handshakes use the
// new configuration while those in progress finish on the old one.
type Gateway struct {
	log     *slog.Logger
	metrics *Metrics
	cur     atomic.Pointer[state]
	streams *streams // TCP perimeters and pass-through listeners (streams.go)

	mu        sync.Mutex // serializes New's successors: Listen, Serve, Reload, Shutdown
	listeners map[string]*listener
	bound     bool // Listen was called: reloads open and close listeners
	serving   bool
	closed    bool
	stopped   chan struct{} // closed by Shutdown
	fatal     chan error    // a listener that failed
	servers   sync.WaitGroup
	draining  sync.WaitGroup // listeners a reload removed, shutting down

	reloadsOK, reloadsFailed atomic.Int64
	lastReloadErr            atomic.Pointer[string]
	// Cache counts of middlewares a reload replaced, so that the
	// exported counters never go down.
	retiredHits, retiredMisses atomic.Uint64
}

// group is the perimeters sharing one listen address.
type group struct {
	addr       string
	perimeters []*perimeter
}

// perimeter is a validated Perimeter, ready to serve.
type perimeter struct {
	cfg   Perimeter
	tls   *tls.Config
	cert  certFunc // the server certificate
	strip stripSet
	rules []*rule // longest path first
	up    *pool
	certs certValues // the certificate headers' values
}

type rule struct {
	cfg    Rule
	exempt []netip.Prefix
	h      http.Handler
	fast   bool // enforce mode, no exempt addresses: the fast path may take it (fast.go)
}

// New validates cfg and prepares the perimeters. mw identifies clients
// (its TLSConfig supplies the client CAs; give it sdk.WithPage(RenderPage)
// for the gateway's page); agent is the gateway's agent certificate,
// presented to https upstreams. It reads the TLS and CA files now, and
// obtains the server certificate of tls.auto perimeters.
func New(cfg Config, mw *sdk.Middleware, agent *sdk.CertSource) (*Gateway, error) {
	if mw == nil {
		return nil, errors.New("gateway: a middleware is required")
	}
	g := &Gateway{log: cfg.Logger, metrics: cfg.Metrics, listeners: map[string]*listener{},
		stopped: make(chan struct{}), fatal: make(chan error, 1)}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.metrics == nil {
		g.metrics = NewMetrics()
	}
	st, err := g.build(cfg, mw, agent) // stops what it started on error
	if err != nil {
		return nil, err
	}
	g.streams = newStreams(g.log, g.metrics)
	plan, err := g.streams.prepare(cfg, mw, agent) // binds nothing before Listen
	if err != nil {
		if st.auto != nil {
			st.auto.stop()
		}
		return nil, err
	}
	g.streams.commit(plan)
	st.gen = 1
	g.cur.Store(st)
	g.metrics.attach(g)
	return g, nil
}

// Validate checks cfg without reading any file or network: the errors
// wrap ErrConfig. New calls it.
func (cfg Config) Validate() error {
	if len(cfg.Perimeters) == 0 && len(cfg.TCP) == 0 && len(cfg.Passthrough) == 0 {
		return fmt.Errorf("%w: no perimeters", ErrConfig)
	}
	if err := cfg.validateStreams(); err != nil {
		return err
	}
	if err := cfg.validateOps(); err != nil {
		return err
	}
	names := map[string]bool{}
	for i := range cfg.Perimeters {
		pc := cfg.Perimeters[i]
		pc.Hostnames = slices.Clone(pc.Hostnames)
		pc.Paths = slices.Clone(pc.Paths)
		if err := pc.validate(); err != nil {
			return err
		}
		if n := cfg.Perimeters[i].Name; n != "" {
			if names[n] {
				return fmt.Errorf("%w: two perimeters are named %s", ErrConfig, n)
			}
			names[n] = true
		}
	}
	return nil
}

// overlap refuses two perimeters on one address that claim a same name.
func overlap(a, b *perimeter) error {
	if len(a.cfg.Hostnames) == 0 && len(b.cfg.Hostnames) == 0 {
		return fmt.Errorf("%w: perimeters %s and %s share %s and both serve any hostname", ErrConfig, a.cfg.Name, b.cfg.Name, b.cfg.Listen)
	}
	for _, h := range b.cfg.Hostnames {
		if slices.Contains(a.cfg.Hostnames, h) {
			return fmt.Errorf("%w: perimeters %s and %s both serve %s on %s", ErrConfig, a.cfg.Name, b.cfg.Name, h, b.cfg.Listen)
		}
	}
	return nil
}

func (g *Gateway) newPerimeter(pc Perimeter, mw *sdk.Middleware, agent *sdk.CertSource, auto *autoCerts) (*perimeter, error) {
	cert, err := loadCert(pc.Name, pc.TLS, auto)
	if err != nil {
		return nil, err
	}
	if pc.TLS.Auto {
		for _, h := range pc.Hostnames {
			if !auto.covers(h) {
				g.log.Warn("the server certificate from the authority does not cover a hostname of the perimeter: add and verify the domain for the service at the authority",
					"perimeter", pc.Name, "hostname", h, "certificate_names", auto.leaf().DNSNames)
			}
		}
	}
	p := &perimeter{cfg: pc, cert: cert, strip: newStripSet(pc.Headers, pc.StripHeaders)}
	p.tls = mw.TLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.get, NextProtos: []string{"h2", "http/1.1"}})
	if pc.ClientCert == ClientCertRequire {
		p.tls.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if p.up, err = g.newPool(pc, agent); err != nil {
		return nil, err
	}
	proxy := &httputil.ReverseProxy{
		Transport:  p.up,
		BufferPool: newBufferPool(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(p.up.base)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			p.strip.strip(pr.Out.Header)
			var chain []*x509.Certificate
			if t := pr.In.TLS; t != nil && len(t.VerifiedChains) > 0 {
				chain = t.VerifiedChains[0]
			}
			prof := sdk.FromContext(pr.In.Context())
			p.cfg.Headers.setIdentity(pr.Out.Header, prof, chain, &p.certs)
			if ri := infoOf(pr.In); ri != nil {
				ri.decision, ri.profile = ri.pending, prof
			}
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.Error("upstream failed", "perimeter", pc.Name, "upstream", p.up.String(), "err", err)
			render(w, r, pageData{Page: sdk.Page{Status: http.StatusBadGateway, Title: "Service unavailable",
				Message: "The service behind this gateway did not answer. Try again in a moment."}})
		},
	}
	for _, rc := range pc.Paths {
		r := &rule{cfg: rc}
		for _, c := range rc.ExemptIPs {
			pfx, _ := parsePrefix(c)
			r.exempt = append(r.exempt, pfx)
		}
		ident := mw.Identify(proxy)
		switch {
		case rc.Mode == ModeForward:
			r.h = pending(DecisionForwarded, ident)
		case rc.Anonymous:
			r.h = pending(DecisionAnonymous, ident)
		default:
			enforced := pending(DecisionAllowed, mw.Wrap(requireRoles(rc.Roles, proxy)))
			if len(r.exempt) == 0 {
				r.h, r.fast = enforced, true
			} else {
				exempt := pending(DecisionExempt, ident)
				r.h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					if r.exempted(req) {
						exempt.ServeHTTP(w, req)
						return
					}
					enforced.ServeHTTP(w, req)
				})
			}
		}
		p.rules = append(p.rules, r)
	}
	slices.SortStableFunc(p.rules, func(a, b *rule) int { return len(b.cfg.Path) - len(a.cfg.Path) })
	return p, nil
}

func (r *rule) exempted(req *http.Request) bool {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	for _, p := range r.exempt {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// requireRoles passes requests whose profile holds every role of
// roles.AllOf and one of roles.AnyOf; others get the 403 page naming
// what is missing. It fails closed: no profile, no pass.
func requireRoles(roles Roles, next http.Handler) http.Handler {
	if len(roles.AllOf) == 0 && len(roles.AnyOf) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := sdk.FromContext(r.Context())
		if ri := infoOf(r); ri != nil {
			ri.profile = p
		}
		if rolesOK(roles, p) {
			next.ServeHTTP(w, r)
			return
		}
		var missing []string
		for _, role := range roles.AllOf {
			if !p.HasRole(role) {
				missing = append(missing, role)
			}
		}
		anyOK := len(roles.AnyOf) == 0 || slices.ContainsFunc(roles.AnyOf, p.HasRole)
		d := pageData{Page: sdk.Page{Status: http.StatusForbidden, Title: "Not allowed",
			Message: "You are identified, but your roles in this service do not include what this page needs. Ask the service's administrator."},
			Missing: missing}
		if !anyOK {
			d.Roles, d.AnyOf = roles.AnyOf, true
		}
		render(w, r, d)
	})
}

// rolesOK reports whether p (nil: nobody) holds every role of
// roles.AllOf and one of roles.AnyOf.
func rolesOK(roles Roles, p *sdk.Profile) bool {
	if p == nil {
		return false
	}
	for _, role := range roles.AllOf {
		if !p.HasRole(role) {
			return false
		}
	}
	return len(roles.AnyOf) == 0 || slices.ContainsFunc(roles.AnyOf, p.HasRole)
}

// rule returns the rule of the longest prefix of path ("/" always matches).
func (p *perimeter) rule(path string) *rule {
	for _, r := range p.rules {
		if strings.HasPrefix(path, r.cfg.Path) && (strings.HasSuffix(r.cfg.Path, "/") || len(path) == len(r.cfg.Path) || path[len(r.cfg.Path)] == '/') {
			return r
		}
	}
	return p.rules[len(p.rules)-1]
}

func (p *perimeter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.strip.strip(r.Header) // before anything reads or adds one
	path, ok := rulePath(r.URL)
	if !ok {
		render(w, r, pageData{Page: sdk.Page{Status: http.StatusBadRequest, Title: "Path not accepted",
			Message: "The address holds dot segments (/./ or /../), backslashes or encoded slashes, which this gateway does not forward: use the address without them."}})
		return
	}
	p.rule(path).h.ServeHTTP(w, r)
}

// matches reports whether the perimeter serves name.
func (p *perimeter) matches(name string) bool {
	for _, h := range p.cfg.Hostnames {
		if h == name {
			return true
		}
		if rest, ok := strings.CutPrefix(h, "*."); ok {
			if first, tail, ok := strings.Cut(name, "."); ok && first != "" && tail == rest {
				return true
			}
		}
	}
	return false
}

// pick chooses the perimeter for a name (SNI or Host): an exact or
// wildcard match, else the one serving any name, else nil.
func (gr *group) pick(name string) *perimeter {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	var anyName *perimeter
	for _, p := range gr.perimeters {
		if p.matches(name) {
			return p
		}
		if len(p.cfg.Hostnames) == 0 {
			anyName = p
		}
	}
	return anyName
}

// configFor is the TLS configuration of the perimeter the ClientHello's
// server name picks.
func (gr *group) configFor(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if p := gr.pick(hello.ServerName); p != nil {
		return p.tls, nil
	}
	return nil, fmt.Errorf("gateway: no perimeter serves %q", hello.ServerName)
}

func (gr *group) listenAddr() string { return gr.addr }

// ServeHTTP routes by Host, which must choose the same perimeter as the
// connection's SNI: a request for another perimeter on a connection
// verified under this one's client-certificate policy gets 421.
func (gr *group) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	p := gr.pick(host)
	if ri := infoOf(r); ri != nil && p != nil {
		ri.perimeter = p.cfg.Name
	}
	if p == nil || r.TLS == nil || gr.pick(r.TLS.ServerName) != p {
		render(w, r, pageData{Page: sdk.Page{Status: http.StatusMisdirectedRequest, Title: "Wrong address",
			Message: "This gateway does not serve that name on this connection."}})
		return
	}
	p.ServeHTTP(w, r)
}

// listener is one bound address and the server on it. Its handler and
// TLS configuration read the current state for its key at every request
// and handshake.
//
// A perimeters' listener is served by the fast path (fast.go), which
// hands connections to srv through queue; the admin listener by srv
// alone.
type listener struct {
	key   string
	ln    net.Listener
	srv   *http.Server
	queue *connQueue // nil: srv serves ln itself
	fast  fastConns
	bufs  httputil.BufferPool
}

func (g *Gateway) newListener(key, addr string) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen %s: %w", addr, err)
	}
	ln = connlimit.Listener(ln, connlimit.Default)
	l := &listener{key: key, ln: ln, bufs: newBufferPool()}
	l.srv = &http.Server{
		Handler: g.siteHandler(key),
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			NextProtos: []string{"h2", "http/1.1"},
			GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
				if s := g.cur.Load().sites[key]; s != nil {
					return s.configFor(hello)
				}
				return nil, fmt.Errorf("gateway: %s is closing", addr)
			},
		},
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout, // idle keep-alive connections are not held forever
		MaxHeaderBytes:    64 << 10,    // as serve; the default (1 MiB) would pass 1 MiB headers upstream
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		ConnState:         g.metrics.connState(key),
		ConnContext:       connContext,
	}
	if key != adminKey {
		l.queue = newConnQueue(ln.Addr())
	}
	return l, nil
}

// start serves l in the background; a failure other than a shutdown
// ends Serve.
func (g *Gateway) start(l *listener) {
	fail := func(err error) {
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case g.fatal <- fmt.Errorf("gateway: serve %s: %w", l.ln.Addr(), err):
			default:
			}
		}
	}
	if l.queue == nil {
		g.servers.Go(func() { fail(l.srv.ServeTLS(l.ln, "", "")) })
		return
	}
	// Serve, not ServeTLS: the connections handed over are TLS already
	// (HTTP/2 ones as *tls.Conn, which Serve recognizes).
	g.servers.Go(func() { fail(l.srv.Serve(l.queue)) })
	g.servers.Go(func() { fail(g.acceptFast(l)) })
}

// shutdown stops l: no new connections, then the open ones closed as
// their requests end, until ctx ends.
func (l *listener) shutdown(ctx context.Context) error {
	if l.queue == nil {
		err := l.srv.Shutdown(ctx)
		l.ln.Close() // never served: Shutdown does not know it
		return err
	}
	l.ln.Close()
	var fastErr error
	var wg sync.WaitGroup
	wg.Go(func() { fastErr = l.fast.shutdown(ctx) })
	err := l.srv.Shutdown(ctx)
	wg.Wait()
	l.queue.Close() // never served: Shutdown does not know it
	return errors.Join(err, fastErr)
}

// Listen binds every perimeter's address (and the admin listener's).
// Addrs then reports them.
func (g *Gateway) Listen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errors.New("gateway: closed")
	}
	st := g.cur.Load()
	var opened []*listener
	for _, key := range st.keys {
		if g.listeners[key] != nil {
			continue
		}
		l, err := g.newListener(key, st.sites[key].listenAddr())
		if err != nil {
			for _, o := range opened {
				o.ln.Close()
			}
			return err
		}
		opened = append(opened, l)
	}
	if err := g.streams.listen(); err != nil {
		for _, o := range opened {
			o.ln.Close()
		}
		return err
	}
	for _, l := range opened {
		g.listeners[l.key] = l
	}
	g.bound = true
	return nil
}

// Addrs returns the bound addresses of the HTTP perimeters, one per
// distinct listen address in the order of the configuration (nil before
// Listen). AdminAddr reports the admin listener's.
func (g *Gateway) Addrs() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []net.Addr
	for _, key := range g.cur.Load().keys {
		if l := g.listeners[key]; l != nil && key != adminKey {
			out = append(out, l.ln.Addr())
		}
	}
	return out
}

// AdminAddr returns the bound address of the admin listener, or nil.
func (g *Gateway) AdminAddr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.listeners[adminKey]; l != nil {
		return l.ln.Addr()
	}
	return nil
}

// Serve serves on the listeners of Listen (and those later reloads open)
// until Shutdown; it returns nil after Shutdown, or the first error of a
// listener.
func (g *Gateway) Serve() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	if len(g.listeners) == 0 && !g.streams.listening() {
		g.mu.Unlock()
		return errors.New("gateway: Serve before Listen")
	}
	g.serving = true
	for _, l := range g.listeners {
		g.start(l)
	}
	g.streams.serve(func(err error) {
		select {
		case g.fatal <- err:
		default:
		}
	})
	st := g.cur.Load()
	g.mu.Unlock()
	st.logServing(g.log)
	select {
	case err := <-g.fatal:
		return err
	case <-g.stopped:
	}
	g.servers.Wait()
	return nil
}

// Run listens (unless Listen was called), serves until ctx ends, then
// shuts down, letting requests in progress finish for up to 10 s.
func (g *Gateway) Run(ctx context.Context) error {
	g.mu.Lock()
	bound := g.bound
	g.mu.Unlock()
	if !bound {
		if err := g.Listen(); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve() }()
	var serveErr error
	select {
	case serveErr = <-done:
		if serveErr == nil {
			return nil
		}
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		return errors.Join(serveErr, err)
	}
	if serveErr != nil {
		return serveErr
	}
	return <-done
}

// Shutdown stops accepting connections and waits for open requests
// until ctx ends. Serve returns nil after it; the Gateway cannot serve
// again.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.stopped)
	}
	ls := make([]*listener, 0, len(g.listeners))
	for _, l := range g.listeners {
		ls = append(ls, l)
	}
	g.mu.Unlock()
	g.stopAuto()
	var wg sync.WaitGroup
	errs := make([]error, len(ls)+1)
	wg.Go(func() { errs[len(ls)] = g.streams.shutdown(ctx) }) // TCP and pass-through drain meanwhile
	for i, l := range ls {
		wg.Go(func() { errs[i] = l.shutdown(ctx) })
	}
	wg.Wait()
	drained := make(chan struct{})
	go func() { g.draining.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}
