package server_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/sdk"
)

// noContact fails the test if the identity has contact details stored.
func (e *env) noContact(identityID string) {
	e.t.Helper()
	if c, err := e.store.Contact(context.Background(), identityID); mtlsid.ErrorKind(err) != mtlsid.KindNotFound {
		e.t.Errorf("contact stored: %+v %v", c, err)
	}
}

// storedContact returns the identity's contact details with the secret.
func (e *env) storedContact(identityID string) *mtlsid.Contact {
	e.t.Helper()
	c, err := e.store.Contact(context.Background(), identityID)
	if err != nil {
		e.t.Fatalf("contact: %v", err)
	}
	return c
}

// TestContactValidation: the authority refuses an address or webhook it
// cannot use, storing nothing; it keeps the webhook secret while the URL
// is unchanged, makes a new one for a new URL or on request, and never
// shows a stored one back.
func TestContactValidation(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		me := e.record(e.enroll("anna", mtlsid.TokenDevice))
		for _, tc := range []struct {
			name string
			req  authority.ContactRequest
		}{
			{"not an address", authority.ContactRequest{Email: "anna"}},
			{"address with a name", authority.ContactRequest{Email: "Anna <anna@example.com>"}},
			{"two addresses", authority.ContactRequest{Email: "a@example.com, b@example.com"}},
			{"ftp webhook", authority.ContactRequest{WebhookURL: "ftp://hooks.example.com/x"}},
			{"http webhook elsewhere", authority.ContactRequest{WebhookURL: "http://hooks.example.com/x"}},
			{"relative webhook", authority.ContactRequest{WebhookURL: "/hook"}},
			{"webhook with a password", authority.ContactRequest{WebhookURL: "https://u:p@hooks.example.com/x"}},
			{"short secret", authority.ContactRequest{WebhookURL: "https://hooks.example.com/x", WebhookSecret: "short"}},
			{"good address, bad webhook", authority.ContactRequest{Email: "anna@example.com", WebhookURL: "javascript:alert(1)"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				n := e.auditLen()
				if _, err := e.auth.SetContact(ctx, me, tc.req); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
					t.Errorf("got %v, want KindInvalid", err)
				}
				e.noContact(me.IdentityID)
				if e.auditLen() != n {
					t.Error("a refused contact was audited")
				}
			})
		}

		hook := "https://hooks.example.com/mtlsid"
		c, err := e.auth.SetContact(ctx, me, authority.ContactRequest{Email: " anna@example.com ", WebhookURL: hook})
		if err != nil || len(c.WebhookSecret) < 16 || c.WebhookSecret == authority.SecretHidden || c.Email != "anna@example.com" {
			t.Fatalf("set: %+v %v", c, err)
		}
		first := c.WebhookSecret
		if got := e.storedContact(me.IdentityID); got.WebhookSecret != first || got.WebhookURL != hook {
			t.Errorf("stored %+v, want the secret shown", got)
		}
		if got := e.lastAuditType(); got != mtlsid.AuditContactSet {
			t.Errorf("audit: %s", got)
		}
		if c, err := e.auth.Contact(ctx, me); err != nil || c.WebhookSecret != authority.SecretHidden {
			t.Errorf("Contact shows the secret: %+v %v", c, err)
		}
		// The same URL keeps the secret, and does not show it again.
		if c, err := e.auth.SetContact(ctx, me, authority.ContactRequest{WebhookURL: hook}); err != nil || c.WebhookSecret != authority.SecretHidden {
			t.Errorf("same URL: %+v %v", c, err)
		}
		if got := e.storedContact(me.IdentityID); got.WebhookSecret != first || got.Email != "" {
			t.Errorf("same URL: stored %+v", got)
		}
		// On request, and for a new URL, a new secret.
		c, err = e.auth.SetContact(ctx, me, authority.ContactRequest{WebhookURL: hook, NewSecret: true})
		if err != nil || c.WebhookSecret == first || c.WebhookSecret == authority.SecretHidden || e.storedContact(me.IdentityID).WebhookSecret != c.WebhookSecret {
			t.Errorf("new secret: %+v %v", c, err)
		}
		second := c.WebhookSecret
		c, err = e.auth.SetContact(ctx, me, authority.ContactRequest{WebhookURL: "http://127.0.0.1:9/hook"})
		if err != nil || c.WebhookSecret == second || c.WebhookSecret == authority.SecretHidden {
			t.Errorf("loopback http with a new URL: %+v %v", c, err)
		}
		// Empty removes them.
		if _, err := e.auth.SetContact(ctx, me, authority.ContactRequest{}); err != nil {
			t.Fatal(err)
		}
		e.noContact(me.IdentityID)
	})
}

