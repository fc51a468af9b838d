package gateway

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Defaults of the TCP perimeters and pass-through listeners.
const (
	// DefaultHandshakeTimeout bounds a TCP perimeter's TLS handshake and
	// identification, and the reading of a pass-through ClientHello.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a relayed connection on which no byte
	// moved either way for that long.
	DefaultIdleTimeout = time.Hour
	// DefaultDialTimeout bounds the connection to an upstream.
	DefaultDialTimeout = 10 * time.Second
	// DefaultRecheckInterval is how often the identity behind an open TCP
	// perimeter connection is checked again.
	DefaultRecheckInterval = 5 * time.Second
)

// ProxyProtocolV2 is the value of PassthroughRoute.ProxyProtocol that
// sends a PROXY protocol v2 header.
const ProxyProtocolV2 = "v2"

// TCPPerimeter is a TCP service behind the gateway (PostgreSQL, Redis,
// MQTT...): the gateway ends TLS with a client certificate required,
// identifies it and checks the roles before the upstream is even dialled,
// then relays plain bytes.
type TCPPerimeter struct {
	// Name identifies the perimeter in logs; default: its listen address.
	Name string `yaml:"name"`
	// Listen is the TCP address to listen on, such as ":6432". Required.
	Listen string `yaml:"listen"`
	// TLS is the server certificate. Required.
	TLS TLSFiles `yaml:"tls"`
	// Upstream is the host:port bytes are relayed to. Required. Plain
	// text only on loopback, unless UpstreamTLS or
	// InsecurePlaintextUpstream.
	Upstream string `yaml:"upstream"`
	// UpstreamTLS makes the hop to the upstream TLS, presenting the
	// gateway's agent certificate (a second mTLS channel).
	UpstreamTLS bool `yaml:"upstream_tls"`
	// UpstreamCA is a PEM file of roots for the upstream's certificate;
	// default: the system roots. Only with UpstreamTLS.
	UpstreamCA string `yaml:"upstream_ca"`
	// UpstreamServerName is the name the upstream's certificate must
	// carry; default: Upstream's host. Only with UpstreamTLS.
	UpstreamServerName string `yaml:"upstream_server_name"`
	// InsecurePlaintextUpstream allows a plain-text upstream that is not
	// on loopback. It is logged as a warning at every start.
	InsecurePlaintextUpstream bool `yaml:"insecure_plaintext_upstream"`
	// Roles are required of the certificate's holder (all of AllOf, one
	// of AnyOf); none means any identified certificate.
	Roles Roles `yaml:"roles"`
	// ExemptIPs are CIDRs (or addresses) whose connections need neither a
	// certificate nor roles; a certificate they present is still verified.
	ExemptIPs []string `yaml:"exempt_ips"`
	// HandshakeTimeout bounds the TLS handshake and the identification;
	// default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// IdleTimeout closes a connection idle both ways that long; default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// RecheckInterval is how often an open connection's certificate is
	// identified again (from the cache, which drops revoked answers at
	// once); one no longer accepted, or lacking the roles, is closed.
	// Default DefaultRecheckInterval.
	RecheckInterval time.Duration `yaml:"recheck_interval"`
}

