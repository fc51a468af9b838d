package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// site is what one listener serves: a group of HTTP perimeters, or the
// admin pages.
type site interface {
	http.Handler
	configFor(hello *tls.ClientHelloInfo) (*tls.Config, error)
	listenAddr() string
}

// state is one configuration, ready to serve. It is never changed once
// stored in Gateway.cur: a reload builds a new one.
type state struct {
	gen    uint64
	cfg    Config
	sites  map[string]site // by listener key
	keys   []string        // the HTTP groups in the configuration's order, then adminKey
	groups []*group
	admin  *adminSite
	mw     *sdk.Middleware
	agent  *sdk.CertSource
	auto   *autoCerts // nil without tls.auto
	loaded time.Time
}

// build validates cfg and prepares a state from it, reading every file
// it names. It changes nothing in g.
func (g *Gateway) build(cfg Config, mw *sdk.Middleware, agent *sdk.CertSource) (*state, error) {
	if mw == nil {
		return nil, errors.New("gateway: a middleware is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	st := &state{cfg: cfg, sites: map[string]site{}, mw: mw, agent: agent, loaded: time.Now()}
	var err error
	if st.auto, err = g.autoFor(cfg); err != nil {
		return nil, err
	}
	fail := func(err error) (*state, error) {
		if cur := g.cur.Load(); st.auto != nil && (cur == nil || cur.auto != st.auto) {
			st.auto.stop()
		}
		return nil, err
	}
	seen := map[string]int{}
	for i := range cfg.Perimeters {
		pc := cfg.Perimeters[i]
		pc.Hostnames = slices.Clone(pc.Hostnames)
		pc.Paths = slices.Clone(pc.Paths)
		pc.Upstreams = slices.Clone(pc.Upstreams)
		if err := pc.validate(); err != nil {
			return fail(err)
		}
		p, err := g.newPerimeter(pc, mw, agent, st.auto)
		if err != nil {
			return fail(err)
		}
		// Perimeters on one address share its listener. An ephemeral
		// port is never shared; it is kept across reloads for the
		// perimeter of the same name.
		key := pc.Listen
		if _, port, _ := net.SplitHostPort(pc.Listen); port == "0" {
			key = pc.Listen + "#" + pc.Name
			if n := seen[key]; n > 0 {
				seen[key]++
				key += "#" + strconv.Itoa(n+1)
			} else {
				seen[key] = 1
			}
		}
		gr, _ := st.sites[key].(*group)
		if gr == nil {
			gr = &group{addr: pc.Listen}
			st.sites[key] = gr
			st.keys = append(st.keys, key)
			st.groups = append(st.groups, gr)
		}
		for _, o := range gr.perimeters {
			if err := overlap(o, p); err != nil {
				return fail(err)
			}
		}
		gr.perimeters = append(gr.perimeters, p)
	}
	if cfg.Admin != nil {
		a, err := g.newAdmin(*cfg.Admin, mw, st.auto)
		if err != nil {
			return fail(err)
		}
		st.admin = a
		st.sites[adminKey] = a
		st.keys = append(st.keys, adminKey)
	}
	return st, nil
}

// logServing logs every perimeter of st.
func (st *state) logServing(log *slog.Logger) {
	for _, gr := range st.groups {
		for _, p := range gr.perimeters {
			log.Info("perimeter serving", "perimeter", p.cfg.Name, "listen", gr.addr, "hostnames", p.cfg.Hostnames,
				"upstreams", p.up.String(), "mode", p.cfg.Mode, "client_cert", p.cfg.ClientCert, "generation", st.gen)
		}
	}
	if st.admin != nil {
		log.Info("admin listener serving", "listen", st.admin.cfg.Listen, "roles", st.admin.cfg.Roles, "generation", st.gen)
	}
}

// retire closes what the state alone holds once a newer one serves: the
// idle connections to its upstreams (requests in progress finish).
func (st *state) retire() {
	for _, gr := range st.groups {
		for _, p := range gr.perimeters {
			p.up.closeIdle()
		}
	}
}

// Reload replaces the configuration: new requests and TLS handshakes use
// cfg (its perimeters, rules, certificates and upstreams) while those in
// progress finish on the old one. Listeners whose address is unchanged
// are kept, added addresses are opened, removed ones closed gracefully
// (their open requests finish). mw and agent may be the ones in use or
// new ones (then the caller closes the old middleware after Reload).
//
// TCP perimeters and pass-through listeners are reloaded the same way:
// a listener whose address is unchanged is kept and gives new
// connections the new settings (roles, certificate, upstream, routes...),
// while connections already relayed keep theirs; but the periodic role
// recheck of an open TCP perimeter connection follows the current
// settings of the perimeter of its name (the last it saw, once a reload
// removed that perimeter). Removed listeners stop accepting; their open
// connections run on until they end, or until Shutdown.
//
// On error (invalid configuration, unreadable file, an address that
// cannot be bound, a listener that would change kind at the same
// address: http, tcp or passthrough) nothing changes: the old
// configuration keeps serving.
func (g *Gateway) Reload(cfg Config, mw *sdk.Middleware, agent *sdk.CertSource) error {
	gen, err := g.reload(cfg, mw, agent)
	if err != nil {
		g.ReloadFailed(err)
		return err
	}
	g.reloadsOK.Add(1)
	g.metrics.reloads.WithLabelValues("ok").Inc()
	g.log.Info("configuration reloaded", "generation", gen)
	return nil
}

// ReloadFailed counts a reload refused before Reload was called (a file
// that does not parse), for the status page and the metrics.
func (g *Gateway) ReloadFailed(err error) {
	g.reloadsFailed.Add(1)
	g.metrics.reloads.WithLabelValues("failed").Inc()
	msg := err.Error()
	g.lastReloadErr.Store(&msg)
}

func (g *Gateway) reload(cfg Config, mw *sdk.Middleware, agent *sdk.CertSource) (uint64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return 0, errors.New("gateway: shut down")
	}
	old := g.cur.Load()
	st, err := g.build(cfg, mw, agent)
	if err != nil {
		return 0, err
	}
	st.gen = old.gen + 1
	stopAuto := func() {
		if st.auto != nil && st.auto != old.auto {
			st.auto.stop()
		}
	}
	if err := g.kindChange(old, st); err != nil {
		stopAuto()
		return 0, err
	}
	// The streams bind their added addresses (when bound) here too.
	plan, err := g.streams.prepare(cfg, mw, agent)
	if err != nil {
		stopAuto()
		return 0, err
	}
	// Bind the new addresses before the swap: an address that cannot be
	// bound refuses the reload with nothing changed.
	var opened []*listener
	if g.bound {
		for _, key := range st.keys {
			if g.listeners[key] != nil {
				continue
			}
			l, err := g.newListener(key, st.sites[key].listenAddr())
			if err != nil {
				for _, o := range opened {
					o.ln.Close()
				}
				g.streams.abort(plan)
				stopAuto()
				return 0, err
			}
			opened = append(opened, l)
		}
	}
	g.cur.Store(st)
	g.streams.commit(plan)
	for _, l := range opened {
		g.listeners[l.key] = l
		if g.serving {
			g.start(l)
		}
		g.log.Info("listener opened", "listen", l.ln.Addr().String())
	}
	for key, l := range g.listeners {
		if _, ok := st.sites[key]; ok {
			continue
		}
		delete(g.listeners, key)
		g.log.Info("listener closing", "listen", l.ln.Addr().String())
		g.draining.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = l.shutdown(ctx)
		})
	}
	if old.mw != st.mw {
		cs := old.mw.CacheStats()
		g.retiredHits.Add(cs.Hits)
		g.retiredMisses.Add(cs.Misses)
	}
	if old.auto != nil && old.auto != st.auto {
		old.auto.stop()
	}
	old.retire()
	if g.serving {
		st.logServing(g.log)
	}
	return st.gen, nil
}

