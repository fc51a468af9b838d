package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/sdk"
)

// record returns the stored certificate of an enrolled device.
func (e *env) record(d *device) *mtlsid.Certificate {
	e.t.Helper()
	c, err := e.store.Certificate(context.Background(), d.serial)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// org makes an organization with admin as its administrator and a service
// in it, and returns the service.
func (e *env) org(admin *device, org, service string) *mtlsid.Service {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.auth.CreateOrg(ctx, e.record(admin), org, "", ""); err != nil {
		e.t.Fatal(err)
	}
	svc, err := e.auth.CreateService(ctx, e.record(admin), org, service)
	if err != nil {
		e.t.Fatal(err)
	}
	return svc
}

// apiCert issues an API certificate for the service, by admin.
func (e *env) apiCert(admin *device, serviceID string, dev bool) *device {
	e.t.Helper()
	key, csr := newCSR(e.t, "api")
	der := decodeB64(e.t, csr)
	out, err := e.auth.IssueAPICert(context.Background(), e.record(admin), authority.APICertRequest{ServiceID: serviceID, CSR: der, Development: dev})
	if err != nil {
		e.t.Fatal(err)
	}
	return &device{key: key, cert: out.Certificate, serial: out.Record.Serial, tls: tls.Certificate{Certificate: [][]byte{out.Certificate.Raw}, PrivateKey: key, Leaf: out.Certificate}}
}

func (e *env) idClient(d *device) *sdk.IdentityClient {
	var cert *tls.Certificate
	if d != nil {
		cert = &d.tls
	}
	return &sdk.IdentityClient{URL: e.url, HTTP: e.httpClient(cert)}
}

// call sends one object and returns the reply, failing on transport errors.
func (e *env) call(d *device, method, object string, v any) *sdk.Reply {
	e.t.Helper()
	r, err := e.idClient(d).Do(context.Background(), method, object, v)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, object, err)
	}
	return r
}

func (e *env) inquire(api *device, ref string) (*sdk.Reply, wire.IdentityProfile) {
	e.t.Helper()
	r := e.call(api, http.MethodGet, wire.ObjIdentityInquiry, wire.IdentityInquiry{SerialNumber: ref})
	var p wire.IdentityProfile
	_ = r.Decode(&p)
	return r, p
}

// browser visits the sign-on page with a device certificate and follows
// the consent form, returning where the page finally redirects.
func (e *env) signon(person *device, ref string) string {
	e.t.Helper()
	hc := e.browser(person)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(e.url + "/signon/" + ref)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if !strings.Contains(string(body), "Share") {
			e.t.Fatalf("sign-on page without consent form:\n%s", body)
		}
		resp, err = hc.PostForm(e.url+"/signon/"+ref, url.Values{"consent": {"yes"}, "csrf": {formToken(e.t, body)}})
		if err != nil {
			e.t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-on: %s\n%s", resp.Status, body)
	}
	return resp.Header.Get("Location")
}

