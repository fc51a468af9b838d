package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/sdk"
)

// gatewayFile is gateway.yaml (see docs/gateway.md).
type gatewayFile struct {
	Authority struct {
		URL string `yaml:"url"`
		CA  string `yaml:"ca"`
	} `yaml:"authority"`
	Agent struct {
		Cert string `yaml:"cert"`
		Key  string `yaml:"key"`
		// Renew keeps the agent certificate fresh inside the gateway
		// (sdk.Renewer: at two thirds of its life, files rewritten).
		Renew bool `yaml:"renew"`
	} `yaml:"agent"`
	SignupURL      string `yaml:"signup_url"`
	SignonRedirect bool   `yaml:"signon_redirect"`
	Cache          struct {
		Size int           `yaml:"size"`
		TTL  time.Duration `yaml:"ttl"`
	} `yaml:"cache"`
	// StateDir keeps the server certificate of tls.auto perimeters.
	StateDir string `yaml:"state_dir"`
	// Watch is how often the configuration and the files it names are
	// checked for changes (default 2s; "off": only SIGHUP reloads).
	Watch string `yaml:"watch"`
	// Admin is the status page and metrics listener.
	Admin      *gateway.Admin      `yaml:"admin"`
	Perimeters []gateway.Perimeter `yaml:"perimeters"`
	// TCP and Passthrough: see docs/gateway.md (reloaded like the rest).
	TCP         []gateway.TCPPerimeter `yaml:"tcp"`
	Passthrough []gateway.Passthrough  `yaml:"passthrough"`
}

// defaultGatewayWatch is how often gateway.yaml and its files are polled.
const defaultGatewayWatch = 2 * time.Second

// watchInterval is the polling interval of Watch; 0 means off.
func (f *gatewayFile) watchInterval() (time.Duration, error) {
	switch f.Watch {
	case "":
		return defaultGatewayWatch, nil
	case "off":
		return 0, nil
	}
	d, err := time.ParseDuration(f.Watch)
	if err != nil || d < 100*time.Millisecond {
		return 0, fmt.Errorf("%w: watch %q: a duration of at least 100ms, or off", gateway.ErrConfig, f.Watch)
	}
	return d, nil
}

// config is the gateway's configuration in f, without its connections.
func (f *gatewayFile) config() gateway.Config {
	return gateway.Config{Perimeters: f.Perimeters, Admin: f.Admin, StateDir: f.StateDir, TCP: f.TCP, Passthrough: f.Passthrough}
}

// files are the files f names, for the watch: a change reloads.
func (f *gatewayFile) files() []string {
	return append([]string{f.Authority.CA, f.Agent.Cert, f.Agent.Key}, f.config().Files()...)
}