// kindChange refuses a fixed address that serves HTTP in one of old and
// st and a TCP perimeter or pass-through listener in the other: the
// listener would have to be closed and bound again, which a reload does
// not do. (The streams refuse a tcp <-> passthrough change themselves.)
func (g *Gateway) kindChange(old, st *state) error {
	httpAddrs := func(st *state) map[string]bool {
		out := map[string]bool{}
		for _, s := range st.sites {
			if a := s.listenAddr(); !ephemeral(a) {
				out[a] = true
			}
		}
		return out
	}
	oldHTTP, newHTTP := httpAddrs(old), httpAddrs(st)
	streamAddrs := func(cfg Config) map[string]string {
		out := map[string]string{}
		for _, t := range cfg.TCP {
			out[t.Listen] = "tcp"
		}
		for _, p := range cfg.Passthrough {
			out[p.Listen] = "passthrough"
		}
		return out
	}
	for addr, kind := range streamAddrs(st.cfg) {
		if oldHTTP[addr] {
			return fmt.Errorf("%w: %s changes from http to %s: a listener cannot change kind without a restart", ErrConfig, addr, kind)
		}
	}
	for addr, kind := range g.streams.addrs() {
		if newHTTP[addr] {
			return fmt.Errorf("%w: %s changes from %s to http: a listener cannot change kind without a restart", ErrConfig, addr, kind)
		}
	}
	return nil
}

// FileWatch notices changes of files by polling: their modification time,
// size and SHA-256. A file that cannot be read counts as a state too (its
// appearance is a change). It needs no operating-system notification, so
// that it works on every file system, renames by atomic writes included.
// It is safe for concurrent use.
type FileWatch struct {
	mu    sync.Mutex
	files map[string]fileStamp
}

type fileStamp struct {
	mod  time.Time
	size int64
	sum  [32]byte
	err  string
}

// NewFileWatch records the current state of files.
func NewFileWatch(files ...string) *FileWatch {
	w := &FileWatch{}
	w.Set(files...)
	return w
}

// Set replaces the watched files, recording their current state.
func (w *FileWatch) Set(files ...string) {
	m := make(map[string]fileStamp, len(files))
	for _, f := range files {
		if f != "" {
			m[f] = stamp(f)
		}
	}
	w.mu.Lock()
	w.files = m
	w.mu.Unlock()
}

// Changed returns the files that changed since the last call (or Set),
// and records their new state.
func (w *FileWatch) Changed() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for f, old := range w.files {
		if s := stamp(f); s != old {
			w.files[f] = s
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

func stamp(name string) fileStamp {
	f, err := os.Open(name)
	if err != nil {
		return fileStamp{err: err.Error()}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileStamp{err: err.Error()}
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, 16<<20)); err != nil {
		return fileStamp{err: err.Error()}
	}
	s := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	h.Sum(s.sum[:0])
	return s
}

// Files returns the files a configuration reads, for a FileWatch: TLS
// certificates and keys, and upstream CAs.
func (cfg Config) Files() []string {
	var out []string
	add := func(fs ...string) {
		for _, f := range fs {
			if f != "" && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	for _, p := range cfg.Perimeters {
		add(p.TLS.CertFile, p.TLS.KeyFile, p.UpstreamCA)
	}
	for _, t := range cfg.TCP {
		add(t.TLS.CertFile, t.TLS.KeyFile, t.UpstreamCA)
	}
	if cfg.Admin != nil {
		add(cfg.Admin.TLS.CertFile, cfg.Admin.TLS.KeyFile)
	}
	return out
}
