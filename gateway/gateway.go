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
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// Gateway serves the HTTP perimeters of a Config. Make it with New, then
// Listen and Serve (or Run); Shutdown stops it. It is safe for concurrent
// use.
type Gateway struct {
	log    *slog.Logger
	groups []*group

	mu        sync.Mutex
	listeners []net.Listener
	servers   []*http.Server
	closed    bool
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
	strip stripSet
	rules []*rule // longest path first
}

type rule struct {
	cfg    Rule
	exempt []netip.Prefix
	h      http.Handler
}

// New validates cfg and prepares the perimeters. mw identifies clients
// (its TLSConfig supplies the client CAs; give it sdk.WithPage(RenderPage)
// for the gateway's page); agent is the gateway's agent certificate,
// presented to https upstreams. It reads the TLS and CA files now.
func New(cfg Config, mw *sdk.Middleware, agent *sdk.CertSource) (*Gateway, error) {
	if mw == nil {
		return nil, errors.New("gateway: a middleware is required")
	}
	if len(cfg.Perimeters) == 0 {
		return nil, fmt.Errorf("%w: no perimeters", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{log: cfg.Logger}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	byAddr := map[string]*group{}
	for i := range cfg.Perimeters {
		pc := cfg.Perimeters[i]
		pc.Hostnames = slices.Clone(pc.Hostnames)
		pc.Paths = slices.Clone(pc.Paths)
		if err := pc.validate(); err != nil {
			return nil, err
		}
		p, err := g.newPerimeter(pc, mw, agent)
		if err != nil {
			return nil, err
		}
		key := pc.Listen
		if _, port, _ := net.SplitHostPort(pc.Listen); port == "0" {
			key = fmt.Sprint(pc.Listen, "#", i) // an ephemeral port is never shared
		}
		gr := byAddr[key]
		if gr == nil {
			gr = &group{addr: pc.Listen}
			byAddr[key] = gr
			g.groups = append(g.groups, gr)
		}
		for _, o := range gr.perimeters {
			if err := overlap(o, p); err != nil {
				return nil, err
			}
		}
		gr.perimeters = append(gr.perimeters, p)
	}
	return g, nil
}

// Validate checks cfg without reading any file or network: the errors
// wrap ErrConfig. New calls it.
func (cfg Config) Validate() error {
	if len(cfg.Perimeters) == 0 {
		return fmt.Errorf("%w: no perimeters", ErrConfig)
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

func (g *Gateway) newPerimeter(pc Perimeter, mw *sdk.Middleware, agent *sdk.CertSource) (*perimeter, error) {
	cert, err := tls.LoadX509KeyPair(pc.TLS.CertFile, pc.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("perimeter %s: load TLS certificate: %w", pc.Name, err)
	}
	p := &perimeter{cfg: pc, strip: newStripSet(pc.Headers, pc.StripHeaders)}
	p.tls = mw.TLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	if pc.ClientCert == ClientCertRequire {
		p.tls.ClientAuth = tls.RequireAndVerifyClientCert
	}
	up, _ := url.Parse(pc.Upstream)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if up.Scheme == "https" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if agent != nil {
			tc.GetClientCertificate = agent.GetClientCertificate
		}
		if pc.UpstreamCA != "" {
			pem, err := os.ReadFile(pc.UpstreamCA)
			if err != nil {
				return nil, fmt.Errorf("perimeter %s: upstream_ca: %w", pc.Name, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: perimeter %s: upstream_ca %s holds no certificate", ErrConfig, pc.Name, pc.UpstreamCA)
			}
		}
		transport.TLSClientConfig = tc
	} else if !isLoopback(up.Hostname()) {
		g.log.Warn("INSECURE: plain-text upstream on a non-loopback address; identity headers and traffic cross the network unprotected",
			"perimeter", pc.Name, "upstream", pc.Upstream)
	}
	proxy := &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
			p.strip.strip(pr.Out.Header)
			var chain []*x509.Certificate
			if t := pr.In.TLS; t != nil && len(t.VerifiedChains) > 0 {
				chain = t.VerifiedChains[0]
			}
			p.cfg.Headers.setIdentity(pr.Out.Header, sdk.FromContext(pr.In.Context()), chain)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			g.log.Error("upstream failed", "perimeter", pc.Name, "upstream", pc.Upstream, "err", err)
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
			r.h = ident
		case rc.Anonymous:
			r.h = ident
		default:
			enforced := mw.Wrap(requireRoles(rc.Roles, proxy))
			if len(r.exempt) == 0 {
				r.h = enforced
			} else {
				r.h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					if r.exempted(req) {
						ident.ServeHTTP(w, req)
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
		var missing []string
		for _, role := range roles.AllOf {
			if !p.HasRole(role) {
				missing = append(missing, role)
			}
		}
		anyOK := len(roles.AnyOf) == 0 || slices.ContainsFunc(roles.AnyOf, p.HasRole)
		if len(missing) == 0 && anyOK && p != nil {
			next.ServeHTTP(w, r)
			return
		}
		d := pageData{Page: sdk.Page{Status: http.StatusForbidden, Title: "Not allowed",
			Message: "You are identified, but your roles in this service do not include what this page needs. Ask the service's administrator."},
			Missing: missing}
		if !anyOK {
			d.Roles, d.AnyOf = roles.AnyOf, true
		}
		render(w, r, d)
	})
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
	p.rule(r.URL.Path).h.ServeHTTP(w, r)
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

func (gr *group) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if p := gr.pick(hello.ServerName); p != nil {
				return p.tls, nil
			}
			return nil, fmt.Errorf("gateway: no perimeter serves %q", hello.ServerName)
		},
	}
}

// ServeHTTP routes by Host, which must choose the same perimeter as the
// connection's SNI: a request for another perimeter on a connection
// verified under this one's client-certificate policy gets 421.
func (gr *group) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	p := gr.pick(host)
	if p == nil || r.TLS == nil || gr.pick(r.TLS.ServerName) != p {
		render(w, r, pageData{Page: sdk.Page{Status: http.StatusMisdirectedRequest, Title: "Wrong address",
			Message: "This gateway does not serve that name on this connection."}})
		return
	}
	p.ServeHTTP(w, r)
}

// Listen binds every perimeter's address. Addrs then reports them.
func (g *Gateway) Listen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, gr := range g.groups {
		ln, err := net.Listen("tcp", gr.addr)
		if err != nil {
			for _, l := range g.listeners {
				l.Close()
			}
			g.listeners = nil
			return fmt.Errorf("gateway: listen %s: %w", gr.addr, err)
		}
		g.listeners = append(g.listeners, ln)
	}
	return nil
}

