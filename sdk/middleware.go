package sdk

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// IntentParam is the query parameter the sign-on page adds to the return
// URL.
const IntentParam = "identity-plus-intent"

// Middleware identifies the people behind requests for a net/http
// service: from the TLS client certificate, from a trusted proxy's
// forwarded headers, or through the authority's sign-on page (the
// redirect flow) and the session cookie it leaves. It looks identities up
// through a bounded cache that follows the authority's revocations. It
// fails closed: a request it cannot identify never reaches a handler
// wrapped with Wrap or RequireRoles. It is safe for concurrent use; Close
// stops its background work.
type Middleware struct {
	c       *IdentityClient
	cfg     mwConfig
	cache   *cache
	sess    *session
	now     func() time.Time
	log     *slog.Logger
	cancel  context.CancelFunc
	watcher sync.WaitGroup
}

// NewMiddleware returns a middleware that asks the authority through
// client. Unless WithClientCAs is given it downloads the authority's
// trust chain (for TLSConfig); unless WithoutRevocationEvents is given it
// follows the revocation stream until Close, waiting up to 2 s for it to
// connect. The cache is emptied whenever the stream (re)connects.
func NewMiddleware(ctx context.Context, client *IdentityClient, opts ...MiddlewareOption) (*Middleware, error) {
	if client == nil {
		return nil, errors.New("sdk: middleware needs a client")
	}
	m := &Middleware{c: client, cfg: mwConfig{
		nginxHeader: http.CanonicalHeaderKey("X-SSL-Client-Cert"), cacheSize: DefaultCacheSize, cacheTTL: DefaultCacheTTL,
		cookieName: DefaultCookieName, sessionTTL: DefaultSessionTTL, page: defaultPage, now: time.Now, log: client.cfg.log,
	}}
	for _, o := range opts {
		if err := o(&m.cfg); err != nil {
			return nil, err
		}
	}
	if m.cfg.signupURL == "" {
		m.cfg.signupURL = strings.TrimRight(client.URL, "/") + "/"
	}
	if m.cfg.sessionKey == nil {
		m.cfg.sessionKey = randomKey()
	}
	m.now, m.log = m.cfg.now, m.cfg.log
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.cache = newCache(m.cfg.cacheSize, m.cfg.cacheTTL, min(negativeTTL, m.cfg.cacheTTL), m.now)
	m.sess = &session{key: m.cfg.sessionKey, name: m.cfg.cookieName, ttl: m.cfg.sessionTTL}
	if m.cfg.clientCAs == nil {
		chain, err := client.Self().TrustChain(ctx)
		if err != nil {
			return nil, err
		}
		m.cfg.clientCAs = x509.NewCertPool()
		if !m.cfg.clientCAs.AppendCertsFromPEM(chain) {
			return nil, errors.New("sdk: the authority's trust chain holds no certificate")
		}
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	if !m.cfg.noEvents {
		first := make(chan struct{})
		var once sync.Once
		connected := func() {
			m.cache.reset()
			once.Do(func() { close(first) })
		}
		m.watcher.Go(func() { _ = client.watchCache(wctx, m.cache, connected) })
		// Wait briefly for the stream, so that a revocation right after
		// start is not missed; the TTL covers it if the stream is late.
		select {
		case <-first:
		case <-time.After(2 * time.Second):
			m.log.Warn("revocation stream not connected yet; continuing")
		case <-ctx.Done():
		}
	}
	return m, nil
}

// Close stops following revocations. The middleware keeps answering from
// its cache and the authority.
func (m *Middleware) Close() error {
	m.cancel()
	m.watcher.Wait()
	return nil
}

// TLSConfig returns a copy of base (nil for a new one) that asks browsers
// for a certificate issued by the authority and verifies it when given
// (tls.VerifyClientCertIfGiven), as the middleware requires: a
// certificate that TLS did not verify is ignored. Set ClientAuth to
// tls.RequireAndVerifyClientCert on the result for a closed circle, where
// the handshake itself refuses people without a certificate.
func (m *Middleware) TLSConfig(base *tls.Config) *tls.Config {
	var c *tls.Config
	if base == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		c = base.Clone()
	}
	c.ClientAuth = tls.VerifyClientCertIfGiven
	c.ClientCAs = m.cfg.clientCAs
	return c
}