// TestIdentityAPITour is the issue's tour: org, service, verified domain,
// development API certificate, a person's device, PB 0003, redirect
// sign-on, OK with roles, a local user bound, the development certificate
// revoked, and its changes gone.
func TestIdentityAPITour(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		admin := e.enroll("admin-laptop", mtlsid.TokenDevice)
		svc := e.org(admin, "acme", "shop")
		if svc.ID != "shop.acme" {
			t.Fatalf("service ID %q", svc.ID)
		}

		// A custom domain, verified by a real DNS TXT record.
		d, err := e.auth.AddDomain(ctx, e.record(admin), svc.ID, "shop.example.com")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.auth.VerifyDomain(ctx, e.record(admin), "shop.example.com"); err == nil {
			t.Fatal("domain verified before its challenge was published")
		}
		e.dns.setTXT("_mtlsid-challenge.shop.example.com", d.Challenge)
		if v, err := e.auth.VerifyDomain(ctx, e.record(admin), "shop.example.com"); err != nil || v.Method != "dns" {
			t.Fatalf("verify domain: %v %+v", err, v)
		}

		dev := e.apiCert(admin, svc.ID, true)
		prod := e.apiCert(admin, svc.ID, false)
		if r := e.call(dev, http.MethodPut, "", nil); r.Outcome() != wire.OK0000 {
			t.Fatalf("ping: %s", r.Outcome())
		}

		person := e.enroll("alice-phone", mtlsid.TokenDevice)
		if r, _ := e.inquire(dev, person.serial); r.Outcome() != wire.PB0003 {
			t.Fatalf("first inquiry: %s, want PB 0003", r.Outcome())
		}

		// Redirect sign-on through the page with the device certificate.
		r := e.call(dev, http.MethodPut, wire.ObjIntent, wire.Intent{Type: "discover", ReturnURL: "https://shop.example.com/after?x=1"})
		var ref wire.IntentReference
		if r.Object != wire.ObjIntentReference || r.Decode(&ref) != nil || len(ref.Value) < 40 {
			t.Fatalf("intent: %s %s", r.Object, r.Body)
		}
		loc := e.signon(person, ref.Value)
		u, _ := url.Parse(loc)
		if u.Host != "shop.example.com" || u.Query().Get("identity-plus-intent") != ref.Value || u.Query().Get("x") != "1" {
			t.Fatalf("sign-on redirected to %s", loc)
		}
		r, p := e.inquire(dev, ref.Value)
		if r.Outcome() != wire.OK0001 || p.AuthorizingCertificate != person.serial {
			t.Fatalf("inquiry by intent: %s %s", r.Outcome(), r.Body)
		}
		if r, _ := e.inquire(dev, ref.Value); r.Outcome() != wire.PB0006 {
			t.Errorf("intent answered twice: %s", r.Outcome())
		}
		if got := e.auth.RecentCalls(e.record(person).IdentityID); len(got) == 0 || got[len(got)-1].Method != authority.MethodRedirect {
			t.Errorf("recent calls do not record the redirect: %+v", got)
		}

		// Roles: one defined and granted by the admin (production), one
		// granted with the development certificate.
		if err := e.auth.DefineRole(ctx, e.record(admin), svc.ID, "customer"); err != nil {
			t.Fatal(err)
		}
		if err := e.auth.DefineRole(ctx, e.record(dev), svc.ID, "tester"); err != nil {
			t.Fatal(err)
		}
		if err := e.auth.GrantRole(ctx, e.record(admin), svc.ID, person.serial, "customer"); err != nil {
			t.Fatal(err)
		}
		if err := e.auth.GrantRole(ctx, e.record(dev), svc.ID, person.serial, "tester"); err != nil {
			t.Fatal(err)
		}
		r, p = e.inquire(dev, mtlsid.HexSerial(person.serial))
		if r.Outcome() != wire.OK0001 || strings.Join(p.ServiceRoles, ",") != "customer,tester" {
			t.Fatalf("inquiry after sign-on: %s roles %v", r.Outcome(), p.ServiceRoles)
		}

		// Bind a local user with the development certificate.
		r = e.call(dev, http.MethodPut, wire.ObjLocalUserInformation, wire.LocalUserInformation{SerialNumber: person.serial, LocalUserName: "alice@shop"})
		if r.Outcome() != wire.OK0100 {
			t.Fatalf("bind: %s %s", r.Outcome(), r.Body)
		}
		r, p = e.inquire(prod, person.serial)
		if r.Outcome() != wire.OK0002 || p.LocalUserName != "alice@shop" || p.LocalTrust != 10 {
			t.Fatalf("inquiry after bind: %s %s", r.Outcome(), r.Body)
		}

		// Revoking the development certificate undoes its changes: the
		// binding, its trust and the tester role; the admin's grant stays.
		if err := e.auth.RevokeAPICert(ctx, e.record(admin), dev.serial); err != nil {
			t.Fatal(err)
		}
		r, p = e.inquire(prod, person.serial)
		if r.Outcome() != wire.OK0001 || p.LocalUserName != "" || strings.Join(p.ServiceRoles, ",") != "customer" || p.LocalTrust != 0 {
			t.Fatalf("after revoking the development certificate: %s %s", r.Outcome(), r.Body)
		}
		if r := e.call(dev, http.MethodPut, "", nil); r.Outcome() != wire.ER1103 {
			t.Errorf("revoked API certificate: %s, want ER 1103", r.Outcome())
		}
		e.auditLen()
	})
}

