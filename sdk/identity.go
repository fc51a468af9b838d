package sdk

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// IdentityClient calls the Identity API (/v1) of an mtlsid server with a
// service's API certificate. Make one with NewIdentityClient; a struct
// literal with URL and HTTP (whose transport must carry the certificate)
// also works, with the default timeout and retries. It is safe for
// concurrent use; reuse one client so that connections are reused.
type IdentityClient struct {
	// URL is the server's base URL, such as https://localhost:8443.
	URL  string
	HTTP *http.Client

	cfg   clientConfig
	certs *CertSource
}

// NewIdentityClient returns a client of the authority at url (such as
// https://id.example.com:8443). Without WithHTTPClient it builds one
// keep-alive transport (HTTP/2 when the server offers it) that presents
// the API certificate of WithCertificate or WithCertificateFiles.
func NewIdentityClient(url string, opts ...Option) (*IdentityClient, error) {
	if !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("sdk: authority URL %q is not https", url)
	}
	c := &IdentityClient{URL: strings.TrimRight(url, "/"), cfg: clientConfig{retries: DefaultRetries, set: true}}
	for _, o := range opts {
		if err := o(&c.cfg); err != nil {
			return nil, err
		}
	}
	c.certs = c.cfg.certs
	c.HTTP = c.cfg.http
	if c.HTTP == nil {
		tc := &tls.Config{RootCAs: c.cfg.roots, MinVersion: tls.VersionTLS12}
		if c.certs != nil {
			tc.GetClientCertificate = c.certs.GetClientCertificate
		}
		c.HTTP = &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     tc,
			TLSHandshakeTimeout: 5 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        64,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return c, nil
}

// Certificates returns the source of the client's API certificate, or nil
// when the client was not given one (WithHTTPClient, or a struct literal).
func (c *IdentityClient) Certificates() *CertSource { return c.certs }

// Self returns a client of the same server's self-authority API sharing
// this client's connections and certificate.
func (c *IdentityClient) Self() *SelfClient { return &SelfClient{URL: c.URL, HTTP: c.HTTP} }

func (c *IdentityClient) log() *slog.Logger {
	if c.cfg.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.cfg.log
}

// Reply is one answer of the Identity API: the wrapping object's name and
// its raw body.
type Reply struct {
	Status int
	Object string
	Body   json.RawMessage
}

// Outcome returns the answer's outcome string, when it has one.
func (r *Reply) Outcome() string {
	var o struct {
		Outcome string `json:"outcome"`
	}
	_ = json.Unmarshal(r.Body, &o)
	return o.Outcome
}