// Wrap requires an identified person: others are sent through the
// redirect flow or shown the page.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next, true, nil, false) })
}

// Identify identifies the person when it can and lets everyone through:
// FromContext is nil for anonymous requests. It never redirects.
func (m *Middleware) Identify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next, false, nil, false) })
}

// RequireRoles is Wrap that also requires every one of roles; people
// lacking one get the page with 403.
func (m *Middleware) RequireRoles(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next, true, roles, false) })
	}
}

// RequireAnyRole is Wrap that also requires at least one of roles.
func (m *Middleware) RequireAnyRole(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { m.serve(w, r, next, true, roles, true) })
	}
}

func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler, required bool, roles []string, anyRole bool) {
	proxy := m.fromTrustedProxy(r)
	if !proxy && len(r.Header) > 0 {
		stripIdentityHeaders(r.Header, m.cfg.nginxHeader)
	}
	var res *result
	var err error
	var fwd *forwarded
	switch {
	case proxy:
		fwd, err = fromHeaders(r.Header, m.cfg.nginxHeader)
		if errors.Is(err, errNoHeader) {
			fwd, err = nil, nil
		}
		if err != nil {
			m.log.Warn("trusted proxy sent a malformed identity header", "remote", r.RemoteAddr, "err", err)
			m.page(w, r, Page{Status: http.StatusBadGateway, Title: "Identity not readable",
				Message: "The proxy in front of this service forwarded a client certificate this service cannot read."})
			return
		}
		if fwd != nil {
			var der []byte
			if fwd.cert != nil {
				der = fwd.cert.Raw
			}
			res, err = m.cache.lookup(r.Context(), fwd.serial, der, m.fetch(fwd.serial, fwd.cert))
		}
	case r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.VerifiedChains) > 0:
		leaf := r.TLS.PeerCertificates[0]
		var ok bool
		if res, ok = m.cache.getDER(leaf.Raw); !ok {
			serial := leaf.SerialNumber.String()
			res, err = m.cache.lookup(r.Context(), serial, leaf.Raw, m.fetch(serial, leaf))
		}
	}
	if err != nil {
		m.unavailable(w, r, next, required, err)
		return
	}
	if res != nil {
		if res.err == nil {
			p := res.cert
			if fwd != nil {
				cp := *p
				cp.Header, cp.TrustedHeaders = fwd.header, fwd.trusted
				p = &cp
			}
			m.pass(w, r, next, p, roles, anyRole)
			return
		}
		if !errors.Is(res.err, ErrNeedsValidation) || m.cfg.noRedirect {
			if !required {
				next.ServeHTTP(w, r)
				return
			}
			m.refuse(w, r, res.err)
			return
		}
		// PB 0003: the person has not shared their identity with this
		// service yet; the redirect flow below asks them.
	}
	if ref := r.URL.Query().Get(IntentParam); ref != "" && !m.cfg.noRedirect {
		m.complete(w, r, ref)
		return
	}
	if serial := m.sess.read(r, m.now()); serial != "" {
		res, err := m.cache.lookup(r.Context(), serial, nil, m.fetch(serial, nil))
		if err != nil {
			m.unavailable(w, r, next, required, err)
			return
		}
		if res.err == nil {
			m.pass(w, r, next, res.redirect, roles, anyRole)
			return
		}
		http.SetCookie(w, m.sess.clear())
		if required && !errors.Is(res.err, ErrNeedsValidation) {
			m.refuse(w, r, res.err)
			return
		}
	}
	if !required {
		next.ServeHTTP(w, r)
		return
	}
	if !m.cfg.noRedirect && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		m.start(w, r)
		return
	}
	m.page(w, r, Page{Status: http.StatusUnauthorized, Title: "A certificate is needed",
		Message:   "This service identifies people by a certificate installed on their device. Your browser did not present one.",
		SignupURL: m.cfg.signupURL, RetryURL: m.currentURL(r)})
}

