package domainverify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid"
)

// DefaultTimeout bounds each check when Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Config configures a Verifier. The zero Config is ready for production: the
// system resolver, port 80 and five-second checks.
type Config struct {
	// Resolver is the DNS server every lookup goes to, TXT records and the
	// addresses of the HTTP check alike, as "host:port" or a bare IP address
	// (port 53). Empty means the resolvers of /etc/resolv.conf, asked by
	// Go's own resolver.
	Resolver string

	// HTTPPort is the port of the HTTP check. Zero means 80, the only port
	// a production deployment should use; tests point it at a loopback
	// server and have Resolver answer the domain with 127.0.0.1.
	HTTPPort int

	// Timeout bounds each check (the DNS lookup, then the whole HTTP
	// exchange), so Verify may take up to twice as long. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	// Logger receives one debug record per check, without the token. Nil
	// means discard.
	Logger *slog.Logger
}

// Verifier checks domain-control challenges. It is safe for concurrent use
// and holds no connections between calls.
type Verifier struct {
	resolver *net.Resolver
	server   string // Config.Resolver as host:port, or "" for the system's
	dialer   *net.Dialer
	client   *http.Client
	port     int
	timeout  time.Duration
	log      *slog.Logger
}

// New returns a Verifier for cfg, or an error of KindInvalid if cfg is
// malformed (a Resolver that is not host:port or an IP address, a port out of
// range, a negative Timeout). cfg is copied; later changes have no effect.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{port: cfg.HTTPPort, timeout: cfg.Timeout, log: cfg.Logger}
	if v.port == 0 {
		v.port = 80
	}
	if v.port < 1 || v.port > 65535 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "domainverify: HTTPPort %d out of range", cfg.HTTPPort)
	}
	if v.timeout == 0 {
		v.timeout = DefaultTimeout
	}
	if v.timeout < 0 {
		return nil, mtlsid.Errorf(mtlsid.KindInvalid, "domainverify: negative Timeout %v", cfg.Timeout)
	}
	if v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	v.resolver = &net.Resolver{PreferGo: true}
	if cfg.Resolver != "" {
		server, err := resolverAddr(cfg.Resolver)
		if err != nil {
			return nil, err
		}
		v.server = server
		v.resolver.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}
	}
	v.dialer = &net.Dialer{Resolver: v.resolver}
	v.client = &http.Client{
		Transport: &http.Transport{
			Proxy:                  nil, // the domain itself, never a proxy
			DialContext:            v.dialDomain,
			DisableKeepAlives:      true,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 16 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return v, nil
}

// resolverAddr turns Config.Resolver into a dialable "host:port".
func resolverAddr(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "domainverify: Resolver %q is not host:port or an IP address", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", mtlsid.Errorf(mtlsid.KindInvalid, "domainverify: Resolver %q has a bad port", s)
	}
	return s, nil
}

// Verify proves that whoever published token controls domain: it tries the
// DNS TXT record, then, if that fails, the HTTP file, and returns the method
// that proved it (MethodDNS or MethodHTTP).
//
// It fails closed. A malformed domain or token is KindInvalid, with no
// network I/O. If neither check proves control, the error names what each
// looked for and what it found; its Kind is KindForbidden if at least one
// check got a definite answer that was not the proof, and KindUnavailable
// only if neither got an answer at all (resolver down, time-outs), which
// is worth retrying. If ctx ends, the error is KindUnavailable and wraps
// ctx.Err().
func (v *Verifier) Verify(ctx context.Context, domain, token string) (method string, err error) {
	if err := checkInput(domain, token); err != nil {
		return "", err
	}
	dnsErr := v.VerifyDNS(ctx, domain, token)
	if dnsErr == nil {
		return MethodDNS, nil
	}
	if ctx.Err() != nil {
		return "", canceled(ctx)
	}
	httpErr := v.VerifyHTTP(ctx, domain, token)
	if httpErr == nil {
		return MethodHTTP, nil
	}
	if ctx.Err() != nil {
		return "", canceled(ctx)
	}
	kind := mtlsid.KindUnavailable
	if mtlsid.ErrorKind(dnsErr) == mtlsid.KindForbidden || mtlsid.ErrorKind(httpErr) == mtlsid.KindForbidden {
		kind = mtlsid.KindForbidden
	}
	return "", &mtlsid.Error{
		Kind: kind,
		Message: fmt.Sprintf("control of %s not proven: dns: %s; http: %s",
			domain, mtlsid.ErrorMessage(dnsErr), mtlsid.ErrorMessage(httpErr)),
		Err: joinCauses(dnsErr, httpErr),
	}
}

// checkInput validates what Verify and the single checks are given.
func checkInput(domain, token string) error {
	if err := CheckDomain(domain); err != nil {
		return err
	}
	return checkToken(token)
}

func canceled(ctx context.Context) error {
	return &mtlsid.Error{Kind: mtlsid.KindUnavailable, Message: "domain verification stopped", Err: ctx.Err()}
}

// joinCauses keeps the causes (for logs) of the two checks' errors, labelled
// by method, dropping those without one.
func joinCauses(dnsErr, httpErr error) error {
	var causes []error
	for _, c := range []struct {
		method string
		err    error
	}{{MethodDNS, dnsErr}, {MethodHTTP, httpErr}} {
		var e *mtlsid.Error
		if errors.As(c.err, &e) && e.Err != nil {
			causes = append(causes, fmt.Errorf("%s: %w", c.method, e.Err))
		}
	}
	return errors.Join(causes...)
}

// done logs the outcome of one check and returns err. The message is logged
// with the token replaced, since house style keeps tokens out of logs.
func (v *Verifier) done(ctx context.Context, method, domain, token string, err error) error {
	if err == nil {
		v.log.DebugContext(ctx, "domain check passed", "domain", domain, "method", method)
		return nil
	}
	attrs := []any{"domain", domain, "method", method, "kind", string(mtlsid.ErrorKind(err)),
		"reason", strings.ReplaceAll(mtlsid.ErrorMessage(err), token, "REDACTED")}
	var e *mtlsid.Error
	if errors.As(err, &e) && e.Err != nil {
		attrs = append(attrs, "error", strings.ReplaceAll(e.Err.Error(), token, "REDACTED"))
	}
	v.log.DebugContext(ctx, "domain check failed", attrs...)
	return err
}