var webhookSecretRE = regexp.MustCompile(`id="webhook-secret">([^<]+)<`)

// TestExpiryNoticesPage: "my identity" sets where notices go, refusing a
// bad address or webhook (and a form without its token) with nothing
// stored; shows a new webhook secret once; lists upcoming expiries with
// the renew command and the delivery log.
func TestExpiryNoticesPage(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		anna := e.enroll("anna laptop", mtlsid.TokenDevice)
		rec := e.record(anna)
		id := rec.IdentityID
		hc := e.browser(anna)

		st, body := getPage(t, hc, e.url+"/my")
		for _, want := range []string{`id="notices"`, `<label for="contact-email">`, `<label for="contact-webhook">`,
			`action="/my/contact"`, `data-expiry="` + anna.serial + `"`,
			"mtlsid renew --name &#39;anna laptop&#39; --server https://" + strings.TrimPrefix(e.url, "https://"),
			mtlsid.RenewalPoint(rec.NotBefore, rec.NotAfter).UTC().Format("2006-01-02"),
			"No notice has been sent to you yet"} {
			if !strings.Contains(body, want) {
				t.Errorf("/my lacks %q", want)
			}
		}
		if st != http.StatusOK || strings.Contains(body, `action="/my/contact/secret"`) {
			t.Fatalf("/my: %d, or a new-secret button without a webhook:\n%s", st, body)
		}

		for _, tc := range []struct {
			name, email, webhook, want string
		}{
			{"bad e-mail", "anna at example", "", "is not a plain address"},
			{"ftp webhook", "anna@example.com", "ftp://hooks.example.com/x", "must be https"},
			{"http webhook elsewhere", "", "http://hooks.example.com/x", "must be https"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				st, body := submit(t, hc, e.url, "/my", "/my/contact", url.Values{"email": {tc.email}, "webhook": {tc.webhook}})
				if st != http.StatusBadRequest || !strings.Contains(body, "Contact details not saved") || !strings.Contains(body, tc.want) {
					t.Errorf("%d\n%s", st, body)
				}
				if !strings.Contains(body, `value="`+html.EscapeString(tc.email)+`"`) || !strings.Contains(body, `name="webhook" value="`+tc.webhook+`"`) {
					t.Error("the refused form is not shown as typed")
				}
				e.noContact(id)
			})
		}
		// Without the form's token: refused, nothing stored.
		resp, err := hc.PostForm(e.url+"/my/contact", url.Values{"email": {"anna@example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("form without its token: %d", resp.StatusCode)
		}
		e.noContact(id)

		hook := "https://hooks.example.com/anna"
		st, body = submit(t, hc, e.url, "/my", "/my/contact", url.Values{"email": {"anna@example.com"}, "webhook": {hook}})
		m := webhookSecretRE.FindStringSubmatch(body)
		if st != http.StatusOK || m == nil || !strings.Contains(body, "Contact details saved") || !strings.Contains(body, "X-Mtlsid-Signature") ||
			!strings.Contains(body, "docs/notices.md") {
			t.Fatalf("save: %d\n%s", st, body)
		}
		c := e.storedContact(id)
		if c.Email != "anna@example.com" || c.WebhookURL != hook || c.WebhookSecret != html.UnescapeString(m[1]) {
			t.Errorf("stored %+v; page showed secret %q", c, m[1])
		}
		// Shown once: not on the next visit, nor when saving the same URL.
		_, body = getPage(t, hc, e.url+"/my")
		if webhookSecretRE.MatchString(body) || strings.Contains(body, c.WebhookSecret) || !strings.Contains(body, `value="`+hook+`"`) {
			t.Errorf("secret shown again, or the URL not shown:\n%s", body)
		}
		if _, body = submit(t, hc, e.url, "/my", "/my/contact", url.Values{"email": {"anna@example.com"}, "webhook": {hook}}); webhookSecretRE.MatchString(body) {
			t.Error("saving the same URL showed a secret")
		}
		if got := e.storedContact(id).WebhookSecret; got != c.WebhookSecret {
			t.Error("saving the same URL changed the secret")
		}
		st, body = submit(t, hc, e.url, "/my", "/my/contact/secret", url.Values{})
		m = webhookSecretRE.FindStringSubmatch(body)
		if st != http.StatusOK || m == nil || html.UnescapeString(m[1]) == c.WebhookSecret || e.storedContact(id).WebhookSecret != html.UnescapeString(m[1]) {
			t.Errorf("new secret: %d %v\n%s", st, m, body)
		}

		// The delivery log.
		err = e.store.LogDelivery(ctx, mtlsid.Delivery{Serial: anna.serial, IdentityID: id, Threshold: mtlsid.Threshold7Days,
			Channel: "webhook", Target: hook, Status: "failed", Error: "answered 503 Service Unavailable", At: e.now()})
		if err != nil {
			t.Fatal(err)
		}
		_, body = getPage(t, hc, e.url+"/my")
		for _, want := range []string{`data-delivery="`, "<code>" + hook + "</code>", `class="delivery-failed">failed`, "answered 503 Service Unavailable"} {
			if !strings.Contains(body, want) {
				t.Errorf("delivery log lacks %q:\n%s", want, body)
			}
		}
		// Another identity's deliveries are not shown.
		bob := e.enroll("bob", mtlsid.TokenDevice)
		if _, body := getPage(t, e.browser(bob), e.url+"/my"); strings.Contains(body, "answered 503") {
			t.Error("bob sees anna's delivery log")
		}
	})
}