// pass runs next with p in the context, after the role check.
func (m *Middleware) pass(w http.ResponseWriter, r *http.Request, next http.Handler, p *Profile, roles []string, anyRole bool) {
	if len(roles) > 0 {
		ok := !anyRole
		for _, role := range roles {
			if anyRole {
				ok = ok || p.HasRole(role)
			} else {
				ok = ok && p.HasRole(role)
			}
		}
		if !ok {
			m.page(w, r, Page{Status: http.StatusForbidden, Title: "Not allowed",
				Message: "You are identified, but your roles in this service do not include what this page needs. Ask the service's administrator.",
				Roles:   roles})
			return
		}
	}
	next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), profileKey{}, p)))
}

// fetch returns the function that asks the authority about serial.
func (m *Middleware) fetch(serial string, cert *x509.Certificate) func(context.Context) (*result, error) {
	return func(ctx context.Context) (*result, error) {
		start := time.Now()
		ip, err := m.c.Inquire(ctx, serial)
		if m.cfg.inquired != nil {
			m.cfg.inquired(time.Since(start), err)
		}
		var oe *OutcomeError
		if errors.As(err, &oe) && oe.Class() == "PB" {
			return &result{err: oe}, nil
		}
		if err != nil {
			return nil, err
		}
		return newResult(ip, serial, cert), nil
	}
}

func newResult(ip *idwire.IdentityProfile, serial string, cert *x509.Certificate) *result {
	pc := profileFrom(ip, serial, MethodCertificate)
	if cert != nil {
		pc.DeviceName = cert.Subject.CommonName
		if len(cert.Subject.OrganizationalUnit) > 0 {
			pc.DeviceType = cert.Subject.OrganizationalUnit[0]
		}
	}
	pr := *pc
	pr.Method = MethodRedirect
	return &result{cert: pc, redirect: &pr}
}

// start sends the browser to the sign-on page with an Intent whose return
// URL is the current one.
func (m *Middleware) start(w http.ResponseWriter, r *http.Request) {
	ref, err := m.c.CreateIntent(r.Context(), idwire.Intent{Type: "discover", ReturnURL: m.currentURL(r)})
	if err != nil {
		m.log.Error("creating a sign-on intent failed", "err", err)
		m.page(w, r, Page{Status: http.StatusServiceUnavailable, Title: "Sign-on unavailable",
			Message:  "This service could not start the sign-on with its identity authority. Try again in a moment.",
			RetryURL: m.currentURL(r), SignupURL: m.cfg.signupURL})
		return
	}
	http.Redirect(w, r, m.c.SignonURL(ref), http.StatusSeeOther)
}

// complete finishes the redirect flow: the sign-on page sent the browser
// back with an intent reference, which answers once.
func (m *Middleware) complete(w http.ResponseWriter, r *http.Request, ref string) {
	clean := m.currentURL(r)
	ip, err := m.c.Inquire(r.Context(), ref)
	if err != nil {
		var oe *OutcomeError
		if errors.As(err, &oe) && oe.Class() == "PB" {
			m.page(w, r, Page{Status: http.StatusUnauthorized, Title: "Sign-on expired",
				Message: "That sign-on link was already used or has expired. Try again.", Outcome: oe.Outcome, RetryURL: clean})
			return
		}
		m.unavailable(w, r, nil, true, err)
		return
	}
	serial := ip.AuthorizingCertificate
	if serial == "" {
		m.unavailable(w, r, nil, true, errors.New("sdk: intent answered without the authorizing certificate"))
		return
	}
	var cert *x509.Certificate
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && r.TLS.PeerCertificates[0].SerialNumber.String() == serial {
		cert = r.TLS.PeerCertificates[0] // the device that signed on is this one
	}
	m.cache.store(serial, newResult(ip, serial, cert))
	http.SetCookie(w, m.sess.cookie(serial, m.now()))
	http.Redirect(w, r, clean, http.StatusSeeOther)
}