// Passthrough is a listener whose connections are relayed untouched
// (TLS is not ended: the upstream sees the client's certificate itself)
// to the upstream its route names for the ClientHello's server name.
type Passthrough struct {
	// Name identifies the listener in logs; default: its listen address.
	Name string `yaml:"name"`
	// Listen is the TCP address to listen on, such as ":8443". Required.
	Listen string `yaml:"listen"`
	// Routes map server names to upstreams. At least one is required.
	// A ClientHello naming no route's name, or no name, is closed.
	Routes []PassthroughRoute `yaml:"routes"`
	// HelloTimeout bounds the reading of the ClientHello; default
	// DefaultHandshakeTimeout.
	HelloTimeout time.Duration `yaml:"hello_timeout"`
	// MaxHello bounds the ClientHello's size; default DefaultMaxHello.
	MaxHello int `yaml:"max_hello"`
	// IdleTimeout closes a connection idle both ways that long; default
	// DefaultIdleTimeout.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// PassthroughRoute sends the connections for some server names to one
// upstream.
type PassthroughRoute struct {
	// Hostnames are the server names routed here, exact or with one
	// leading wildcard label, as for HTTP perimeters. Required.
	Hostnames []string `yaml:"hostnames"`
	// Upstream is the host:port of the TLS server. Required.
	Upstream string `yaml:"upstream"`
	// ProxyProtocol is "" (none) or ProxyProtocolV2: a PROXY protocol v2
	// header with the client's address and the address it reached goes
	// before the client's bytes.
	ProxyProtocol string `yaml:"proxy_protocol"`
}

func streamErr(kind, name, format string, args ...any) error {
	return fmt.Errorf("%w: %s %s: %s", ErrConfig, kind, name, fmt.Sprintf(format, args...))
}

// validate fills the defaults of t and checks it.
func (t *TCPPerimeter) validate() error {
	if t.Name == "" {
		t.Name = t.Listen
	}
	e := func(format string, args ...any) error { return streamErr("tcp perimeter", t.Name, format, args...) }
	if err := checkListen(t.Listen); err != nil {
		return e("%v", err)
	}
	if t.TLS.CertFile == "" || t.TLS.KeyFile == "" {
		return e("tls.cert and tls.key are required")
	}
	if t.Upstream == "" {
		return e("upstream is required")
	}
	host, err := checkHostPort(t.Upstream)
	if err != nil {
		return e("upstream %q is not host:port", t.Upstream)
	}
	if !t.UpstreamTLS {
		if t.UpstreamCA != "" || t.UpstreamServerName != "" {
			return e("upstream_ca and upstream_server_name need upstream_tls: true")
		}
		if !isLoopback(host) && !t.InsecurePlaintextUpstream {
			return e("upstream %s is plain text on a non-loopback address: set upstream_tls: true (the gateway presents its agent certificate), or insecure_plaintext_upstream: true", t.Upstream)
		}
	}
	for _, c := range t.ExemptIPs {
		if _, err := parsePrefix(c); err != nil {
			return e("exempt_ips %q: %v", c, err)
		}
	}
	if t.HandshakeTimeout < 0 || t.IdleTimeout < 0 || t.RecheckInterval < 0 {
		return e("timeouts cannot be negative")
	}
	if t.RecheckInterval == 0 {
		t.RecheckInterval = DefaultRecheckInterval
	}
	if t.HandshakeTimeout == 0 {
		t.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if t.IdleTimeout == 0 {
		t.IdleTimeout = DefaultIdleTimeout
	}
	return nil
}

// validate fills the defaults of p and checks it.
func (p *Passthrough) validate() error {
	if p.Name == "" {
		p.Name = p.Listen
	}
	e := func(format string, args ...any) error { return streamErr("passthrough", p.Name, format, args...) }
	if err := checkListen(p.Listen); err != nil {
		return e("%v", err)
	}
	if len(p.Routes) == 0 {
		return e("routes are required")
	}
	names := map[string]bool{}
	for i := range p.Routes {
		r := &p.Routes[i]
		if len(r.Hostnames) == 0 {
			return e("route %d: hostnames are required", i+1)
		}
		r.Hostnames = append([]string(nil), r.Hostnames...)
		for j, h := range r.Hostnames {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
			if !validPattern(h) {
				return e("hostname %q: a host name, or one with a leading \"*.\" wildcard", r.Hostnames[j])
			}
			if names[h] {
				return e("hostname %s is routed twice", h)
			}
			names[h] = true
			r.Hostnames[j] = h
		}
		if _, err := checkHostPort(r.Upstream); err != nil {
			return e("route %s: upstream %q is not host:port", r.Hostnames[0], r.Upstream)
		}
		switch r.ProxyProtocol {
		case "", ProxyProtocolV2:
		default:
			return e("route %s: proxy_protocol %q: want %q or nothing", r.Hostnames[0], r.ProxyProtocol, ProxyProtocolV2)
		}
	}
	if p.HelloTimeout < 0 || p.IdleTimeout < 0 || p.MaxHello < 0 {
		return e("timeouts and max_hello cannot be negative")
	}
	if p.HelloTimeout == 0 {
		p.HelloTimeout = DefaultHandshakeTimeout
	}
	if p.IdleTimeout == 0 {
		p.IdleTimeout = DefaultIdleTimeout
	}
	if p.MaxHello == 0 {
		p.MaxHello = DefaultMaxHello
	}
	return nil
}

func checkListen(addr string) error {
	if addr == "" {
		return fmt.Errorf("listen is required")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("listen %q: %v", addr, err)
	}
	return nil
}

// checkHostPort checks a host:port with a numeric port and returns the
// host.
func checkHostPort(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" || strings.ContainsAny(host, "/@") {
		return "", fmt.Errorf("bad host or port")
	}
	return host, nil
}

// validPattern accepts a host name or "*." and a host name.
func validPattern(h string) bool {
	return validHostname(strings.TrimPrefix(h, "*.")) && !strings.Contains(strings.TrimPrefix(h, "*."), "*")
}

// matchName reports whether name (lower-case) matches pattern: equal, or
// "*.rest" and name is one label followed by ".rest".
func matchName(pattern, name string) bool {
	if pattern == name {
		return true
	}
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		first, tail, ok := strings.Cut(name, ".")
		return ok && first != "" && tail == rest
	}
	return false
}

// validateStreams checks the TCP perimeters and pass-through listeners of
// cfg (on copies: cfg is not changed), and that no two listeners of any
// kind share an address (but ":0" ports, which are never shared).
func (cfg Config) validateStreams() error {
	addrs := map[string]string{}
	claim := func(addr, who string) error {
		if _, port, _ := net.SplitHostPort(addr); port == "0" {
			return nil
		}
		if prev, ok := addrs[addr]; ok && prev != who {
			return fmt.Errorf("%w: %s and %s both listen on %s", ErrConfig, prev, who, addr)
		}
		addrs[addr] = who
		return nil
	}
	for _, p := range cfg.Perimeters {
		_ = claim(p.Listen, "the HTTP perimeters") // HTTP perimeters share their addresses
	}
	names := map[string]bool{}
	for i := range cfg.TCP {
		t := cfg.TCP[i]
		t.ExemptIPs = append([]string(nil), t.ExemptIPs...)
		if err := t.validate(); err != nil {
			return err
		}
		if names["tcp "+t.Name] {
			return fmt.Errorf("%w: two tcp perimeters are named %s", ErrConfig, t.Name)
		}
		names["tcp "+t.Name] = true
		if err := claim(t.Listen, "tcp perimeter "+t.Name); err != nil {
			return err
		}
	}
	for i := range cfg.Passthrough {
		p := cfg.Passthrough[i]
		p.Routes = append([]PassthroughRoute(nil), p.Routes...)
		if err := p.validate(); err != nil {
			return err
		}
		if names["passthrough "+p.Name] {
			return fmt.Errorf("%w: two passthrough listeners are named %s", ErrConfig, p.Name)
		}
		names["passthrough "+p.Name] = true
		if err := claim(p.Listen, "passthrough "+p.Name); err != nil {
			return err
		}
	}
	return nil
}
