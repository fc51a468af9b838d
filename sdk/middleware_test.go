package sdk_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/sdk"
)

// svc is a service using the middleware, on loopback, reachable as
// https://shop.acme.mtls.test:PORT (the shop's default domain, which the
// authority accepts as return URL).
type svc struct {
	m      *sdk.Middleware
	ts     *httptest.Server
	public string
}

// seen is what the test handler reports of a request.
type seen struct {
	Serial, Method, Device, Header string
	Roles                          []string
	Trusted                        []string
	Identified                     bool
	SpoofedHeaders                 []string
}

func echo(w http.ResponseWriter, r *http.Request) {
	var s seen
	if p := sdk.FromContext(r.Context()); p != nil {
		s = seen{Identified: true, Serial: p.Serial, Method: string(p.Method), Device: p.DeviceName, Header: p.Header, Roles: p.Roles, Trusted: p.TrustedHeaders}
	}
	for _, h := range []string{"Client-Cert", "X-Mtls-Id", "X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert", "X-Ssl-Client-Cert"} {
		if r.Header.Get(h) != "" {
			s.SpoofedHeaders = append(s.SpoofedHeaders, h)
		}
	}
	_ = json.NewEncoder(w).Encode(s)
}

func (e *env) newService(t testing.TB, opts ...sdk.MiddlewareOption) *svc {
	t.Helper()
	m, err := sdk.NewMiddleware(context.Background(), e.client, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	mux := http.NewServeMux()
	mux.Handle("/hello", m.Wrap(http.HandlerFunc(echo)))
	mux.Handle("/public", m.Identify(http.HandlerFunc(echo)))
	mux.Handle("/admin", m.RequireRoles("administrator")(http.HandlerFunc(echo)))
	ts := httptest.NewUnstartedServer(mux)
	ts.TLS = m.TLSConfig(nil)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
	s := &svc{m: m, ts: ts, public: "https://shop.acme.mtls.test:" + port}
	return s
}

// browser returns a client that reaches the service at its public name,
// keeps cookies and does not follow redirects; person may be nil.
func (s *svc) browser(person *device) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(s.ts.Certificate())
	conf := &tls.Config{RootCAs: pool, ServerName: "example.com"}
	if person != nil {
		conf.Certificates = []tls.Certificate{person.tls}
	}
	addr := s.ts.Listener.Addr().String()
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar: jar, Timeout: 20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: conf, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func get(t testing.TB, hc *http.Client, u string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func decodeSeen(t testing.TB, body string) seen {
	t.Helper()
	var s seen
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatalf("handler answer %q: %v", body, err)
	}
	return s
}

// signIn runs the redirect flow for path: the service sends the browser
// to the sign-on page, the person consents there with their certificate,
// and the service sets its session cookie. It returns the final answer.
func (e *env) signIn(t testing.TB, s *svc, hc *http.Client, person *device, path string) (*http.Response, string) {
	t.Helper()
	resp, body := get(t, hc, s.public+path, nil)
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), e.url+"/signon/") {
		t.Fatalf("first visit: %s to %q\n%s", resp.Status, resp.Header.Get("Location"), body)
	}
	back := e.signon(person, resp.Header.Get("Location"))
	u, _ := url.Parse(back)
	want, _ := url.Parse(s.public + path)
	if u.Query().Get(sdk.IntentParam) == "" || u.Host != want.Host || u.Path != want.Path {
		t.Fatalf("sign-on returned to %s", back)
	}
	resp, body = get(t, hc, back, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != s.public+path {
		t.Fatalf("return from sign-on: %s to %q\n%s", resp.Status, resp.Header.Get("Location"), body)
	}
	if c := resp.Header.Get("Set-Cookie"); !strings.Contains(c, "Secure") || !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax") {
		t.Errorf("session cookie %q", c)
	}
	return get(t, hc, s.public+path, nil)
}

