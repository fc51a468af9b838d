package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// tcpPerimeter is a validated TCPPerimeter, ready to serve.
type tcpPerimeter struct {
	cfg    TCPPerimeter
	mw     *sdk.Middleware
	tls    *tls.Config // client certificate required, except from exempt addresses
	exempt []netip.Prefix
	upTLS  *tls.Config // nil: plain TCP to the upstream
	log    *slog.Logger

	upstreamFailed func(name, upstream string) // counts it in the metrics; set by streams.prepare
	// lookup returns the current perimeter of a name, or nil once a
	// reload removed it; set by streams.prepare.
	lookup func(name string) *tcpPerimeter
}

func newTCPPerimeter(tc TCPPerimeter, mw *sdk.Middleware, agent *sdk.CertSource, log *slog.Logger) (*tcpPerimeter, error) {
	cert, err := newCertFiles(tc.TLS.CertFile, tc.TLS.KeyFile, log.With("tcp_perimeter", tc.Name))
	if err != nil {
		return nil, fmt.Errorf("tcp perimeter %s: %w", tc.Name, err)
	}
	t := &tcpPerimeter{cfg: tc, mw: mw, log: log}
	for _, c := range tc.ExemptIPs {
		pfx, _ := parsePrefix(c)
		t.exempt = append(t.exempt, pfx)
	}
	t.tls = mw.TLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.get})
	t.tls.ClientAuth = tls.RequireAndVerifyClientCert
	if len(t.exempt) > 0 {
		// Exempt addresses may come without a certificate; one they
		// present is still verified.
		lax := t.tls.Clone()
		lax.ClientAuth = tls.VerifyClientCertIfGiven
		t.tls.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			if t.exempted(hello.Conn.RemoteAddr()) {
				return lax, nil
			}
			return nil, nil
		}
	}
	host, _, _ := net.SplitHostPort(tc.Upstream)
	if tc.UpstreamTLS {
		t.upTLS = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: tc.UpstreamServerName}
		if t.upTLS.ServerName == "" {
			t.upTLS.ServerName = host
		}
		if agent != nil {
			t.upTLS.GetClientCertificate = agent.GetClientCertificate
		}
		if tc.UpstreamCA != "" {
			pem, err := os.ReadFile(tc.UpstreamCA)
			if err != nil {
				return nil, fmt.Errorf("tcp perimeter %s: upstream_ca: %w", tc.Name, err)
			}
			t.upTLS.RootCAs = x509.NewCertPool()
			if !t.upTLS.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: tcp perimeter %s: upstream_ca %s holds no certificate", ErrConfig, tc.Name, tc.UpstreamCA)
			}
		}
	} else if !isLoopback(host) {
		log.Warn("INSECURE: plain-text upstream on a non-loopback address; traffic crosses the network unprotected",
			"tcp_perimeter", tc.Name, "upstream", tc.Upstream)
	}
	return t, nil
}

func (t *tcpPerimeter) exempted(a net.Addr) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	return slices.ContainsFunc(t.exempt, func(p netip.Prefix) bool { return p.Contains(ip) })
}

