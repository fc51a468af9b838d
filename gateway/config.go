package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// Access modes of a perimeter or a path rule.
const (
	// ModeEnforce: the gateway decides; refused requests get an
	// explanatory page and never reach the upstream.
	ModeEnforce = "enforce"
	// ModeForward: the gateway identifies when it can and forwards every
	// request with the identity headers; the application decides.
	ModeForward = "forward"
)

// Client certificate policies of a perimeter's TLS layer.
const (
	// ClientCertRequest asks for a certificate and verifies it when given;
	// people without one reach the HTTP layer (and its sign-up page).
	ClientCertRequest = "request"
	// ClientCertRequire makes the handshake fail without a valid
	// certificate (closed-circle services).
	ClientCertRequire = "require"
)

// Config is the gateway's configuration. cmd/mtlsid reads it from YAML;
// New validates it.
type Config struct {
	// Perimeters are the HTTP perimeters. Perimeters sharing a listen
	// address are chosen by SNI and Host.
	Perimeters []Perimeter `yaml:"perimeters"`
	// TCP are the TCP perimeters (tcp.go): TLS ended with a client
	// certificate required, roles checked, then plain bytes relayed.
	TCP []TCPPerimeter `yaml:"tcp"`
	// Passthrough are the pass-through listeners (passthrough.go): the
	// ClientHello's server name chooses an upstream; TLS is not ended.
	Passthrough []Passthrough `yaml:"passthrough"`
	// Admin is the administrators' listener: status page and metrics
	// (see admin.go); nil: none.
	Admin *Admin `yaml:"admin"`
	// StateDir keeps the server certificate of tls.auto perimeters
	// between runs. Required with tls.auto.
	StateDir string `yaml:"state_dir"`
	// Client asks the authority for the server certificate of tls.auto
	// perimeters (Service-Identity-Request, with the agent certificate).
	// Required with tls.auto.
	Client *sdk.IdentityClient `yaml:"-"`
	// Metrics receives the gateway's metrics; nil: New makes its own.
	Metrics *Metrics `yaml:"-"`
	// Clock replaces time.Now for the renewal of tls.auto certificates
	// (tests).
	Clock func() time.Time `yaml:"-"`
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Perimeter is one HTTP service behind the gateway.
type Perimeter struct {
	// Name identifies the perimeter in logs; default: its first hostname
	// or its listen address.
	Name string `yaml:"name"`
	// Listen is the TCP address to listen on, such as ":443". Required.
	Listen string `yaml:"listen"`
	// Hostnames are the names (SNI and Host) served, exact or with one
	// leading wildcard label ("*.example.com" matches "a.example.com",
	// not "example.com" nor "a.b.example.com"). Empty means any name: at
	// most one such perimeter per listen address.
	Hostnames []string `yaml:"hostnames"`
	// TLS is the server certificate. Required.
	TLS TLSFiles `yaml:"tls"`
	// ClientCert is ClientCertRequest (default) or ClientCertRequire.
	ClientCert string `yaml:"client_cert"`
	// Upstream is the base URL requests go to: http:// on loopback, or
	// https:// (then the gateway presents its agent certificate: a second
	// mTLS channel). Upstream or Upstreams is required.
	Upstream string `yaml:"upstream"`
	// Upstreams are more base URLs, used in turn with Upstream (round
	// robin; see upstreams.go). They must share one path.
	Upstreams []string `yaml:"upstreams"`
	// UpstreamCA is a PEM file of roots for an https upstream; default:
	// the system roots.
	UpstreamCA string `yaml:"upstream_ca"`
	// InsecurePlaintextUpstream allows an http:// upstream that is not on
	// loopback. It is logged as a warning at every start.
	InsecurePlaintextUpstream bool `yaml:"insecure_plaintext_upstream"`
	// Mode is ModeEnforce (default) or ModeForward; rules may override it.
	Mode string `yaml:"mode"`
	// Headers names the identity headers the gateway adds.
	Headers Headers `yaml:"headers"`
	// StripHeaders are more header names removed from every request.
	StripHeaders []string `yaml:"strip_headers"`
	// Paths are the rules, chosen by the longest matching path prefix.
	// Without a rule for "/", "/" requires an identified certificate
	// (fail closed).
	Paths []Rule `yaml:"paths"`
}

// TLSFiles names a PEM certificate (with its chain) and its key, or asks
// for a server certificate from the authority.
type TLSFiles struct {
	CertFile string `yaml:"cert"`
	KeyFile  string `yaml:"key"`
	// Auto: the gateway obtains the service's server certificate from the
	// authority, keeps it in Config.StateDir and renews it (servercert.go),
	// instead of CertFile and KeyFile.
	Auto bool `yaml:"auto"`
}

// Headers names the forwarded identity headers. Each empty field takes
// its default; "-" leaves that header out.
type Headers struct {
	ClientCert      string `yaml:"client_cert"`       // Client-Cert (RFC 9440)
	ClientCertChain string `yaml:"client_cert_chain"` // Client-Cert-Chain (RFC 9440)
	ID              string `yaml:"id"`                // X-mTLS-ID: 0x hex serial
	Agent           string `yaml:"agent"`             // X-mTLS-Agent: subject DN
	Roles           string `yaml:"roles"`             // X-mTLS-Roles: comma-joined
	LocalID         string `yaml:"local_id"`          // X-mTLS-Local-ID
	OrgID           string `yaml:"org_id"`            // X-mTLS-Org-ID
}

// Rule is what a path prefix requires.
type Rule struct {
	// Path is the prefix, starting with "/". Required.
	Path string `yaml:"path"`
	// Anonymous lets requests without an identified certificate through
	// (in enforce mode); false, the default, requires one.
	Anonymous bool `yaml:"anonymous"`
	// Roles required; both lists may be given.
	Roles Roles `yaml:"roles"`
	// ExemptIPs are CIDRs (or addresses) whose requests pass the checks of
	// enforce mode; their identity is still forwarded when known.
	ExemptIPs []string `yaml:"exempt_ips"`
	// Mode overrides the perimeter's mode.
	Mode string `yaml:"mode"`
}

// Roles are required roles: every one of AllOf, and one of AnyOf.
type Roles struct {
	AnyOf []string `yaml:"any_of"`
	AllOf []string `yaml:"all_of"`
}

// Errors of validation wrap ErrConfig.
var ErrConfig = errors.New("gateway: invalid configuration")

func configErr(p *Perimeter, format string, args ...any) error {
	return fmt.Errorf("%w: perimeter %s: %s", ErrConfig, p.Name, fmt.Sprintf(format, args...))
}

// validate fills the defaults of p and checks it.
func (p *Perimeter) validate() error {
	if p.Name == "" {
		p.Name = p.Listen
		if len(p.Hostnames) > 0 {
			p.Name = p.Hostnames[0]
		}
	}
	if p.Listen == "" {
		return configErr(p, "listen is required")
	}
	if _, _, err := net.SplitHostPort(p.Listen); err != nil {
		return configErr(p, "listen %q: %v", p.Listen, err)
	}
	for i, h := range p.Hostnames {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if h == "" || strings.Contains(h[min(len(h), 1):], "*") || strings.HasPrefix(h, "*") && !strings.HasPrefix(h, "*.") {
			return configErr(p, "hostname %q: only a leading \"*.\" wildcard is allowed", p.Hostnames[i])
		}
		p.Hostnames[i] = h
	}
	if err := p.TLS.check(); err != nil {
		return configErr(p, "%v", err)
	}
	switch p.ClientCert {
	case "":
		p.ClientCert = ClientCertRequest
	case ClientCertRequest, ClientCertRequire:
	default:
		return configErr(p, "client_cert %q: want %q or %q", p.ClientCert, ClientCertRequest, ClientCertRequire)
	}
	if err := checkMode(&p.Mode, ModeEnforce); err != nil {
		return configErr(p, "%v", err)
	}
	if err := p.checkUpstream(); err != nil {
		return err
	}
	p.Headers.defaults()
	for _, n := range append(p.Headers.names(), p.StripHeaders...) {
		if !validHeaderName(n) {
			return configErr(p, "header name %q is not valid", n)
		}
	}
	hasRoot := false
	for i := range p.Paths {
		r := &p.Paths[i]
		if !strings.HasPrefix(r.Path, "/") {
			return configErr(p, "path %q must start with /", r.Path)
		}
		hasRoot = hasRoot || r.Path == "/"
		if err := checkMode(&r.Mode, p.Mode); err != nil {
			return configErr(p, "path %s: %v", r.Path, err)
		}
		if r.Anonymous && (len(r.Roles.AnyOf) > 0 || len(r.Roles.AllOf) > 0) {
			return configErr(p, "path %s: roles need an identity, so anonymous cannot be set", r.Path)
		}
		for _, c := range r.ExemptIPs {
			if _, err := parsePrefix(c); err != nil {
				return configErr(p, "path %s: exempt_ips %q: %v", r.Path, c, err)
			}
		}
	}
	if !hasRoot {
		p.Paths = append(p.Paths, Rule{Path: "/", Mode: p.Mode})
	}
	return nil
}

func checkMode(m *string, def string) error {
	switch *m {
	case "":
		*m = def
	case ModeEnforce, ModeForward:
	default:
		return fmt.Errorf("mode %q: want %q or %q", *m, ModeEnforce, ModeForward)
	}
	return nil
}

// checkUpstream applies the rule of the hop to the upstream: loopback,
// or TLS, or an explicit insecure choice.
func (p *Perimeter) checkUpstream() error {
	all := p.upstreamURLs()
	if len(all) == 0 {
		return configErr(p, "upstream is required")
	}
	https, path := false, ""
	for i, raw := range all {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return configErr(p, "upstream %q is not a URL like http://127.0.0.1:8080", raw)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return configErr(p, "upstream %q: no query or fragment", raw)
		}
		switch u.Scheme {
		case "https":
			https = true
		case "http":
			if !isLoopback(u.Hostname()) && !p.InsecurePlaintextUpstream {
				return configErr(p, "upstream %q is plain text on a non-loopback address: use https (the gateway presents its agent certificate), or set insecure_plaintext_upstream: true", raw)
			}
		default:
			return configErr(p, "upstream %q: scheme must be http or https", raw)
		}
		// A request retried on another upstream keeps its path: the
		// upstreams differ only by scheme and address.
		if i == 0 {
			path = strings.TrimSuffix(u.Path, "/")
		} else if strings.TrimSuffix(u.Path, "/") != path {
			return configErr(p, "upstreams %q and %q have different paths", all[0], raw)
		}
	}
	if p.UpstreamCA != "" && !https {
		return configErr(p, "upstream_ca is set but upstream %q is not https", all[0])
	}
	return nil
}