func TestIdentityAPIBadInput(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		admin := e.enroll("admin", mtlsid.TokenDevice)
		svc := e.org(admin, "acme", "shop")
		api := e.apiCert(admin, svc.ID, false)
		bob := e.enroll("bob", mtlsid.TokenDevice)
		carol := e.enroll("carol", mtlsid.TokenDevice)
		if r := e.call(api, http.MethodPut, wire.ObjLocalUserInformation, wire.LocalUserInformation{SerialNumber: bob.serial, LocalUserName: "bob"}); r.Outcome() != wire.OK0100 {
			t.Fatalf("bind: %s", r.Body)
		}
		returnURL := "https://shop.acme.mtls.test/cb"
		raw := func(method, body string) *sdk.Reply {
			req, _ := http.NewRequest(method, e.url+wire.Path, strings.NewReader(body))
			resp, err := e.httpClient(&api.tls).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var env map[string]json.RawMessage
			data, _ := io.ReadAll(resp.Body)
			if err := json.Unmarshal(data, &env); err != nil || len(env) != 1 {
				t.Fatalf("answer is not one wrapped object: %q", data)
			}
			for k, v := range env {
				return &sdk.Reply{Status: resp.StatusCode, Object: k, Body: v}
			}
			return nil
		}
		cases := []struct {
			name, method, body, want string
		}{
			{"unknown object", "PUT", `{"Make-Admin":{}}`, wire.ER0002},
			{"wrong method for object", "DELETE", `{"Intent":{"return-url":"` + returnURL + `"}}`, wire.ER0002},
			{"two objects", "GET", `{"Identity-Inquiry":{"serial-number":"1"},"Intent":{}}`, wire.ER0008},
			{"not JSON", "GET", `{"Identity-Inquiry":`, wire.ER0008},
			{"wrong field type", "GET", `{"Identity-Inquiry":{"serial-number":12}}`, wire.ER0008},
			{"object not an object", "GET", `{"Identity-Inquiry":[1]}`, wire.ER0008},
			{"huge body", "PUT", `{"Intent":{"return-url":"` + strings.Repeat("a", 1<<20) + `"}}`, wire.ER0008},
			{"negative serial", "GET", `{"Identity-Inquiry":{"serial-number":"-5"}}`, wire.ER0008},
			{"non-numeric serial", "GET", `{"Identity-Inquiry":{"serial-number":"12ab"}}`, wire.ER0008},
			{"too long serial", "GET", `{"Identity-Inquiry":{"serial-number":"` + strings.Repeat("9", 60) + `"}}`, wire.ER0008},
			{"no serial", "GET", `{"Identity-Inquiry":{}}`, wire.ER0010},
			{"return URL off the domains", "PUT", `{"Intent":{"return-url":"https://evil.example/cb"}}`, wire.ER0009},
			{"javascript return URL", "PUT", `{"Intent":{"return-url":"javascript:alert(1)"}}`, wire.ER0008},
			{"return URL with credentials", "PUT", `{"Intent":{"return-url":"https://u:p@shop.acme.mtls.test/cb"}}`, wire.ER0008},
			{"return URL too long", "PUT", `{"Intent":{"return-url":"` + returnURL + "?" + strings.Repeat("a", 2100) + `"}}`, wire.ER0006},
			{"unknown intent type", "PUT", `{"Intent":{"type":"steal","return-url":"` + returnURL + `"}}`, wire.ER0008},
			{"local user bound elsewhere", "PUT", `{"Local-User-Information":{"serial-number":"` + carol.serial + `","local-user-name":"bob"}}`, wire.ER0004},
			{"local user bound already", "PUT", `{"Local-User-Information":{"serial-number":"` + bob.serial + `","local-user-name":"bob"}}`, wire.ER0003},
			{"bind with too many tokens of trust", "PUT", `{"Local-User-Information":{"serial-number":"` + carol.serial + `","local-user-name":"carol","tokens-of-trust":9223372036854775807}}`, wire.ER0008},
			{"bind with an absurd age", "PUT", `{"Local-User-Information":{"serial-number":"` + carol.serial + `","local-user-name":"carol","local-user-age":2000000000}}`, wire.ER0008},
			{"trust award too large", "PUT", `{"Trust":{"local-user-name":"bob","tokens-of-trust":2501}}`, wire.ER0008},
			{"unbind never bound", "DELETE", `{"Local-User-Reference":{"local-user-name":"nobody"}}`, wire.ER0005},
			{"withdraw unknown report", "DELETE", `{"Intrusion-Reference":{"value":"ir_nothing"}}`, wire.ER0010},
			{"empty GET", "GET", ``, wire.ER0008},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.auditLen()
				r := raw(tc.method, tc.body)
				if r.Outcome() != tc.want {
					t.Errorf("outcome %q (%s), want %q", r.Outcome(), r.Body, tc.want)
				}
				if after := e.auditLen(); after != before {
					t.Errorf("bad input wrote %d audit entries", after-before)
				}
			})
		}

		// Callers: none, a person's certificate, unknown, revoked, expired.
		if r := e.call(nil, http.MethodPut, "", nil); r.Outcome() != wire.ER1100 {
			t.Errorf("no certificate: %s", r.Outcome())
		}
		if r := e.call(bob, http.MethodPut, "", nil); r.Outcome() != wire.ER0012 {
			t.Errorf("person's certificate: %s", r.Outcome())
		}
		key, _ := newCSR(t, "ghost")
		ghost, err := e.ca.Issue(caRequestAgent(key.Public()))
		if err != nil {
			t.Fatal(err)
		}
		unknown := &device{tls: tls.Certificate{Certificate: [][]byte{ghost.Raw}, PrivateKey: key}}
		if r := e.call(unknown, http.MethodPut, "", nil); r.Outcome() != wire.ER1101 {
			t.Errorf("unknown certificate: %s", r.Outcome())
		}

		// Intents: replayed and expired.
		r := e.call(api, http.MethodPut, wire.ObjIntent, wire.Intent{ReturnURL: returnURL, StrictMassl: true})
		var ref wire.IntentReference
		_ = r.Decode(&ref)
		loc := e.signon(carol, ref.Value)
		if loc != returnURL {
			t.Errorf("strict-massl must add nothing to the return URL: %s", loc)
		}
		hc := e.httpClient(&carol.tls)
		if resp, err := hc.Get(e.url + "/signon/" + ref.Value); err != nil || resp.StatusCode != http.StatusGone {
			t.Errorf("replayed sign-on: %v %v", resp.Status, err)
		}
		r = e.call(api, http.MethodPut, wire.ObjIntent, wire.Intent{ReturnURL: returnURL})
		_ = r.Decode(&ref)
		e.advance(6 * 60e9)
		if resp, err := hc.Get(e.url + "/signon/" + ref.Value); err != nil || resp.StatusCode != http.StatusGone {
			t.Errorf("expired sign-on: %v %v", resp.Status, err)
		}
		if r, _ := e.inquire(api, ref.Value); r.Outcome() != wire.PB0008 {
			t.Errorf("inquiry with an expired intent: %s", r.Outcome())
		}
		// No certificate on the sign-on page: an explanation, never a bare error.
		r = e.call(api, http.MethodPut, wire.ObjIntent, wire.Intent{ReturnURL: returnURL})
		_ = r.Decode(&ref)
		resp, err := e.httpClient(nil).Get(e.url + "/signon/" + ref.Value)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "enroll") {
			t.Errorf("sign-on without certificate: %s\n%s", resp.Status, body)
		}

		// A revoked API certificate.
		if err := e.auth.RevokeAPICert(ctx, e.record(admin), api.serial); err != nil {
			t.Fatal(err)
		}
		if r := e.call(api, http.MethodPut, "", nil); r.Outcome() != wire.ER1103 {
			t.Errorf("revoked: %s", r.Outcome())
		}
	})
}

