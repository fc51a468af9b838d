package server_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/server"
	"software.sslmate.com/src/go-pkcs12"
)

// browser returns a client that keeps cookies, as a browser does, and
// presents d's certificate (none if d is nil).
func (e *env) browser(d *device) *http.Client {
	var cert *tls.Certificate
	if d != nil {
		cert = &d.tls
	}
	hc := e.httpClient(cert)
	hc.Jar, _ = cookiejar.New(nil)
	return hc
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// formToken returns the CSRF token of the first form in a page.
func formToken(t testing.TB, body []byte) string {
	t.Helper()
	m := csrfRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("page has no CSRF token:\n%s", body)
	}
	return string(m[1])
}

// getPage fetches a page and returns its status and body.
func getPage(t testing.TB, hc *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := hc.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// submit loads the page at from, then posts form to action with that
// page's CSRF token, as a person pressing the button would.
func submit(t testing.TB, hc *http.Client, base, from, action string, form url.Values) (int, string) {
	t.Helper()
	_, page := getPage(t, hc, base+from)
	form.Set("csrf", formToken(t, []byte(page)))
	resp, err := hc.PostForm(base+action, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	passwordRE = regexp.MustCompile(`id="password">([^<]+)<`)
	p12RE      = regexp.MustCompile(`href="data:application/x-pkcs12;base64,([^"]+)"`)
	serialRE   = regexp.MustCompile(`id="serial">([0-9]+)<`)
)

// browserCert reads the certificate page: it decodes the offered PKCS#12
// with the password shown, and returns the device as a browser holds it.
func browserCert(t testing.TB, page string) *device {
	t.Helper()
	pw, p12 := passwordRE.FindStringSubmatch(page), p12RE.FindStringSubmatch(page)
	if pw == nil || p12 == nil {
		t.Fatalf("no password or PKCS#12 on the page:\n%s", page)
	}
	der, err := base64.StdEncoding.DecodeString(html.UnescapeString(p12[1]))
	if err != nil {
		t.Fatal(err)
	}
	key, cert, _, err := pkcs12.DecodeChain(der, html.UnescapeString(pw[1]))
	if err != nil {
		t.Fatalf("PKCS#12 does not open with the password shown: %v", err)
	}
	if s := serialRE.FindStringSubmatch(page); s == nil || s[1] != cert.SerialNumber.String() {
		t.Fatalf("serial shown %v, certificate has %s", s, cert.SerialNumber)
	}
	return &device{cert: cert, serial: cert.SerialNumber.String(), tls: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
}

func TestPagesWithoutCertificate(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		hc := e.browser(nil)
		for _, tc := range []struct {
			name, path string
			status     int
			want       string
		}{
			{"home", "/", http.StatusOK, "did not present an mtlsid certificate"},
			{"my", "/my", http.StatusUnauthorized, `href="/signup"`},
			{"test page", "/my/test", http.StatusUnauthorized, "a certificate is needed"},
			{"orgs", "/orgs", http.StatusUnauthorized, "a certificate is needed"},
			{"trust", "/trust", http.StatusOK, mtlsid.Fingerprint(e.ca.Root().Raw)},
			{"sign-up", "/signup", http.StatusOK, `name="token"`},
			{"unknown", "/no/such/page", http.StatusNotFound, "Page not found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := hc.Get(e.url + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.want) {
					t.Errorf("%s: %s, want %d with %q:\n%s", tc.path, resp.Status, tc.status, tc.want, body)
				}
				csp := resp.Header.Get("Content-Security-Policy")
				if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe-inline") {
					t.Errorf("CSP %q", csp)
				}
				if resp.Header.Get("Strict-Transport-Security") == "" {
					t.Error("no HSTS")
				}
			})
		}
		if st, css := getPage(t, hc, e.url+"/assets/style.css"); st != http.StatusOK || !strings.Contains(css, "font") {
			t.Errorf("style sheet: %d", st)
		}
	})
}

