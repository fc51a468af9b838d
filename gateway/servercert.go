package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid/internal/atomicfile"
	"github.com/mtlsid/mtlsid/sdk"
)

// certFunc is a server certificate: read from files once per
// configuration, or obtained from the authority and renewed (autoCerts).
type certFunc interface {
	get(*tls.ClientHelloInfo) (*tls.Certificate, error)
	leaf() *x509.Certificate
}

type staticCert struct{ c *tls.Certificate }

func (s staticCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.c, nil }
func (s staticCert) leaf() *x509.Certificate                            { return s.c.Leaf }

// loadCert reads t's files, or returns the authority's certificate for
// tls.auto.
func loadCert(name string, t TLSFiles, auto *autoCerts) (certFunc, error) {
	if t.Auto {
		if auto == nil {
			return nil, fmt.Errorf("%w: %s: tls.auto without a state_dir", ErrConfig, name)
		}
		return auto, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("perimeter %s: load TLS certificate: %w", name, err)
	}
	return staticCert{&cert}, nil
}

// Files of the server certificate in Config.StateDir.
const (
	autoCertFile = "server.cer" // PEM: the certificate, then its chain
	autoKeyFile  = "server.key" // PEM: PKCS #8
)

// autoCerts is the service's server certificate, for tls.auto: obtained
// from the authority (Service-Identity-Request, authenticated by the
// agent certificate), stored in the state directory (0600), and renewed
// in the background at two thirds of its life. A renewal swaps it for new
// handshakes; open connections keep theirs.
type autoCerts struct {
	dir    string
	client *sdk.IdentityClient
	log    *slog.Logger
	now    func() time.Time
	cur    atomic.Pointer[tls.Certificate]
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once // stop
}

// autoFor returns the server certificate manager cfg needs: nil without
// tls.auto, the current one when its directory and client are the same,
// else a new one (which has its certificate).
func (g *Gateway) autoFor(cfg Config) (*autoCerts, error) {
	need := cfg.Admin != nil && cfg.Admin.TLS.Auto
	for _, p := range cfg.Perimeters {
		need = need || p.TLS.Auto
	}
	if !need {
		return nil, nil
	}
	if cfg.Client == nil {
		return nil, fmt.Errorf("%w: tls.auto needs the authority's client (Config.Client)", ErrConfig)
	}
	if cur := g.cur.Load(); cur != nil && cur.auto != nil && cur.auto.dir == cfg.StateDir && cur.auto.client == cfg.Client {
		return cur.auto, nil
	}
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	a := &autoCerts{dir: cfg.StateDir, client: cfg.Client, log: g.log, now: now, done: make(chan struct{})}
	if err := a.start(); err != nil {
		return nil, err
	}
	return a, nil
}

func (a *autoCerts) start() error {
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return fmt.Errorf("gateway: state_dir: %w", err)
	}
	certFile, keyFile := filepath.Join(a.dir, autoCertFile), filepath.Join(a.dir, autoKeyFile)
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && a.now().Before(c.Leaf.NotAfter) {
		a.cur.Store(&c)
		a.log.Info("server certificate loaded", "file", certFile, "serial", c.Leaf.SerialNumber.String(),
			"names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter)
	} else {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			a.log.Warn("stored server certificate unusable; asking the authority", "file", certFile, "err", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Without force first: the authority may issue anyway (none yet,
		// or due), or say a current one exists, which this gateway does
		// not have: then force.
		ok, err := a.renew(ctx, false)
		if err == nil && !ok {
			ok, err = a.renew(ctx, true)
		}
		if err != nil {
			return fmt.Errorf("gateway: obtain the server certificate from the authority: %w", err)
		}
		if !ok {
			return errors.New("gateway: the authority issued no server certificate")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.loop(ctx)
	return nil
}

func (a *autoCerts) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.cur.Load(), nil }

func (a *autoCerts) leaf() *x509.Certificate {
	if c := a.cur.Load(); c != nil {
		return c.Leaf
	}
	return nil
}

// stop ends the renewals.
func (a *autoCerts) stop() {
	a.once.Do(func() {
		if a.cancel != nil {
			a.cancel()
			<-a.done
		}
	})
}

// covers reports whether the certificate serves hostname (a pattern of
// the configuration: "*.x" must be in the certificate as such).
func (a *autoCerts) covers(hostname string) bool {
	leaf := a.leaf()
	if leaf == nil {
		return false
	}
	if strings.HasPrefix(hostname, "*.") {
		return slices.Contains(leaf.DNSNames, hostname)
	}
	return leaf.VerifyHostname(hostname) == nil
}

// point is the instant when fraction of the certificate's life has passed.
func point(leaf *x509.Certificate, num, den int64) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(time.Duration(int64(life) / den * num))
}

// loop renews at two thirds of the life (the authority's own point).
// Should the authority still say "not due" (clocks apart), it asks again
// every ten minutes, and forces a renewal past five sixths.
func (a *autoCerts) loop(ctx context.Context) {
	defer close(a.done)
	retry := time.Duration(0)
	for {
		leaf := a.leaf()
		wait := point(leaf, 2, 3).Sub(a.now())
		if retry > 0 {
			wait = retry
		}
		t := time.NewTimer(min(max(wait, 0), time.Hour))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if retry == 0 && a.now().Before(point(leaf, 2, 3)) {
			continue // the hourly re-check
		}
		force := !a.now().Before(point(leaf, 5, 6))
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		ok, err := a.renew(rctx, force)
		cancel()
		switch {
		case err != nil:
			retry = min(max(2*retry, time.Minute), time.Hour)
			a.log.Error("server certificate renewal failed; keeping the current one", "err", err, "retry_in", retry, "not_after", leaf.NotAfter)
		case !ok:
			retry = 10 * time.Minute
		default:
			retry = 0
		}
	}
}

// renew asks the authority for the service's server certificate (force:
// whatever the current one's age) and, when it sends one, stores it and
// serves it. It returns false when the authority says none is due.
func (a *autoCerts) renew(ctx context.Context, force bool) (bool, error) {
	si, err := a.client.ServiceIdentity(ctx, force)
	if err != nil {
		return false, err
	}
	if si == nil {
		return false, nil
	}
	certPEM, err := base64.StdEncoding.DecodeString(si.Certificate)
	if err != nil {
		return false, fmt.Errorf("the authority sent an undecodable certificate: %w", err)
	}
	keyPEM, err := base64.StdEncoding.DecodeString(si.PrivateKey)
	if err != nil {
		return false, fmt.Errorf("the authority sent an undecodable key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("the authority's certificate and key do not pair: %w", err)
	}
	// Certificate first, key last: a reader between the two writes fails
	// to pair them and asks again, never serving a mismatched pair.
	if err := atomicfile.Write(filepath.Join(a.dir, autoCertFile), certPEM, 0o600); err != nil {
		return false, err
	}
	if err := atomicfile.Write(filepath.Join(a.dir, autoKeyFile), keyPEM, 0o600); err != nil {
		return false, err
	}
	prev := a.leaf()
	a.cur.Store(&pair)
	attrs := []any{"serial", pair.Leaf.SerialNumber.String(), "names", pair.Leaf.DNSNames, "not_after", pair.Leaf.NotAfter, "forced", force}
	if prev != nil {
		attrs = append(attrs, "previous", prev.SerialNumber.String())
	}
	a.log.Info("server certificate obtained from the authority", attrs...)
	return true, nil
}