// Addrs returns the bound addresses, one per distinct listen address in
// the order of the configuration (nil before Listen).
func (g *Gateway) Addrs() []net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []net.Addr
	for _, ln := range g.listeners {
		out = append(out, ln.Addr())
	}
	return out
}

// Serve serves on the listeners of Listen until Shutdown; it returns the
// first error other than http.ErrServerClosed.
func (g *Gateway) Serve() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	if len(g.listeners) == 0 {
		g.mu.Unlock()
		return errors.New("gateway: Serve before Listen")
	}
	errc := make(chan error, len(g.listeners))
	for i, ln := range g.listeners {
		gr := g.groups[i]
		srv := &http.Server{Handler: gr, TLSConfig: gr.tlsConfig(), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)}
		g.servers = append(g.servers, srv)
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	}
	n := len(g.listeners)
	g.mu.Unlock()
	for _, gr := range g.groups {
		for _, p := range gr.perimeters {
			g.log.Info("perimeter serving", "perimeter", p.cfg.Name, "listen", gr.addr, "hostnames", p.cfg.Hostnames,
				"upstream", p.cfg.Upstream, "mode", p.cfg.Mode, "client_cert", p.cfg.ClientCert)
		}
	}
	var first error
	for range n {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
		}
	}
	return first
}

// Run listens (unless Listen was called), serves until ctx ends, then
// shuts down, letting requests in progress finish for up to 10 s.
func (g *Gateway) Run(ctx context.Context) error {
	if len(g.Addrs()) == 0 {
		if err := g.Listen(); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		return err
	}
	return <-done
}

// Shutdown stops accepting connections and waits for open requests
// until ctx ends. Serve returns nil after it; the Gateway cannot serve
// again.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	servers := slices.Clone(g.servers)
	if len(servers) == 0 {
		for _, ln := range g.listeners {
			ln.Close()
		}
	}
	g.mu.Unlock()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