func TestSignupWithToken(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		hc := e.browser(nil)
		token := e.token(mtlsid.TokenDevice)

		t.Run("without CSRF token", func(t *testing.T) {
			before := e.auditLen()
			getPage(t, hc, e.url+"/signup") // the cookie, but no token in the form
			resp, err := hc.PostForm(e.url+"/signup", url.Values{"token": {token}, "name": {"x"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("status %s", resp.Status)
			}
			if e.auditLen() != before {
				t.Error("a refused form changed something")
			}
		})
		t.Run("without enrollment token", func(t *testing.T) {
			st, body := submit(t, hc, e.url, "/signup", "/signup", url.Values{"name": {"laptop"}})
			if st != http.StatusUnauthorized || !strings.Contains(body, "needs an enrollment token") {
				t.Errorf("%d\n%s", st, body)
			}
		})
		var d *device
		t.Run("with token", func(t *testing.T) {
			st, body := submit(t, hc, e.url, "/signup", "/signup", url.Values{"token": {token}, "name": {"Anna's laptop"}, "type": {"Browser"}})
			if st != http.StatusOK {
				t.Fatalf("%d\n%s", st, body)
			}
			for _, want := range []string{"Chrome or Edge", "Firefox", "Safari on macOS", "Windows", "Android", "iPhone", "Restart the browser", "/ca/root.crt"} {
				if !strings.Contains(body, want) {
					t.Errorf("certificate page lacks %q", want)
				}
			}
			d = browserCert(t, body)
			if d.cert.Subject.CommonName != "Anna's laptop" || d.cert.Subject.OrganizationalUnit[0] != mtlsid.DeviceBrowser {
				t.Errorf("subject %s", d.cert.Subject)
			}
		})
		t.Run("token used twice", func(t *testing.T) {
			st, body := submit(t, hc, e.url, "/signup", "/signup", url.Values{"token": {token}, "name": {"again"}})
			if st != http.StatusGone || !strings.Contains(body, "already used") {
				t.Errorf("%d\n%s", st, body)
			}
		})
		t.Run("recognised by the certificate", func(t *testing.T) {
			st, body := getPage(t, e.browser(d), e.url+"/my")
			if st != http.StatusOK || !strings.Contains(body, "Anna&#39;s laptop") || !strings.Contains(body, d.serial) {
				t.Errorf("%d\n%s", st, body)
			}
		})
	})
}

func TestOpenSignup(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t), func(a *authority.Config, s *server.Config) { a.OpenSignup, s.SignupsPerHour = true, 2 })
		hc := e.browser(nil)
		st, body := submit(t, hc, e.url, "/signup", "/signup", url.Values{"name": {"phone"}, "type": {"Mobile"}})
		if st != http.StatusOK {
			t.Fatalf("%d\n%s", st, body)
		}
		d := browserCert(t, body)
		if d.cert.Subject.OrganizationalUnit[0] != mtlsid.DeviceMobile {
			t.Errorf("subject %s", d.cert.Subject)
		}
		if st, body := submit(t, hc, e.url, "/signup", "/signup", url.Values{"name": {"agent"}, "type": {"Agent"}}); st != http.StatusBadRequest {
			t.Errorf("agent type: %d\n%s", st, body)
		}
		if st, body := submit(t, hc, e.url, "/signup", "/signup", url.Values{"name": {"third"}}); st != http.StatusTooManyRequests {
			t.Errorf("third sign-up in the hour: %d\n%s", st, body)
		}
	})
}