// loadGatewayFile reads and checks gateway.yaml; relative file names in
// it are relative to its directory.
func loadGatewayFile(path string) (*gatewayFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f gatewayFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	rel := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	rel(&f.Authority.CA)
	rel(&f.Agent.Cert)
	rel(&f.Agent.Key)
	rel(&f.StateDir)
	if f.Admin != nil {
		rel(&f.Admin.TLS.CertFile)
		rel(&f.Admin.TLS.KeyFile)
	}
	for i := range f.Perimeters {
		p := &f.Perimeters[i]
		rel(&p.TLS.CertFile)
		rel(&p.TLS.KeyFile)
		rel(&p.UpstreamCA)
	}
	for i := range f.TCP {
		t := &f.TCP[i]
		rel(&t.TLS.CertFile)
		rel(&t.TLS.KeyFile)
		rel(&t.UpstreamCA)
	}
	switch {
	case f.Authority.URL == "":
		return nil, fmt.Errorf("%s: %w: authority.url is required", path, gateway.ErrConfig)
	case f.Agent.Cert == "" || f.Agent.Key == "":
		return nil, fmt.Errorf("%s: %w: agent.cert and agent.key are required (enroll the gateway with `mtlsid enroll`)", path, gateway.ErrConfig)
	case f.Cache.Size < 0 || f.Cache.TTL < 0:
		return nil, fmt.Errorf("%s: %w: cache size and ttl cannot be negative", path, gateway.ErrConfig)
	}
	if _, err := f.watchInterval(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := f.config().Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// runGateway handles `mtlsid gateway`: the mTLS reverse proxy.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var configFile, logLevel, debugListen string
	var logJSON, check bool
	fs := newFlags("gateway", stderr)
	fs.StringVar(&configFile, "config", "gateway.yaml", "the gateway's configuration (see docs/gateway.md)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&logJSON, "log-json", false, "log in JSON instead of text")
	fs.BoolVar(&check, "check", false, "check the configuration and exit")
	fs.StringVar(&debugListen, "debug-listen", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6061")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return &usageError{"usage: mtlsid gateway [--config gateway.yaml] [--check]"}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return &usageError{"--log-level: " + err.Error()}
	}
	log := newLogger(stderr, level, logJSON)
	f, err := loadGatewayFile(configFile)
	if err != nil {
		return err
	}
	if check {
		fmt.Fprintf(stdout, "%s: %d perimeters, %d tcp perimeters, %d passthrough listeners, configuration valid\n",
			configFile, len(f.Perimeters), len(f.TCP), len(f.Passthrough))
		return nil
	}
	if debugListen != "" {
		dln, err := listenDebug(debugListen)
		if err != nil {
			return err
		}
		defer dln.Close()
		go servePprof(dln)
		fmt.Fprintf(stdout, "mtlsid gateway: profiler on http://%s/debug/pprof/\n", dln.Addr())
	}
	if os.Getenv("GOGC") == "" {
		// A proxy's garbage is per request and its live heap small: fewer
		// collections buy about a tenth of its CPU back for some tens of
		// MB (docs/benchmarks.md). GOGC in the environment wins.
		debug.SetGCPercent(400)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return serveGateway(ctx, configFile, f, stdout, log, hup)
}

// gatewayRuntime is a running gateway and what its configuration made:
// the agent certificate, the authority's client and the middleware,
// rebuilt by a reload only when their settings change.
type gatewayRuntime struct {
	path    string
	log     *slog.Logger
	metrics *gateway.Metrics
	g       *gateway.Gateway
	watch   *gateway.FileWatch

	file   *gatewayFile
	agent  *sdk.CertSource
	client *sdk.IdentityClient
	mw     *sdk.Middleware
	renew  context.CancelFunc // the agent certificate's renewer, or nil
}

// connection is what the middleware is made of: a reload that changes
// it makes a new one (and a new identity cache).
type gatewayConnection struct {
	url, ca, cert, key, signup string
	caSum                      [32]byte // the CA file's content: new roots make a new client
	signon                     bool
	size                       int
	ttl                        time.Duration
}

func (f *gatewayFile) connection() gatewayConnection {
	c := gatewayConnection{url: f.Authority.URL, ca: f.Authority.CA, cert: f.Agent.Cert, key: f.Agent.Key,
		signup: f.SignupURL, signon: f.SignonRedirect, size: f.Cache.Size, ttl: f.Cache.TTL}
	if f.Authority.CA != "" {
		if b, err := os.ReadFile(f.Authority.CA); err == nil {
			c.caSum = sha256.Sum256(b)
		}
	}
	return c
}

// serveGateway runs the gateway of f until ctx ends, reloading it on
// every value of reload (SIGHUP) and when the watch sees a file change.
func serveGateway(ctx context.Context, path string, f *gatewayFile, stdout io.Writer, log *slog.Logger, reload <-chan os.Signal) error {
	rt := &gatewayRuntime{path: path, log: log, metrics: gateway.NewMetrics()}
	agent, client, mw, err := rt.connect(ctx, f)
	if err != nil {
		return err
	}
	defer func() { rt.mw.Close() }()
	rt.file, rt.agent, rt.client, rt.mw = f, agent, client, mw
	cfg := rt.config(f)
	g, err := gateway.New(cfg, mw, agent)
	if err != nil {
		return err
	}
	rt.g = g
	if err := g.Listen(); err != nil {
		return err
	}
	for _, a := range g.Addrs() {
		fmt.Fprintf(stdout, "mtlsid gateway: listening on %s\n", a)
	}
	if a := g.AdminAddr(); a != nil {
		fmt.Fprintf(stdout, "mtlsid gateway: admin listening on %s\n", a)
	}
	for _, t := range f.TCP {
		name := cmp.Or(t.Name, t.Listen) // the default name
		fmt.Fprintf(stdout, "mtlsid gateway: tcp perimeter %s listening on %s\n", name, g.TCPAddr(name))
	}
	for _, p := range f.Passthrough {
		name := cmp.Or(p.Name, p.Listen)
		fmt.Fprintf(stdout, "mtlsid gateway: passthrough %s listening on %s\n", name, g.PassthroughAddr(name))
	}
	rt.startRenewer(ctx)
	defer func() {
		if rt.renew != nil {
			rt.renew()
		}
	}()
	interval, _ := f.watchInterval()
	rt.watch = gateway.NewFileWatch(append(f.files(), path)...)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	loop := make(chan struct{})
	go func() {
		defer close(loop)
		rt.loop(wctx, interval, reload)
	}()
	err = g.Run(ctx)
	stop()
	<-loop
	return err
}

// loop reloads on SIGHUP and on file changes until ctx ends.
func (rt *gatewayRuntime) loop(ctx context.Context, interval time.Duration, reload <-chan os.Signal) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			rt.watch.Changed() // what changed is read now
			rt.reload(ctx, "SIGHUP")
		case <-tick:
			if changed := rt.watch.Changed(); len(changed) > 0 {
				rt.reload(ctx, "changed: "+strings.Join(changed, ", "))
			}
		}
	}
}

