package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mtlsid/mtlsid/agent"
)

// agentConfig is agent.yaml (see docs/agent.md).
type agentConfig struct {
	Server     string        `yaml:"server"`
	CA         string        `yaml:"ca"`
	Fraction   float64       `yaml:"fraction"`
	Jitter     *float64      `yaml:"jitter"`
	StatusFile string        `yaml:"status_file"`
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	Identities []struct {
		Name   string       `yaml:"name"`
		Kind   string       `yaml:"kind"`
		Dir    string       `yaml:"dir"`
		Auth   string       `yaml:"auth"`
		Reload agent.Reload `yaml:"reload"`
	} `yaml:"identities"`
}

// runAgent handles `mtlsid agent`: the renewal daemon, or with --once a
// single pass for cron.
func runAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var configFile, reloadCmd, status string
	var once, verbose bool
	c, rest, err := clientCommand("agent", stderr, args, func(fs *flag.FlagSet) {
		fs.StringVar(&configFile, "config", "", "agent.yaml listing the identities to keep fresh (else the one of --dir/--name)")
		fs.StringVar(&reloadCmd, "reload", "", "command to run after a renewal (with --name; split on spaces)")
		fs.StringVar(&status, "status", "", "status file to write (JSON: next renewal per identity)")
		fs.BoolVar(&once, "once", false, "renew what is due now and exit (for cron)")
		fs.BoolVar(&verbose, "debug", false, "log debug messages")
	})
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return &usageError{"usage: mtlsid agent [--config agent.yaml | --dir DIR --name NAME [--reload CMD]] [--once] [--status FILE]"}
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := newLogger(stderr, level, false)
	a, err := c.buildAgent(configFile, reloadCmd, status, log)
	if err != nil {
		return err
	}
	if once {
		return a.Once(ctx)
	}
	// SIGHUP is for reload hooks of other programs; the agent itself
	// stops on INT and TERM (handled by main) and ignores HUP.
	signal.Ignore(syscall.SIGHUP)
	fmt.Fprintf(stdout, "mtlsid agent: keeping %d identities fresh\n", len(a.Identities))
	if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (c *clientFlags) buildAgent(configFile, reloadCmd, status string, log *slog.Logger) (*agent.Agent, error) {
	roots, err := c.roots()
	if err != nil {
		return nil, err
	}
	eng := &agent.Engine{Server: c.server, Roots: roots, Logger: log, Jitter: 0.05, Timeout: c.timeout}
	a := &agent.Agent{Engine: eng, StatusFile: status}
	if configFile == "" {
		id := agent.Identity{Name: c.name, Files: agent.Files{Base: c.base()}}
		if reloadCmd != "" {
			id.Reload.Command = strings.Fields(reloadCmd)
		}
		a.Identities = []agent.Identity{id}
		return a, nil
	}
	b, err := os.ReadFile(configFile)
	if err != nil {
		return nil, err
	}
	var cfg agentConfig
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", configFile, err)
	}
	if cfg.Server != "" {
		eng.Server = cfg.Server
	}
	if cfg.CA != "" {
		pem, err := os.ReadFile(expandHome(cfg.CA))
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemOrDER(pem)) {
			return nil, fmt.Errorf("%s: no certificate in ca %s", configFile, cfg.CA)
		}
		eng.Roots = pool
	}
	if cfg.Fraction != 0 {
		if cfg.Fraction <= 0 || cfg.Fraction >= 1 {
			return nil, fmt.Errorf("%s: fraction must be between 0 and 1", configFile)
		}
		eng.Fraction = cfg.Fraction
	}
	if cfg.Jitter != nil {
		if *cfg.Jitter < 0 || *cfg.Jitter > 0.3 {
			return nil, fmt.Errorf("%s: jitter must be between 0 and 0.3", configFile)
		}
		eng.Jitter = *cfg.Jitter
	}
	if cfg.StatusFile != "" && status == "" {
		a.StatusFile = expandHome(cfg.StatusFile)
	}
	a.MinBackoff, a.MaxBackoff = cfg.MinBackoff, cfg.MaxBackoff
	if len(cfg.Identities) == 0 {
		return nil, fmt.Errorf("%s: no identities", configFile)
	}
	for i, ic := range cfg.Identities {
		if ic.Name == "" || ic.Dir == "" {
			return nil, fmt.Errorf("%s: identity %d needs name and dir", configFile, i+1)
		}
		if err := ic.Reload.Check(); err != nil {
			return nil, fmt.Errorf("%s: identity %s: %w", configFile, ic.Name, err)
		}
		id := agent.Identity{Name: ic.Name, Files: agent.Files{Base: filepath.Join(expandHome(ic.Dir), safeName(ic.Name))}, Reload: ic.Reload}
		switch ic.Kind {
		case "", "device", "agent", string(agent.KindCertificate):
			id.Kind = agent.KindCertificate
		case string(agent.KindServer):
			if ic.Auth == "" {
				return nil, fmt.Errorf("%s: server identity %s needs auth: the base path of an API certificate (DIR/NAME)", configFile, ic.Name)
			}
			id.Kind, id.Auth = agent.KindServer, agent.Files{Base: expandHome(ic.Auth)}
		default:
			return nil, fmt.Errorf("%s: identity %s: unknown kind %q (device, agent or server)", configFile, ic.Name, ic.Kind)
		}
		a.Identities = append(a.Identities, id)
	}
	return a, nil
}

func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}