func TestMyIdentityPage(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		laptop := e.enroll("laptop", mtlsid.TokenDevice)
		hc := e.browser(laptop)

		// Add a device: the page gives a token and the enroll command.
		st, body := submit(t, hc, e.url, "/my", "/my/token", url.Values{"label": {"phone"}})
		if st != http.StatusOK || !strings.Contains(body, "mtlsid enroll mtid_") || !strings.Contains(body, "/signup?token=mtid_") {
			t.Fatalf("%d\n%s", st, body)
		}
		token := regexp.MustCompile(`id="token">(mtid_[^<]+)<`).FindStringSubmatch(body)[1]
		st, body = submit(t, e.browser(nil), e.url, "/signup?token="+token, "/signup", url.Values{"token": {token}, "name": {"phone"}, "type": {"Mobile"}})
		if st != http.StatusOK {
			t.Fatalf("%d\n%s", st, body)
		}
		phone := browserCert(t, body)
		if e.record(phone).IdentityID != e.record(laptop).IdentityID {
			t.Fatal("the token's device joined another identity")
		}

		_, body = getPage(t, hc, e.url+"/my")
		for _, want := range []string{"laptop", "phone", phone.serial, "this browser", "Days left", "active"} {
			if !strings.Contains(body, want) {
				t.Errorf("/my lacks %q", want)
			}
		}

		stranger := e.enroll("stranger", mtlsid.TokenDevice)
		if st, _ := submit(t, hc, e.url, "/my", "/my/revoke", url.Values{"serial": {stranger.serial}}); st != http.StatusForbidden {
			t.Errorf("revoking another identity's device: %d", st)
		}
		if st, _ := submit(t, hc, e.url, "/my", "/my/revoke", url.Values{"serial": {laptop.serial}}); st != http.StatusBadRequest {
			t.Errorf("revoking this browser without confirmation: %d", st)
		}
		st, body = submit(t, hc, e.url, "/my", "/my/revoke", url.Values{"serial": {phone.serial}})
		if st != http.StatusOK || !strings.Contains(body, "was revoked") {
			t.Errorf("revoke: %d\n%s", st, body)
		}
		if c, _ := e.store.Certificate(ctx, phone.serial); !c.Revoked() {
			t.Error("phone not revoked")
		}
		if st, _ := getPage(t, e.browser(phone), e.url+"/my"); st != http.StatusUnauthorized {
			t.Errorf("revoked device on /my: %d", st)
		}

		// Renew (and rename) this browser's certificate.
		st, body = submit(t, hc, e.url, "/my", "/my/renew", url.Values{"name": {"laptop, renamed"}})
		if st != http.StatusOK {
			t.Fatalf("renew: %d\n%s", st, body)
		}
		renewed := browserCert(t, body)
		if renewed.cert.Subject.CommonName != "laptop, renamed" || e.record(renewed).RenewedFrom != laptop.serial {
			t.Errorf("renewed %s from %q", renewed.cert.Subject, e.record(renewed).RenewedFrom)
		}
	})
}

func TestMyTestPage(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		admin := e.enroll("admin", mtlsid.TokenDevice)
		svc := e.org(admin, "acme", "shop")
		api := e.apiCert(admin, svc.ID, false)
		person := e.enroll("anna-laptop", mtlsid.TokenDevice)
		hc := e.browser(person)

		_, body := getPage(t, hc, e.url+"/my/test")
		if !strings.Contains(body, "none yet") || !strings.Contains(body, "TLS 1.3") {
			t.Errorf("before any call:\n%s", body)
		}
		if err := e.auth.DefineRole(ctx, e.record(admin), svc.ID, "editor"); err != nil {
			t.Fatal(err)
		}
		if err := e.auth.GrantRole(ctx, e.record(admin), svc.ID, person.serial, "editor"); err != nil {
			t.Fatal(err)
		}
		e.inquire(api, person.serial)
		req, _ := http.NewRequest(http.MethodGet, e.url+"/my/test", nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		for _, want := range []string{`id="method">Certificate<`, "shop.acme", "editor", "X-Forwarded-For: 203.0.113.9", person.serial, "anna-laptop"} {
			if !strings.Contains(body, want) {
				t.Errorf("test page lacks %q", want)
			}
		}

		// A redirect sign-on makes the method Redirect.
		r := e.call(api, http.MethodPut, idwire.ObjIntent, idwire.Intent{ReturnURL: "https://shop.acme.mtls.test/back"})
		var ref idwire.IntentReference
		_ = r.Decode(&ref)
		e.signon(person, ref.Value)
		e.inquire(api, ref.Value)
		if _, body = getPage(t, hc, e.url+"/my/test"); !strings.Contains(body, `id="method">Redirect<`) {
			t.Errorf("after the redirect sign-on:\n%s", body)
		}
	})
}
