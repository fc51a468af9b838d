package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	} `yaml:"agent"`
	SignupURL      string `yaml:"signup_url"`
	SignonRedirect bool   `yaml:"signon_redirect"`
	Cache          struct {
		Size int           `yaml:"size"`
		TTL  time.Duration `yaml:"ttl"`
	} `yaml:"cache"`
	Perimeters []gateway.Perimeter `yaml:"perimeters"`
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
	for i := range f.Perimeters {
		p := &f.Perimeters[i]
		rel(&p.TLS.CertFile)
		rel(&p.TLS.KeyFile)
		rel(&p.UpstreamCA)
	}
	switch {
	case f.Authority.URL == "":
		return nil, fmt.Errorf("%s: %w: authority.url is required", path, gateway.ErrConfig)
	case f.Agent.Cert == "" || f.Agent.Key == "":
		return nil, fmt.Errorf("%s: %w: agent.cert and agent.key are required (enroll the gateway with `mtlsid enroll`)", path, gateway.ErrConfig)
	case f.Cache.Size < 0 || f.Cache.TTL < 0:
		return nil, fmt.Errorf("%s: %w: cache size and ttl cannot be negative", path, gateway.ErrConfig)
	}
	if err := (gateway.Config{Perimeters: f.Perimeters}).Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// runGateway handles `mtlsid gateway`: the mTLS reverse proxy.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var configFile, logLevel string
	var logJSON, check bool
	fs := newFlags("gateway", stderr)
	fs.StringVar(&configFile, "config", "gateway.yaml", "the gateway's configuration (see docs/gateway.md)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&logJSON, "log-json", false, "log in JSON instead of text")
	fs.BoolVar(&check, "check", false, "check the configuration and exit")
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
		fmt.Fprintf(stdout, "%s: %d perimeters, configuration valid\n", configFile, len(f.Perimeters))
		return nil
	}
	agent, err := sdk.LoadCertSource(f.Agent.Cert, f.Agent.Key)
	if err != nil {
		return err
	}
	opts := []sdk.Option{sdk.WithCertificate(agent), sdk.WithLogger(log)}
	if f.Authority.CA != "" {
		opts = append(opts, sdk.WithRootCAFile(f.Authority.CA))
	}
	client, err := sdk.NewIdentityClient(f.Authority.URL, opts...)
	if err != nil {
		return err
	}
	mwOpts := []sdk.MiddlewareOption{sdk.WithPage(gateway.RenderPage), sdk.WithMiddlewareLogger(log)}
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
		return fmt.Errorf("gateway: connect to the authority %s: %w", f.Authority.URL, err)
	}
	defer mw.Close()
	g, err := gateway.New(gateway.Config{Perimeters: f.Perimeters, Logger: log}, mw, agent)
	if err != nil {
		return err
	}
	if err := g.Listen(); err != nil {
		return err
	}
	for _, a := range g.Addrs() {
		fmt.Fprintf(stdout, "mtlsid gateway: listening on %s\n", a)
	}
	return g.Run(ctx)
}