func TestMiddlewareIdentifies(t *testing.T) {
	backends(t, func(t *testing.T, store mtlsid.Store) {
		e := newEnv(t, store)
		s := e.newService(t)
		alice := e.enroll("alice-laptop")
		bob := e.enroll("bob-phone")
		var bobBrowser *http.Client

		t.Run("certificate", func(t *testing.T) {
			// PB 0003 first: the redirect flow asks alice once; after
			// that her certificate alone identifies her.
			hc := s.browser(alice)
			resp, body := e.signIn(t, s, hc, alice, "/hello")
			got := decodeSeen(t, body)
			if resp.StatusCode != 200 || got.Serial != alice.serial {
				t.Fatalf("after sign-on: %s %+v", resp.Status, got)
			}
			fresh := s.browser(alice) // no cookie: the certificate only
			resp, body = get(t, fresh, s.public+"/hello", nil)
			got = decodeSeen(t, body)
			if resp.StatusCode != 200 || got.Method != "Certificate" || got.Serial != alice.serial || got.Device != "alice-laptop" {
				t.Fatalf("by certificate: %s %+v", resp.Status, got)
			}
		})

		t.Run("redirect", func(t *testing.T) {
			hc := s.browser(nil) // bob's browser shows no certificate to the service
			bobBrowser = hc
			resp, body := e.signIn(t, s, hc, bob, "/hello?x=1")
			got := decodeSeen(t, body)
			if resp.StatusCode != 200 || got.Method != "Redirect" || got.Serial != bob.serial {
				t.Fatalf("by redirect: %s %+v", resp.Status, got)
			}
			// The next request is answered from the cookie, no redirect.
			resp, body = get(t, hc, s.public+"/hello", nil)
			if resp.StatusCode != 200 || decodeSeen(t, body).Method != "Redirect" {
				t.Fatalf("second request: %s %s", resp.Status, body)
			}
		})

		t.Run("no certificate", func(t *testing.T) {
			hc := s.browser(nil)
			resp, body := get(t, hc, s.public+"/public", nil)
			if resp.StatusCode != 200 || decodeSeen(t, body).Identified {
				t.Errorf("optional identification: %s %s", resp.Status, body)
			}
			req, _ := http.NewRequest(http.MethodPost, s.public+"/hello", nil)
			r2, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(r2.Body)
			r2.Body.Close()
			if r2.StatusCode != http.StatusUnauthorized || !strings.Contains(string(page), "Get a certificate") || !strings.Contains(string(page), e.url+"/") {
				t.Errorf("POST without identity: %s\n%s", r2.Status, page)
			}
		})

		t.Run("roles", func(t *testing.T) {
			hc := s.browser(alice)
			resp, body := get(t, hc, s.public+"/admin", nil)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "administrator") {
				t.Fatalf("without the role: %s\n%s", resp.Status, body)
			}
			carol := e.enroll("carol")
			e.grant(carol, "administrator")
			hc = s.browser(carol)
			resp, body = e.signIn(t, s, hc, carol, "/admin")
			if got := decodeSeen(t, body); resp.StatusCode != 200 || strings.Join(got.Roles, ",") != "administrator" {
				t.Fatalf("with the role: %s %+v", resp.Status, got)
			}
		})

		t.Run("revocation push", func(t *testing.T) {
			hc := s.browser(alice)
			if resp, _ := get(t, hc, s.public+"/hello", nil); resp.StatusCode != 200 {
				t.Fatalf("before revocation: %s", resp.Status)
			}
			if err := e.auth.RevokeLocal(context.Background(), alice.serial, 1); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			for {
				resp, body := get(t, s.browser(alice), s.public+"/hello", nil)
				if resp.StatusCode == http.StatusForbidden && strings.Contains(body, "revoked") {
					t.Logf("refused %v after the revocation", time.Since(start))
					break
				}
				if time.Since(start) > time.Second {
					t.Fatalf("revoked certificate still accepted after 1 s: %s %s", resp.Status, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// A session of the redirect flow ends with its certificate.
			if bobBrowser == nil {
				t.Skip("redirect subtest did not run")
			}
			if err := e.auth.RevokeLocal(context.Background(), bob.serial, 1); err != nil {
				t.Fatal(err)
			}
			start = time.Now()
			for {
				resp, body := get(t, bobBrowser, s.public+"/hello", nil)
				if resp.StatusCode == http.StatusForbidden && strings.Contains(body, "revoked") {
					break
				}
				if time.Since(start) > time.Second {
					t.Fatalf("session of a revoked certificate still accepted after 1 s: %s %s", resp.Status, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	})
}

func TestMiddlewareCacheExpiry(t *testing.T) {
	e := newEnv(t, sqliteStore(t))
	s := e.newService(t, sdk.WithCache(100, 300*time.Millisecond), sdk.WithoutRevocationEvents())
	alice := e.enroll("alice")
	hc := s.browser(alice)
	if resp, _ := e.signIn(t, s, hc, alice, "/hello"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	if err := e.auth.RevokeLocal(context.Background(), alice.serial, 1); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, s.browser(alice), s.public+"/hello", nil); resp.StatusCode != 200 {
		t.Fatalf("cached answer not used: %s", resp.Status)
	}
	time.Sleep(400 * time.Millisecond)
	if resp, body := get(t, s.browser(alice), s.public+"/hello", nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("after the TTL: %s %s", resp.Status, body)
	}
}

func TestMiddlewareHeaders(t *testing.T) {
	e := newEnv(t, sqliteStore(t))
	alice := e.enroll("alice")
	// alice shares her identity once, through the page.
	s0 := e.newService(t)
	if resp, _ := e.signIn(t, s0, s0.browser(alice), alice, "/hello"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	dialects := map[string]http.Header{
		"Client-Cert":                 {"Client-Cert": {":" + b64(alice.cert.Raw) + ":"}},
		"X-Forwarded-Client-Cert":     {"X-Forwarded-Client-Cert": {xfcc(alice.cert)}},
		"X-Forwarded-Tls-Client-Cert": {"X-Forwarded-Tls-Client-Cert": {url.QueryEscape(b64(alice.cert.Raw))}},
		"X-Ssl-Client-Cert":           {"X-Ssl-Client-Cert": {nginxEscape(pemOf(alice.cert))}},
		"X-Mtls-Id":                   {"X-Mtls-Id": {alice.serial}},
	}

	t.Run("untrusted address", func(t *testing.T) {
		s := e.newService(t, sdk.WithTrustedProxies("10.0.0.0/8"))
		for name, h := range dialects {
			resp, body := get(t, s.browser(nil), s.public+"/public", h)
			got := decodeSeen(t, body)
			if resp.StatusCode != 200 || got.Identified || len(got.SpoofedHeaders) > 0 {
				t.Errorf("%s from an untrusted address: %s %+v", name, resp.Status, got)
			}
			resp, _ = get(t, s.browser(nil), s.public+"/hello", h)
			if resp.StatusCode != http.StatusSeeOther {
				t.Errorf("%s from an untrusted address identified someone: %s", name, resp.Status)
			}
		}
	})

	t.Run("trusted proxy", func(t *testing.T) {
		s := e.newService(t, sdk.WithTrustedProxies("127.0.0.1/32"))
		for name, h := range dialects {
			resp, body := get(t, s.browser(nil), s.public+"/hello", h)
			got := decodeSeen(t, body)
			if resp.StatusCode != 200 || got.Serial != alice.serial || got.Method != "Certificate" || got.Header != name {
				t.Errorf("%s from the trusted proxy: %s %+v", name, resp.Status, got)
			}
		}
		h := http.Header{"Client-Cert": {":bm90IGEgY2VydA==:"}}
		if resp, _ := get(t, s.browser(nil), s.public+"/hello", h); resp.StatusCode != http.StatusBadGateway {
			t.Errorf("malformed header from the trusted proxy: %s", resp.Status)
		}
	})

	t.Run("trusted proxy certificate", func(t *testing.T) {
		proxy := e.enroll("gateway")
		fp := fmt.Sprintf("%x", sha256Sum(proxy.cert.Raw))
		s := e.newService(t, sdk.WithTrustedProxyCerts(fp))
		resp, body := get(t, s.browser(proxy), s.public+"/hello", dialects["Client-Cert"])
		if got := decodeSeen(t, body); resp.StatusCode != 200 || got.Serial != alice.serial {
			t.Errorf("from the proxy's certificate: %s %+v", resp.Status, got)
		}
		resp, body = get(t, s.browser(alice), s.public+"/public", http.Header{"X-Mtls-Id": {proxy.serial}})
		if got := decodeSeen(t, body); got.Serial != alice.serial || len(got.SpoofedHeaders) > 0 {
			t.Errorf("another certificate's headers: %s %+v", resp.Status, got)
		}
	})
}