// upstreamURLs is Upstream followed by Upstreams, without repeats.
func (p *Perimeter) upstreamURLs() []string {
	var out []string
	for _, u := range append([]string{p.Upstream}, p.Upstreams...) {
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// check requires files, or auto without files.
func (t TLSFiles) check() error {
	switch {
	case t.Auto && (t.CertFile != "" || t.KeyFile != ""):
		return errors.New("tls: auto: true obtains the certificate from the authority; remove cert and key")
	case t.Auto:
		return nil
	case t.CertFile == "" || t.KeyFile == "":
		return errors.New("tls.cert and tls.key are required (or tls: {auto: true})")
	}
	return nil
}

// isLoopback reports whether host is "localhost" or a loopback address.
// Other names are not resolved: a name may point anywhere later.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (h *Headers) defaults() {
	set := func(f *string, d string) {
		if *f == "" {
			*f = d
		}
	}
	set(&h.ClientCert, "Client-Cert")
	set(&h.ClientCertChain, "Client-Cert-Chain")
	set(&h.ID, "X-mTLS-ID")
	set(&h.Agent, "X-mTLS-Agent")
	set(&h.Roles, "X-mTLS-Roles")
	set(&h.LocalID, "X-mTLS-Local-ID")
	set(&h.OrgID, "X-mTLS-Org-ID")
}

// names returns the configured names, without the "-" of left-out ones.
func (h *Headers) names() []string {
	var out []string
	for _, n := range []string{h.ClientCert, h.ClientCertChain, h.ID, h.Agent, h.Roles, h.LocalID, h.OrgID} {
		if n != "-" {
			out = append(out, n)
		}
	}
	return out
}