// Decode decodes the answer's object into v.
func (r *Reply) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// Do sends one object (nil sends an empty body: with PUT, a ping) once and
// returns the wrapped answer. Transport errors and answers that are not
// one wrapped object are errors; API outcomes, PB and ER included, are
// not: read them from the Reply. The typed calls below retry and turn
// outcomes into errors; Do is for objects they do not cover.
func (c *IdentityClient) Do(ctx context.Context, method, object string, v any) (*Reply, error) {
	var body []byte
	if v != nil {
		b, err := json.Marshal(map[string]any{object: v})
		if err != nil {
			return nil, err
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+idwire.Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	var env map[string]json.RawMessage
	if err := json.Unmarshal(data, &env); err != nil || len(env) != 1 {
		return nil, fmt.Errorf("sdk: server answered %s with a body that is not one wrapped object", resp.Status)
	}
	for k, b := range env {
		return &Reply{Status: resp.StatusCode, Object: k, Body: b}, nil
	}
	panic("unreachable")
}

// call sends one object, retrying transient failures, and returns the
// answer. A Simple-Response whose outcome is not OK is an *OutcomeError.
func (c *IdentityClient) call(ctx context.Context, method, object string, v any) (*Reply, error) {
	timeout, retries := c.cfg.timeout, c.cfg.retries
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if !c.cfg.set {
		retries = DefaultRetries // a struct literal
	}
	readOnly := object == idwire.ObjIdentityInquiry || object == ""
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		r, err := c.Do(actx, method, object, v)
		cancel()
		transient := false
		switch {
		case err != nil:
			// A request that may have reached the server is repeated only
			// when it changes nothing.
			transient = ctx.Err() == nil && (readOnly || isDialError(err))
		case r.Status == http.StatusServiceUnavailable || r.Outcome() == idwire.ER1106:
			transient = true
			err = &OutcomeError{Outcome: r.Outcome(), Status: r.Status, Message: message(r)}
		}
		if err == nil {
			if r.Object == idwire.ObjSimpleResponse && !isOK(r.Outcome()) {
				return r, &OutcomeError{Outcome: r.Outcome(), Status: r.Status, Message: message(r)}
			}
			return r, nil
		}
		if !transient || attempt >= retries {
			return nil, err
		}
		d := c.backoffFor(attempt)
		c.log().Debug("identity api: retrying", "object", object, "attempt", attempt+1, "wait", d, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(d):
		}
	}
}

func (c *IdentityClient) backoffFor(attempt int) time.Duration {
	first, max := c.cfg.backoff, c.cfg.maxBackoff
	if first == 0 {
		first, max = DefaultBackoff, DefaultMaxBackoff
	}
	d := first << attempt
	if d > max || d <= 0 {
		d = max
	}
	return d/2 + rand.N(d/2+1) // jitter: between half and all of d
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func message(r *Reply) string {
	var s idwire.SimpleResponse
	_ = r.Decode(&s)
	return s.Message
}

// expect decodes the answer's object into out when it is want, and is an
// error otherwise.
func expect(r *Reply, want string, out any) error {
	if r.Object != want {
		return fmt.Errorf("sdk: server answered %s, want %s", r.Object, want)
	}
	return r.Decode(out)
}

// Ping sends an empty PUT: nil when the server knows the API certificate.
func (c *IdentityClient) Ping(ctx context.Context) error {
	_, err := c.call(ctx, http.MethodPut, "", nil)
	return err
}

// Inquire asks who holds the certificate with serial (decimal or 0x hex),
// or who completed the sign-on page for an intent reference. A PB outcome
// (ErrNeedsValidation, ErrCertificateRevoked, ...) is an *OutcomeError.
func (c *IdentityClient) Inquire(ctx context.Context, ref string) (*idwire.IdentityProfile, error) {
	return c.InquireFor(ctx, ref, "")
}

// InquireFor is Inquire relative to another service of the caller's
// organization ("" means the caller's own).
func (c *IdentityClient) InquireFor(ctx context.Context, ref, service string) (*idwire.IdentityProfile, error) {
	r, err := c.call(ctx, http.MethodGet, idwire.ObjIdentityInquiry, idwire.IdentityInquiry{SerialNumber: ref, Service: service})
	if err != nil {
		return nil, err
	}
	var p idwire.IdentityProfile
	return &p, expect(r, idwire.ObjIdentityProfile, &p)
}

// CreateIntent asks for a sign-on intent and returns its reference: send
// the browser to SignonURL(ref).
func (c *IdentityClient) CreateIntent(ctx context.Context, in idwire.Intent) (string, error) {
	r, err := c.call(ctx, http.MethodPut, idwire.ObjIntent, in)
	if err != nil {
		return "", err
	}
	var ref idwire.IntentReference
	return ref.Value, expect(r, idwire.ObjIntentReference, &ref)
}

// SignonURL is the authority's sign-on page for an intent reference.
func (c *IdentityClient) SignonURL(ref string) string {
	return strings.TrimRight(c.URL, "/") + "/signon/" + ref
}

// BindLocalUser binds a local user name to the identity behind a serial.
// ER 0003 (already bound) and ER 0004 (bound to another) are errors.
func (c *IdentityClient) BindLocalUser(ctx context.Context, in idwire.LocalUserInformation) (*idwire.IdentityProfile, error) {
	return c.profileCall(ctx, http.MethodPut, idwire.ObjLocalUserInformation, in)
}

// UnbindLocalUser removes a local user binding (ER 0005 if none).
func (c *IdentityClient) UnbindLocalUser(ctx context.Context, name string) error {
	_, err := c.call(ctx, http.MethodDelete, idwire.ObjLocalUserReference, idwire.LocalUserReference{LocalUserName: name})
	return err
}

// AddTrust awards tokens of trust to a serial's or local user's identity.
func (c *IdentityClient) AddTrust(ctx context.Context, in idwire.Trust) (*idwire.IdentityProfile, error) {
	return c.profileCall(ctx, http.MethodPut, idwire.ObjTrust, in)
}

// SetUserSecret stores secret for a bound local user ("" clears it).
func (c *IdentityClient) SetUserSecret(ctx context.Context, localUser, secret string) (*idwire.IdentityProfile, error) {
	return c.profileCall(ctx, http.MethodPut, idwire.ObjUserSecret, idwire.UserSecret{LocalUserName: localUser, Secret: secret})
}

func (c *IdentityClient) profileCall(ctx context.Context, method, object string, in any) (*idwire.IdentityProfile, error) {
	r, err := c.call(ctx, method, object, in)
	if err != nil {
		return nil, err
	}
	var p idwire.IdentityProfile
	return &p, expect(r, idwire.ObjIdentityProfile, &p)
}

// ReportIntrusion reports a certificate's holder and returns the report's
// reference (ER 0007 if this service reported it already).
func (c *IdentityClient) ReportIntrusion(ctx context.Context, in idwire.IntrusionReport) (string, error) {
	r, err := c.call(ctx, http.MethodPut, idwire.ObjIntrusionReport, in)
	if err != nil {
		return "", err
	}
	var ref idwire.ReferenceNumber
	return ref.Value, expect(r, idwire.ObjReferenceNumber, &ref)
}

// WithdrawIntrusion withdraws a report by its reference.
func (c *IdentityClient) WithdrawIntrusion(ctx context.Context, ref string) error {
	_, err := c.call(ctx, http.MethodDelete, idwire.ObjIntrusionReference, idwire.IntrusionReference{Value: ref})
	return err
}

// ServiceIdentity asks for the service's server certificate. Unless force
// is set, it answers (nil, nil) when no renewal is due.
func (c *IdentityClient) ServiceIdentity(ctx context.Context, force bool) (*idwire.ServiceIdentity, error) {
	r, err := c.call(ctx, http.MethodPut, idwire.ObjServiceIdentityRequest, idwire.ServiceIdentityRequest{ForceRenewal: force})
	if err != nil {
		return nil, err
	}
	if r.Object == idwire.ObjSimpleResponse {
		return nil, nil
	}
	var si idwire.ServiceIdentity
	return &si, expect(r, idwire.ObjServiceIdentity, &si)
}

// ServiceAgentIdentity asks for a new API certificate named agentName; the
// service's other API certificates of that name are revoked.
func (c *IdentityClient) ServiceAgentIdentity(ctx context.Context, agentName string) (*idwire.ServiceIdentity, error) {
	r, err := c.call(ctx, http.MethodPut, idwire.ObjServiceAgentRequest, idwire.ServiceAgentIdentityRequest{AgentName: agentName})
	if err != nil {
		return nil, err
	}
	var si idwire.ServiceIdentity
	return &si, expect(r, idwire.ObjServiceAgentIdentity, &si)
}

// RevokeCertificate revokes one of the service's own certificates.
func (c *IdentityClient) RevokeCertificate(ctx context.Context, serial string) error {
	_, err := c.call(ctx, http.MethodPut, idwire.ObjIdentityRevocation, idwire.IdentityRevocationRequest{SerialNumber: serial})
	return err
}
