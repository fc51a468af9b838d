package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// UpstreamDownFor is how long an upstream whose connection could not be
// made is skipped by the round robin (unless every upstream is down).
const UpstreamDownFor = 5 * time.Second

// pool is a perimeter's upstreams, used in turn (round robin). It is the
// reverse proxy's transport: a connection that cannot be made marks the
// upstream down for UpstreamDownFor, and the request is sent once more to
// another upstream when nothing of it was sent and it is safe to repeat
// (GET, HEAD, OPTIONS or TRACE without a body).
type pool struct {
	perimeter  string
	base       *url.URL // the first upstream: the reverse proxy's target
	backends   []*backend
	next       atomic.Uint64
	transports []interface{ CloseIdleConnections() }
	metrics    *Metrics
	now        func() time.Time
}

type backend struct {
	raw       string
	url       *url.URL
	rt        http.RoundTripper
	inline    *inlineTransport // plain-HTTP upstreams: the fast path beside rt
	bare      bool             // the URL has no path or query: requests go with their own target
	downUntil atomic.Int64     // UnixNano; 0: up
}

func (b *backend) down(now time.Time) bool { return now.UnixNano() < b.downUntil.Load() }

func (g *Gateway) newPool(pc Perimeter, agent *sdk.CertSource) (*pool, error) {
	p := &pool{perimeter: pc.Name, metrics: g.metrics, now: time.Now}
	var plain, secure *http.Transport
	for _, raw := range pc.upstreamURLs() {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: perimeter %s: upstream %q: %v", ErrConfig, pc.Name, raw, err)
		}
		b := &backend{raw: raw, url: u, bare: (u.Path == "" || u.Path == "/") && u.RawQuery == "" && u.RawPath == ""}
		if u.Scheme == "https" {
			if secure == nil {
				if secure, err = upstreamTransport(pc, agent); err != nil {
					return nil, err
				}
				p.transports = append(p.transports, secure)
			}
			b.rt = secure
		} else {
			if plain == nil {
				plain = newTransport()
				p.transports = append(p.transports, plain)
			}
			if !isLoopback(u.Hostname()) {
				g.log.Warn("INSECURE: plain-text upstream on a non-loopback address; identity headers and traffic cross the network unprotected",
					"perimeter", pc.Name, "upstream", raw)
			}
			b.rt = plain
			port := u.Port()
			if port == "" {
				port = "80"
			}
			b.inline = newInlineTransport(net.JoinHostPort(u.Hostname(), port))
			p.transports = append(p.transports, b.inline)
		}
		p.backends = append(p.backends, b)
	}
	p.base = p.backends[0].url
	return p, nil
}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64 // the default 2 would open a connection per request under load
	return t
}

// upstreamTransport is the transport of https upstreams: the second mTLS
// channel, presenting the agent certificate.
func upstreamTransport(pc Perimeter, agent *sdk.CertSource) (*http.Transport, error) {
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
	t := newTransport()
	t.TLSClientConfig = tc
	return t, nil
}

// String names the upstreams, for logs.
func (p *pool) String() string {
	names := make([]string, len(p.backends))
	for i, b := range p.backends {
		names[i] = b.raw
	}
	return strings.Join(names, ",")
}

// pick returns the next upstream in turn that is up and is not skip; when
// every other one is down, the next in turn anyway (it may be back), and
// nil only when skip is the only upstream.
func (p *pool) pick(skip *backend) *backend {
	n := uint64(len(p.backends))
	if n == 1 {
		if skip != nil {
			return nil
		}
		return p.backends[0]
	}
	start := p.next.Add(1) - 1
	now := p.now()
	var fallback *backend
	for i := range n {
		b := p.backends[(start+i)%n]
		if b == skip {
			continue
		}
		if !b.down(now) {
			return b
		}
		if fallback == nil {
			fallback = b
		}
	}
	return fallback
}

// RoundTrip sends req to an upstream, and once more to another when the
// first could not be connected to and req is safe to repeat.
func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) {
	b := p.pick(nil)
	resp, err := p.send(b, req)
	if err == nil {
		return resp, nil
	}
	p.failed(b, err)
	if !dialFailed(err) || !repeatable(req) {
		return nil, err
	}
	other := p.pick(b)
	if other == nil {
		return nil, err
	}
	resp, err = p.send(other, req)
	if err != nil {
		p.failed(other, err)
		return nil, err
	}
	return resp, nil
}

// send sends req to b: the reverse proxy aimed it at p.base, and the
// upstreams differ only by scheme and address.
func (p *pool) send(b *backend, req *http.Request) (*http.Response, error) {
	rt := b.rt
	if b.inline != nil && b.inline.takes(req) {
		rt = b.inline
	}
	if b.url.Scheme == req.URL.Scheme && b.url.Host == req.URL.Host {
		return rt.RoundTrip(req)
	}
	out := new(http.Request)
	*out = *req
	u := *req.URL
	u.Scheme, u.Host = b.url.Scheme, b.url.Host
	out.URL = &u
	return rt.RoundTrip(out)
}

func (p *pool) failed(b *backend, err error) {
	p.metrics.upstreamErrors.WithLabelValues(p.perimeter, b.raw).Inc()
	if dialFailed(err) {
		b.downUntil.Store(p.now().Add(UpstreamDownFor).UnixNano())
	}
}

func (p *pool) closeIdle() {
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}

// dialFailed reports whether err is a connection that could not be made:
// nothing of the request was sent.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// repeatable reports whether req may be sent again: a safe method and no
// body (RFC 9110 §9.2.1).
func repeatable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody
}

// newBufferPool lends a proxy its copy buffers: without one every proxied
// response allocates (and the runtime clears) 32 KiB.
func newBufferPool() httputil.BufferPool {
	return bufferPool{&sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

type bufferPool struct{ p *sync.Pool }

func (b bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b bufferPool) Put(x []byte) { b.p.Put(&x) }
