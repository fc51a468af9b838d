package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
)

// signedUpBrowser signs a person up with a token and returns a browser
// holding the resulting .p12, and the certificate as the authority has it.
func signedUpBrowser(t *testing.T, e *env, name string) (context.Context, *mtlsid.Certificate) {
	t.Helper()
	out, err := e.auth.SignUp(context.Background(), authority.SignUpRequest{Token: e.token(mtlsid.TokenDevice), Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return newBrowser(t, nssHome(t, out.PKCS12, out.Password)), &out.Record
}

// submitForm fills the fields (selector, text) and presses the form's
// button, then waits for wait, an element of the page it leads to.
func submitForm(t *testing.T, ctx context.Context, what, form, wait string, fields ...[2]string) {
	t.Helper()
	var steps []chromedp.Action[chromedp.Void]
	for _, f := range fields {
		steps = append(steps, chromedp.SendKeys(f[0], f[1]))
	}
	steps = append(steps, chromedp.Click(form+" button[type=submit]"), chromedp.WaitVisible(wait))
	do(t, ctx, what, steps...)
}

// TestBrowserOrgAdmin is the organization admin's flow in Chromium:
// create an organization and a service, issue a development API
// certificate, grant a role to someone who identified to the service,
// see what revoking will undo, revoke the certificate, and see the role
// gone.
func TestBrowserOrgAdmin(t *testing.T) {
	needChromium(t)
	e := newEnv(t, openSQLite(t))
	ctx := context.Background()
	admin, adminCert := signedUpBrowser(t, e, "Admin's laptop")
	person := e.enroll("anna", mtlsid.TokenDevice)
	annaID := e.record(person).IdentityID

	do(t, admin, "orgs", chromedp.Navigate(e.url+"/orgs"), chromedp.WaitVisible("#org-id"))
	submitForm(t, admin, "create org", `form[action="/orgs"]`, "#svc-name", [2]string{"#org-id", "acme"}, [2]string{"#org-name", "Acme"})
	if s := text(t, admin, "h1"); s != "Organization acme" {
		t.Fatalf("after creating the organization: %q", s)
	}
	shoot(t, admin, "org")
	submitForm(t, admin, "create service", `form[action="/orgs/acme/services"]`, "#domains", [2]string{"#svc-name", "shop"})
	if s := text(t, admin, "h1"); s != "Service shop.acme" {
		t.Fatalf("after creating the service: %q", s)
	}
	submitForm(t, admin, "define role", `form[action="/services/shop.acme/roles"]`, ".done", [2]string{"#role-name", "editor"})

	do(t, admin, "issue development certificate", chromedp.Click("#development"),
		chromedp.Click(`form[action="/services/shop.acme/apicerts"] button[type=submit]`), chromedp.WaitVisible("#password"))
	serial := text(t, admin, "#serial")
	dev, err := e.store.Certificate(ctx, serial)
	if err != nil || !dev.Development {
		t.Fatalf("issued certificate %+v %v", dev, err)
	}
	shoot(t, admin, "service-issued")
	// The development certificate grants a role through the API, as a
	// service under development would.
	if err := e.auth.GrantRole(ctx, dev, "shop.acme", person.serial, "editor"); err != nil {
		t.Fatal(err)
	}
	do(t, admin, "service page", chromedp.Navigate(e.url+"/services/shop.acme"), chromedp.WaitVisible("#apicerts"))
	grant := fmt.Sprintf(`tr[data-grant="%s/editor"]`, annaID)
	if s := text(t, admin, grant); !strings.Contains(s, "editor") {
		t.Fatalf("grant row %q", s)
	}
	if s := text(t, admin, `tr.journal`); !strings.Contains(s, "role editor of "+annaID) || !strings.Contains(s, "removed on revocation") {
		t.Errorf("what revoking undoes: %q", s)
	}
	shoot(t, admin, "service")
	do(t, admin, "revoke", chromedp.Click(fmt.Sprintf(`tr[data-serial="%s"] button`, serial)), chromedp.WaitVisible(".done"))
	if s := text(t, admin, ".done"); !strings.Contains(s, "API certificate revoked") {
		t.Errorf("after revoking: %q", s)
	}
	if gone := evalBool(t, admin, fmt.Sprintf(`document.querySelector('%s') === null`, grant)); !gone {
		t.Error("the role granted with the development certificate is still listed")
	}
	grants, err := e.store.ServiceGrants(ctx, "shop.acme")
	if err != nil || len(grants) != 0 {
		t.Errorf("grants after revoking: %+v %v", grants, err)
	}

	// Grant the role by hand: the picker offers anna once she is a
	// member of the organization.
	if err := e.auth.SetMember(ctx, adminCert, "acme", person.serial, mtlsid.OrgMember); err != nil {
		t.Fatal(err)
	}
	do(t, admin, "pick anna", chromedp.Navigate(e.url+"/services/shop.acme"), chromedp.WaitVisible("#grant-person"),
		chromedp.SetValue("#grant-person", annaID),
		chromedp.Click(`form[action="/services/shop.acme/grantto"] button[type=submit]`), chromedp.WaitVisible(".done"))
	if s := text(t, admin, grant); !strings.Contains(s, "editor") {
		t.Errorf("grant from the picker: %q", s)
	}
}

func evalBool(t *testing.T, ctx context.Context, expr string) bool {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}