// reload reads the configuration again and applies it; on any error the
// running configuration stays and the error is logged.
func (rt *gatewayRuntime) reload(ctx context.Context, trigger string) {
	err := rt.apply(ctx)
	if err != nil {
		rt.log.Error("configuration reload refused; the previous configuration keeps serving",
			"file", rt.path, "trigger", trigger, "err", err)
		return
	}
	rt.log.Info("configuration reloaded", "file", rt.path, "trigger", trigger, "generation", rt.g.Status().Generation)
}

func (rt *gatewayRuntime) apply(ctx context.Context) error {
	f, err := loadGatewayFile(rt.path)
	if err != nil {
		rt.g.ReloadFailed(err)
		return err
	}
	agent, client, mw := rt.agent, rt.client, rt.mw
	fresh := f.connection() != rt.file.connection()
	if fresh {
		if agent, client, mw, err = rt.connect(ctx, f); err != nil {
			rt.g.ReloadFailed(err)
			return err
		}
	} else {
		// The same files, maybe renewed: read again (on failure the
		// source keeps the current certificate).
		prev := agent.Leaf()
		if err := agent.Reload(); err != nil {
			rt.g.ReloadFailed(err)
			return fmt.Errorf("agent certificate: %w", err)
		}
		if t, ok := client.HTTP.Transport.(interface{ CloseIdleConnections() }); ok && !agent.Leaf().Equal(prev) {
			t.CloseIdleConnections() // the next inquiries present the new certificate
		}
	}
	cfg := rt.config(f)
	cfg.Client = client
	if err := rt.g.Reload(cfg, mw, agent); err != nil {
		if fresh {
			mw.Close()
		}
		return err
	}
	rt.watch.Set(append(f.files(), rt.path)...)
	if fresh {
		old := rt.mw
		rt.agent, rt.client, rt.mw = agent, client, mw
		old.Close() // requests in progress keep using it; only its revocation stream stops
	}
	renewChanged := fresh || f.Agent.Renew != rt.file.Agent.Renew
	rt.file = f
	if renewChanged {
		if rt.renew != nil {
			rt.renew()
			rt.renew = nil
		}
		rt.startRenewer(ctx)
	}
	return nil
}

// config is the gateway configuration of f with the running connections.
func (rt *gatewayRuntime) config(f *gatewayFile) gateway.Config {
	cfg := f.config()
	cfg.Client, cfg.Metrics, cfg.Logger = rt.client, rt.metrics, rt.log
	return cfg
}

// startRenewer renews the agent certificate in process when asked to.
func (rt *gatewayRuntime) startRenewer(ctx context.Context) {
	if !rt.file.Agent.Renew {
		return
	}
	r, err := sdk.NewRenewer(rt.client, rt.file.Agent.Cert, rt.file.Agent.Key)
	if err != nil {
		rt.log.Error("agent certificate renewal not started", "err", err)
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	rt.renew = cancel
	rt.log.Info("agent certificate renewal in process", "file", rt.file.Agent.Cert, "next", r.NextRenewal())
	go func() { _ = r.Run(rctx) }()
}

// connect loads the agent certificate and makes the authority's client
// and the middleware of f.
func (rt *gatewayRuntime) connect(ctx context.Context, f *gatewayFile) (*sdk.CertSource, *sdk.IdentityClient, *sdk.Middleware, error) {
	log := rt.log
	agent, err := sdk.LoadCertSource(f.Agent.Cert, f.Agent.Key)
	if err != nil {
		return nil, nil, nil, err
	}
	opts := []sdk.Option{sdk.WithCertificate(agent), sdk.WithLogger(log)}
	if f.Authority.CA != "" {
		opts = append(opts, sdk.WithRootCAFile(f.Authority.CA))
	}
	client, err := sdk.NewIdentityClient(f.Authority.URL, opts...)
	if err != nil {
		return nil, nil, nil, err
	}
	mwOpts := []sdk.MiddlewareOption{sdk.WithPage(gateway.RenderPage), sdk.WithMiddlewareLogger(log),
		sdk.WithInquiryObserver(rt.metrics.ObserveInquiry)}
	if !f.SignonRedirect {
		mwOpts = append(mwOpts, sdk.WithoutRedirect())
	}
	if f.SignupURL != "" {
		mwOpts = append(mwOpts, sdk.WithSignupURL(f.SignupURL))
	}
	if f.Cache.Size > 0 || f.Cache.TTL > 0 {
		size, ttl := f.Cache.Size, f.Cache.TTL
		if size == 0 {
			size = sdk.DefaultCacheSize
		}
		if ttl == 0 {
			ttl = sdk.DefaultCacheTTL
		}
		mwOpts = append(mwOpts, sdk.WithCache(size, ttl))
	}
	mw, err := sdk.NewMiddleware(ctx, client, mwOpts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("gateway: connect to the authority %s: %w", f.Authority.URL, err)
	}
	return agent, client, mw, nil
}