func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, err error) {
	p := Page{Status: http.StatusForbidden, Title: "Certificate not accepted", SignupURL: m.cfg.signupURL}
	var oe *OutcomeError
	if errors.As(err, &oe) {
		p.Outcome = oe.Outcome
	}
	switch {
	case errors.Is(err, ErrCertificateRevoked):
		p.Message = "The certificate your device presented has been revoked. Enroll the device again to get a new one."
	case errors.Is(err, ErrCertificateExpired):
		p.Message = "The certificate your device presented has expired. Renew it, or enroll the device again."
	case errors.Is(err, ErrIntruder):
		p.Message = "This service has reported the certificate your device presented."
		p.SignupURL = ""
	case errors.Is(err, ErrNeedsValidation):
		p.Message = "You have not yet shared your identity with this service."
	default:
		p.Message = "The identity authority does not know the certificate your device presented."
	}
	m.page(w, r, p)
}

// unavailable answers when the authority cannot be asked: the page for a
// required identity (fail closed), the handler anonymously otherwise.
func (m *Middleware) unavailable(w http.ResponseWriter, r *http.Request, next http.Handler, required bool, err error) {
	m.log.Error("identity lookup failed", "err", err)
	if !required && next != nil {
		next.ServeHTTP(w, r)
		return
	}
	m.page(w, r, Page{Status: http.StatusServiceUnavailable, Title: "Identity service unavailable",
		Message: "This service cannot reach its identity authority right now. Try again in a moment.", RetryURL: m.currentURL(r)})
}

func (m *Middleware) page(w http.ResponseWriter, r *http.Request, p Page) { m.cfg.page(w, r, p) }

// TrustsProxies reports whether the middleware reads forwarded identity
// headers from some peers (WithTrustedProxies, WithTrustedProxyCerts):
// code that identifies requests by their TLS connection alone, as
// IdentifyTLS does, must not then stand in for Wrap.
func (m *Middleware) TrustsProxies() bool { return len(m.cfg.proxies) > 0 || len(m.cfg.proxyCerts) > 0 }

// fromTrustedProxy reports whether r comes from a configured proxy.
func (m *Middleware) fromTrustedProxy(r *http.Request) bool {
	if len(m.cfg.proxies) > 0 {
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			a := ap.Addr().Unmap()
			for _, p := range m.cfg.proxies {
				if p.Contains(a) {
					return true
				}
			}
		}
	}
	if len(m.cfg.proxyCerts) > 0 && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 && len(r.TLS.VerifiedChains) > 0 {
		return m.cfg.proxyCerts[sha256.Sum256(r.TLS.PeerCertificates[0].Raw)]
	}
	return false
}

// currentURL is the URL the browser asked for, on the public address,
// without the intent parameter.
func (m *Middleware) currentURL(r *http.Request) string {
	u := url.URL{Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	if q := r.URL.Query(); q.Has(IntentParam) {
		q.Del(IntentParam)
		u.RawQuery = q.Encode()
	}
	if p := m.cfg.publicURL; p != nil {
		u.Scheme, u.Host, u.Path = p.Scheme, p.Host, p.Path+r.URL.Path
		return u.String()
	}
	u.Scheme, u.Host = "http", r.Host
	if r.TLS != nil || m.fromTrustedProxy(r) && r.Header.Get("X-Forwarded-Proto") == "https" {
		u.Scheme = "https"
	}
	return u.String()
}