func TestIdentityAPIOnAPIHost(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		admin := e.enroll("admin", mtlsid.TokenDevice)
		api := e.apiCert(admin, e.org(admin, "acme", "shop").ID, false)
		req, _ := http.NewRequest(http.MethodPut, e.url+"/", nil)
		req.Host = "api.acme.test"
		resp, err := e.httpClient(&api.tls).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), wire.OK0000) {
			t.Errorf("ping at / on api.*: %s", body)
		}

		// The sign-on page at /<ref> on a host named signon.*.
		r := e.call(api, http.MethodPut, wire.ObjIntent, wire.Intent{ReturnURL: "https://shop.acme.mtls.test/"})
		var ref wire.IntentReference
		_ = r.Decode(&ref)
		req, _ = http.NewRequest(http.MethodGet, e.url+"/"+ref.Value, nil)
		req.Host = "signon.acme.test"
		person := e.enroll("p", mtlsid.TokenDevice)
		resp, err = e.httpClient(&person.tls).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Share your identity") {
			t.Errorf("sign-on at /<ref> on signon.*: %s\n%s", resp.Status, body)
		}
	})
}

// TestInquiryForAnotherService: a service may ask relative to another
// service of its organization, never of another organization.
func TestInquiryForAnotherService(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		admin := e.enroll("admin", mtlsid.TokenDevice)
		shop := e.org(admin, "acme", "shop")
		blog, err := e.auth.CreateService(ctx, e.record(admin), "acme", "blog")
		if err != nil {
			t.Fatal(err)
		}
		other := e.enroll("other-admin", mtlsid.TokenDevice)
		foreign := e.org(other, "globex", "store")
		api := e.apiCert(admin, shop.ID, false)
		person := e.enroll("p", mtlsid.TokenDevice)
		if err := e.auth.DefineRole(ctx, e.record(admin), blog.ID, "editor"); err != nil {
			t.Fatal(err)
		}
		if err := e.auth.GrantRole(ctx, e.record(admin), blog.ID, person.serial, "editor"); err != nil {
			t.Fatal(err)
		}
		r := e.call(api, http.MethodGet, wire.ObjIdentityInquiry, wire.IdentityInquiry{SerialNumber: person.serial, Service: blog.ID})
		if r.Outcome() != wire.PB0003 {
			t.Errorf("inquiry for blog: %s", r.Body)
		}
		r = e.call(api, http.MethodGet, wire.ObjIdentityInquiry, wire.IdentityInquiry{SerialNumber: person.serial, Service: foreign.ID})
		if r.Outcome() != wire.ER0009 {
			t.Errorf("inquiry for another organization's service: %s", r.Body)
		}
	})
}
