package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid"
)

// TestOrgPages is the organization admin's flow on the pages: create an
// organization and a service, add a domain and see what to publish,
// issue a development API certificate, grant a role with it, revoke it
// and see the role gone.
func TestOrgPages(t *testing.T) {
	backends(t, func(t *testing.T, open func(t *testing.T) mtlsid.Store) {
		e := newEnv(t, open(t))
		ctx := context.Background()
		admin := e.enroll("admin", mtlsid.TokenDevice)
		person := e.enroll("anna", mtlsid.TokenDevice)
		hc := e.browser(admin)

		st, body := submit(t, hc, e.url, "/orgs", "/orgs", url.Values{"id": {"acme"}, "name": {"Acme"}})
		if st != http.StatusOK || !strings.Contains(body, "Organization acme") {
			t.Fatalf("create org: %d\n%s", st, body)
		}
		if st, body = submit(t, hc, e.url, "/orgs", "/orgs", url.Values{"id": {"acme"}}); st != http.StatusConflict || !strings.Contains(body, "exists") {
			t.Errorf("org twice: %d\n%s", st, body)
		}
		st, body = submit(t, hc, e.url, "/orgs/acme", "/orgs/acme/services", url.Values{"name": {"shop"}})
		if st != http.StatusOK || !strings.Contains(body, "Service shop.acme") || !strings.Contains(body, "shop.acme.mtls.test") {
			t.Fatalf("create service: %d\n%s", st, body)
		}
		svc := "/services/shop.acme"
		st, body = submit(t, hc, e.url, svc, svc+"/domains", url.Values{"domain": {"shop.example.com"}})
		if st != http.StatusOK || !strings.Contains(body, "_mtlsid-challenge.shop.example.com") || !strings.Contains(body, "http://shop.example.com/.well-known/mtlsid-challenge/") {
			t.Errorf("add domain: %d\n%s", st, body)
		}
		if st, body = submit(t, hc, e.url, svc, svc+"/roles", url.Values{"role": {"editor"}}); st != http.StatusOK {
			t.Fatalf("define role: %d\n%s", st, body)
		}
		st, body = submit(t, hc, e.url, svc, svc+"/apicerts", url.Values{"development": {"yes"}})
		if st != http.StatusOK {
			t.Fatalf("issue API certificate: %d\n%s", st, body)
		}
		api := browserCert(t, body)
		rec := e.record(api)
		if !rec.Development || rec.IdentityID != "shop.acme" {
			t.Fatalf("API certificate %+v", rec)
		}
		// The service grants a role with its development certificate.
		if err := e.auth.GrantRole(ctx, rec, "shop.acme", person.serial, "editor"); err != nil {
			t.Fatal(err)
		}
		grant := `data-grant="` + e.record(person).IdentityID + `/editor"`
		if _, body = getPage(t, hc, e.url+svc); !strings.Contains(body, grant) || !strings.Contains(body, "undoes every change") {
			t.Fatalf("grant not listed:\n%s", body)
		}
		st, body = submit(t, hc, e.url, svc, svc+"/revoke", url.Values{"serial": {api.serial}})
		if st != http.StatusOK || !strings.Contains(body, "API certificate revoked") {
			t.Fatalf("revoke: %d\n%s", st, body)
		}
		if strings.Contains(body, grant) {
			t.Error("the development certificate's role grant survived its revocation")
		}

		// Granting and taking away by hand.
		if st, body = submit(t, hc, e.url, svc, svc+"/grant", url.Values{"serial": {person.serial}, "role": {"editor"}}); st != http.StatusOK || !strings.Contains(body, grant) {
			t.Fatalf("grant: %d\n%s", st, body)
		}
		if st, body = submit(t, hc, e.url, svc, svc+"/ungrant", url.Values{"identity": {e.record(person).IdentityID}, "role": {"editor"}}); st != http.StatusOK || strings.Contains(body, grant) {
			t.Errorf("take away: %d\n%s", st, body)
		}
		if st, body = submit(t, hc, e.url, svc, svc+"/agent", url.Values{}); st != http.StatusOK || !strings.Contains(body, "mtlsid enroll mtid_") {
			t.Errorf("agent token: %d\n%s", st, body)
		}

		// Someone else sees neither the organization nor the service.
		other := e.browser(person)
		if st, _ := getPage(t, other, e.url+svc); st != http.StatusForbidden {
			t.Errorf("a stranger on the service page: %d", st)
		}
		if st, _ := submit(t, other, e.url, "/orgs", svc+"/apicerts", url.Values{}); st != http.StatusForbidden {
			t.Errorf("a stranger issuing an API certificate: %d", st)
		}
	})
}