// serve handles one client connection: the TLS handshake (certificate
// required), identification and roles, and only then the upstream. It
// closes raw.
func (t *tcpPerimeter) serve(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	start := time.Now()
	remote := raw.RemoteAddr().String()
	log := t.log.With("tcp_perimeter", t.cfg.Name, "remote", remote)
	refuse := func(serial, reason string) {
		log.Warn("tcp connection refused", "serial", serial, "reason", reason)
	}
	hctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	_ = raw.SetDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	conn := tls.Server(raw, t.tls)
	if err := conn.HandshakeContext(hctx); err != nil {
		refuse("", "tls handshake: "+err.Error())
		return
	}
	cs := conn.ConnectionState()
	serial := ""
	if len(cs.PeerCertificates) > 0 {
		serial = "0x" + cs.PeerCertificates[0].SerialNumber.Text(16)
	}
	var p *sdk.Profile
	exempt := t.exempted(raw.RemoteAddr())
	if !exempt {
		var err error
		if p, err = t.mw.IdentifyTLS(hctx, &cs); err != nil {
			var oe *sdk.OutcomeError
			if !errors.As(err, &oe) {
				log.Error("identity lookup failed; connection refused (fail closed)", "serial", serial, "err", err)
				return
			}
			refuse(serial, oe.Outcome)
			return
		}
		if reason := t.cfg.Roles.lacking(p); reason != "" {
			refuse(serial, reason)
			return
		}
	}
	_ = raw.SetDeadline(time.Time{})
	up, err := t.dial(ctx)
	if err != nil {
		if t.upstreamFailed != nil {
			t.upstreamFailed(t.cfg.Name, t.cfg.Upstream)
		}
		log.Error("upstream failed", "serial", serial, "upstream", t.cfg.Upstream, "err", err)
		return
	}
	defer up.Close()
	log.Info("tcp connection opened", "serial", serial, "roles", profileRoles(p), "exempt", exempt, "upstream", t.cfg.Upstream)
	var revoked atomic.Pointer[string] // why the recheck ended the connection
	if !exempt {
		stop := make(chan struct{})
		defer close(stop)
		go t.recheck(ctx, &cs, raw.RemoteAddr(), stop, func(reason string) {
			revoked.Store(&reason)
			log.Warn("tcp connection closed: identity no longer accepted", "serial", serial, "reason", reason)
			raw.Close()
			up.Close()
		})
	}
	in, out, err := relay(conn, up, t.cfg.IdleTimeout)
	attrs := []any{"serial", serial, "bytes_in", in, "bytes_out", out, "duration", time.Since(start).Round(time.Millisecond)}
	if r := revoked.Load(); r != nil {
		attrs = append(attrs, "end", *r)
	} else if err != nil {
		attrs = append(attrs, "end", err.Error())
	}
	log.Info("tcp connection closed", attrs...)
}

// recheck identifies the connection's certificate again every
// RecheckInterval, until stop, and calls end once with the reason when
// the authority no longer accepts it (revoked: the cache dropped the
// answer when the revocation event came) or its roles no longer suffice.
// An authority that cannot be reached keeps the connection: its
// certificate was accepted, and a later recheck decides.
//
// Each recheck follows the current settings of the perimeter of t's name
// (its roles, exempt addresses, interval and middleware), so that a
// reload that tightens the roles reaches the connections already open.
// Once a reload removed the perimeter, the connection keeps the last
// settings it saw.
func (t *tcpPerimeter) recheck(ctx context.Context, cs *tls.ConnectionState, remote net.Addr, stop <-chan struct{}, end func(reason string)) {
	cur := t
	interval := cur.cfg.RecheckInterval
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.lookup != nil {
			if n := t.lookup(t.cfg.Name); n != nil {
				cur = n
			}
		}
		if cur.cfg.RecheckInterval != interval {
			interval = cur.cfg.RecheckInterval
			tick.Reset(interval)
		}
		if cur.exempted(remote) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, cur.cfg.HandshakeTimeout)
		p, err := cur.mw.IdentifyTLS(cctx, cs)
		cancel()
		var oe *sdk.OutcomeError
		switch {
		case errors.As(err, &oe):
			end(oe.Outcome)
			return
		case err != nil:
			t.log.Warn("identity recheck failed; connection kept", "tcp_perimeter", t.cfg.Name, "err", err)
		default:
			if reason := cur.cfg.Roles.lacking(p); reason != "" {
				end(reason)
				return
			}
		}
	}
}

func (t *tcpPerimeter) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: DefaultDialTimeout}
	if t.upTLS != nil {
		return (&tls.Dialer{NetDialer: d, Config: t.upTLS}).DialContext(ctx, "tcp", t.cfg.Upstream)
	}
	return d.DialContext(ctx, "tcp", t.cfg.Upstream)
}

// lacking returns why p does not hold the roles (every one of AllOf, one
// of AnyOf), or "" when it does. It fails closed: a nil p lacks them all.
func (r Roles) lacking(p *sdk.Profile) string {
	if p == nil {
		return "not identified"
	}
	var missing []string
	for _, role := range r.AllOf {
		if !p.HasRole(role) {
			missing = append(missing, role)
		}
	}
	if len(missing) > 0 {
		return "missing roles: " + strings.Join(missing, ", ")
	}
	if len(r.AnyOf) > 0 && !slices.ContainsFunc(r.AnyOf, p.HasRole) {
		return "needs one of the roles: " + strings.Join(r.AnyOf, ", ")
	}
	return ""
}

func profileRoles(p *sdk.Profile) string {
	if p == nil {
		return ""
	}
	return strings.Join(p.Roles, ",")
}