// TestContactOperations: set_contact and get_contact through the SDK:
// the secret once, bad input refused with nothing stored, and no
// certificate no answer.
func TestContactOperations(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		anna := e.enroll("anna", mtlsid.TokenDevice)
		id := e.record(anna).IdentityID
		sc := e.client(&anna.tls)

		if got, err := sc.Contact(ctx); err != nil || got.Email != "" || got.WebhookURL != "" || got.WebhookSecretSet {
			t.Errorf("get before set: %+v %v", got, err)
		}
		for _, tc := range []struct {
			name string
			req  sdk.ContactRequest
		}{
			{"bad e-mail", sdk.ContactRequest{Email: "anna@"}},
			{"ftp webhook", sdk.ContactRequest{WebhookURL: "ftp://hooks.example.com/x"}},
			{"http webhook elsewhere", sdk.ContactRequest{Email: "anna@example.com", WebhookURL: "http://hooks.example.com/x"}},
			{"new secret without a webhook", sdk.ContactRequest{Email: "anna@example.com", NewSecret: true}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := sc.SetContact(ctx, tc.req)
				if st, kind := admStatus(err); st != http.StatusBadRequest || kind != string(mtlsid.KindInvalid) {
					t.Errorf("got %v (%d %s), want 400 invalid", err, st, kind)
				}
				e.noContact(id)
			})
		}
		t.Run("unauthenticated", func(t *testing.T) {
			anon := e.client(nil)
			_, err := anon.SetContact(ctx, sdk.ContactRequest{Email: "x@example.com"})
			if st, _ := admStatus(err); st != http.StatusUnauthorized {
				t.Errorf("set_contact without a certificate: %v", err)
			}
			_, err = anon.Contact(ctx)
			if st, _ := admStatus(err); st != http.StatusUnauthorized {
				t.Errorf("get_contact without a certificate: %v", err)
			}
			e.noContact(id)
		})

		hook := "https://hooks.example.com/anna"
		res, err := sc.SetContact(ctx, sdk.ContactRequest{Email: "anna@example.com", WebhookURL: hook})
		if err != nil || res.Outcome != "saved" || len(res.WebhookSecret) < 16 || !res.WebhookSecretSet || res.UpdatedAt == 0 {
			t.Fatalf("set: %+v %v", res, err)
		}
		if got := e.storedContact(id); got.WebhookSecret != res.WebhookSecret || got.Email != "anna@example.com" {
			t.Errorf("stored %+v", got)
		}
		got, err := sc.Contact(ctx)
		if err != nil || got.Email != "anna@example.com" || got.WebhookURL != hook || !got.WebhookSecretSet || got.WebhookSecret != "" {
			t.Errorf("get: %+v %v", got, err)
		}
		if again, err := sc.SetContact(ctx, sdk.ContactRequest{Email: "anna@example.com", WebhookURL: hook}); err != nil || again.WebhookSecret != "" || !again.WebhookSecretSet {
			t.Errorf("same URL again: %+v %v", again, err)
		}
		fresh, err := sc.SetContact(ctx, sdk.ContactRequest{WebhookURL: hook, NewSecret: true})
		if err != nil || fresh.WebhookSecret == "" || fresh.WebhookSecret == res.WebhookSecret || fresh.Email != "" {
			t.Errorf("new secret: %+v %v", fresh, err)
		}
		if cleared, err := sc.SetContact(ctx, sdk.ContactRequest{}); err != nil || cleared.WebhookSecretSet || cleared.WebhookSecret != "" {
			t.Errorf("clear: %+v %v", cleared, err)
		}
		e.noContact(id)
	})
}
