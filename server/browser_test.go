package server_test

// Browser tests: the pages in headless Chromium, with and without a client
// certificate (see ../shared/BROWSER.md for the recipe). They need
// /usr/bin/chromium and NSS's certutil and pk12util; .ci/run installs
// them, and locally the tests skip, saying so, when they are missing.
// Screenshots at desktop and phone widths go to each test's artifact
// directory: run with -artifacts -outputdir DIR to keep them.

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/mtlsid/mtlsid"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/selfapi/wire"
	"software.sslmate.com/src/go-pkcs12"
)

const chromiumPath = "/usr/bin/chromium"

// needChromium skips the test when the browser or NSS tools are missing,
// unless CI is set: there .ci/run installed them, and a skip would hide a
// broken install.
func needChromium(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	var missing []string
	if _, err := os.Stat(chromiumPath); err != nil {
		missing = append(missing, chromiumPath)
	}
	for _, tool := range []string{"certutil", "pk12util"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("browser test needs %s (apt-get install chromium libnss3-tools)", strings.Join(missing, ", "))
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// nssHome makes a HOME whose NSS database (empty password, as Chromium
// needs) holds the PKCS#12 file, if any, opened with password.
func nssHome(t *testing.T, p12 []byte, password string) string {
	t.Helper()
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("certutil", "-d", "sql:"+db, "-N", "--empty-password")
	if p12 != nil {
		f := filepath.Join(t.TempDir(), "device.p12")
		if err := os.WriteFile(f, p12, 0o600); err != nil {
			t.Fatal(err)
		}
		run("pk12util", "-d", "sql:"+db, "-i", f, "-W", password)
	}
	return home
}

// newBrowser starts Chromium with HOME home. Its profile selects a client
// certificate for 127.0.0.1 without asking, and shop.acme.mtls.test
// resolves to loopback for the sample service.
func newBrowser(t *testing.T, home string) context.Context {
	t.Helper()
	udd := t.TempDir()
	prefs := `{"profile":{"content_settings":{"exceptions":{"auto_select_certificate":{` +
		`"https://127.0.0.1,*":{"setting":{"filters":[{}]}}}}}}}`
	if err := os.MkdirAll(filepath.Join(udd, "Default"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(udd, "Default", "Preferences"), []byte(prefs), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.IgnoreCertErrors,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", "MAP shop.acme.mtls.test 127.0.0.1"),
		chromedp.UserDataDir(udd), chromedp.Env("HOME="+home), chromedp.WindowSize(1280, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// do runs browser steps with a timeout: a certificate prompt nobody
// answers would otherwise hang forever.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// heading returns the page's h1, or "" while there is none (a page
// loading); unlike text it never fails the test.
func heading(ctx context.Context) string {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(tctx, chromedp.Evaluate[string](`(document.querySelector("h1") || {}).innerText || ""`))
	return s
}

func attr(t *testing.T, ctx context.Context, sel, name string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	a, err := chromedp.Run(tctx, chromedp.AttributeValue(sel, name))
	if err != nil || !a.Exists {
		t.Fatalf("attribute %s of %s: %v", name, sel, err)
	}
	return a.Value
}

// shoot saves the page at desktop and phone widths.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	for _, vp := range []struct {
		suffix string
		w, h   int64
		mobile bool
	}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}} {
		tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		opts := []chromedp.EmulateViewportOption{}
		if vp.mobile {
			opts = append(opts, chromedp.EmulateScale(2), chromedp.EmulateMobile)
		}
		if err := chromedp.Do(tctx, chromedp.EmulateViewport(vp.w, vp.h, opts...)); err != nil {
			cancel()
			t.Fatal(err)
		}
		png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(t.ArtifactDir(), name+"-"+vp.suffix+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	do(t, ctx, "reset viewport", chromedp.EmulateViewport(1280, 900))
}

// TestBrowserSignupAndIdentity is a person's first day: sign-up in a
// browser without a certificate, the .p12 opened with the password shown
// and installed, then the same person's browser recognised on /my, another
// device revoked, the test page after a certificate inquiry and after a
// redirect sign-on (consent the first time only), and a form without its
// CSRF token refused.
func TestBrowserSignupAndIdentity(t *testing.T) {
	needChromium(t)
	e := newEnv(t, openSQLite(t))
	admin := e.enroll("admin", mtlsid.TokenDevice)
	svc := e.org(admin, "acme", "shop")
	api := e.apiCert(admin, svc.ID, false)
	shop := sampleService(t, e, api)

	// A browser without a certificate.
	anon := newBrowser(t, nssHome(t, nil, ""))
	do(t, anon, "home", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible("main"))
	if s := text(t, anon, "main"); !strings.Contains(s, "did not present an mtlsid certificate") {
		t.Errorf("home without a certificate:\n%s", s)
	}
	shoot(t, anon, "home-no-certificate")
	do(t, anon, "my", chromedp.Navigate(e.url+"/my"), chromedp.WaitVisible("main"))
	if s := text(t, anon, "main"); !strings.Contains(s, "a certificate is needed") {
		t.Errorf("/my without a certificate:\n%s", s)
	}
	shoot(t, anon, "my-no-certificate")

	// Sign-up with the bootstrap token.
	token := e.token(mtlsid.TokenDevice)
	do(t, anon, "sign-up form", chromedp.Navigate(e.url+"/signup"), chromedp.WaitVisible("#name"))
	shoot(t, anon, "signup")
	do(t, anon, "sign up",
		chromedp.SendKeys("#token", token), chromedp.SendKeys("#name", "Anna's laptop"),
		chromedp.Click(`button[type=submit]`), chromedp.WaitVisible("#password"))
	password := text(t, anon, "#password")
	href := attr(t, anon, "#p12", "href")
	shoot(t, anon, "certificate")
	p12, err := dataURL(href)
	if err != nil {
		t.Fatal(err)
	}
	// The browser holding it: pk12util opens the download with the
	// password shown, as a person's browser import would.
	me := newBrowser(t, nssHome(t, p12, password))

	do(t, me, "my", chromedp.Navigate(e.url+"/my"), chromedp.WaitVisible("#devices"))
	if s := text(t, me, ".who"); !strings.Contains(s, "Anna's laptop") {
		t.Fatalf("/my does not recognise the browser: %q", s)
	}
	// Another device of the same identity, then revoked from the page.
	mine, err := e.auth.Caller(context.Background(), mustCert(t, p12, password))
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := e.auth.DeviceToken(context.Background(), mine, "phone", 0)
	if err != nil {
		t.Fatal(err)
	}
	phone := e.enrollWith(secret, "phone")
	do(t, me, "reload my", chromedp.Navigate(e.url+"/my"), chromedp.WaitVisible("#devices"))
	shoot(t, me, "my")
	row := fmt.Sprintf(`tr[data-serial="%s"]`, phone.serial)
	do(t, me, "revoke the phone", chromedp.Click(row+" button"), chromedp.WaitVisible(".done"))
	if s := text(t, me, row+" .status-revoked"); s != "revoked" {
		t.Errorf("phone status %q", s)
	}

	// The test page after a certificate inquiry.
	e.inquire(api, mine.Serial)
	do(t, me, "test page", chromedp.Navigate(e.url+"/my/test"), chromedp.WaitVisible("#method"))
	if s := text(t, me, "#method"); s != "Certificate" {
		t.Errorf("Method %q after a certificate inquiry", s)
	}
	shoot(t, me, "test-page")

	// The redirect flow: consent the first time, none the second.
	do(t, me, "sign-on", chromedp.Navigate(shop+"/login"), chromedp.WaitVisible("main"))
	if s := text(t, me, "h1"); !strings.Contains(s, "Share your identity") {
		t.Fatalf("first sign-on shows no consent: %q", s)
	}
	shoot(t, me, "signon-consent")
	do(t, me, "consent", chromedp.Click(`button[name=consent]`), chromedp.WaitVisible("#outcome"))
	if s := text(t, me, "#outcome"); !strings.Contains(s, "OK") {
		t.Errorf("service after the first sign-on: %q", s)
	}
	do(t, me, "second sign-on", chromedp.Navigate(shop+"/login"), chromedp.WaitVisible("#outcome"))
	if s := text(t, me, "#outcome"); !strings.Contains(s, "OK") {
		t.Errorf("service after the second sign-on: %q", s)
	}
	do(t, me, "test page", chromedp.Navigate(e.url+"/my/test"), chromedp.WaitVisible("#method"))
	if s := text(t, me, "#method"); s != "Redirect" {
		t.Errorf("Method %q after a redirect sign-on", s)
	}

	// A form whose CSRF token was removed is refused.
	do(t, me, "form without token", chromedp.Navigate(e.url+"/my"), chromedp.WaitVisible("#add"),
		chromedp.Evaluate[chromedp.Void](`document.querySelectorAll('input[name=csrf]').forEach(i => i.remove())`),
		chromedp.Click(`form[action="/my/token"] button`))
	// The click returns before the browser has left /my: wait for the
	// answer page rather than read the old heading (or none, mid-load).
	s := heading(me)
	for deadline := time.Now().Add(10 * time.Second); s != "Form refused" && time.Now().Before(deadline); s = heading(me) {
		time.Sleep(100 * time.Millisecond)
	}
	if s != "Form refused" {
		t.Errorf("form without its CSRF token: %q", s)
	}
}

// sampleService is a service on another port, reached in the browser as
// https://shop.acme.mtls.test:PORT (the service's default domain): /login
// starts a redirect sign-on, /back learns who came back.
func sampleService(t *testing.T, e *env, api *device) string {
	t.Helper()
	client := e.idClient(api)
	var base string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			reply, err := client.Do(r.Context(), http.MethodPut, idwire.ObjIntent, idwire.Intent{ReturnURL: base + "/back"})
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			var ref idwire.IntentReference
			if err := reply.Decode(&ref); err != nil || ref.Value == "" {
				http.Error(w, "no intent: "+string(reply.Body), http.StatusBadGateway)
				return
			}
			http.Redirect(w, r, e.url+"/signon/"+ref.Value, http.StatusSeeOther)
		case "/back":
			reply, err := client.Do(r.Context(), http.MethodGet, idwire.ObjIdentityInquiry, idwire.IdentityInquiry{SerialNumber: r.URL.Query().Get("identity-plus-intent")})
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			fmt.Fprintf(w, `<!doctype html><title>shop</title><main><p id="outcome">%s</p></main>`, html.EscapeString(reply.Outcome()))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	base = "https://shop.acme.mtls.test:" + u.Port()
	return base
}

// dataURL decodes a base64 data: URL, as a browser saving the link does.
func dataURL(href string) ([]byte, error) {
	_, b64, ok := strings.Cut(href, ";base64,")
	if !ok || !strings.HasPrefix(href, "data:") {
		return nil, fmt.Errorf("not a base64 data URL: %.40q", href)
	}
	return base64.StdEncoding.DecodeString(b64)
}

// mustCert opens a PKCS#12 and returns its certificate.
func mustCert(t *testing.T, p12 []byte, password string) *x509.Certificate {
	t.Helper()
	_, cert, _, err := pkcs12.DecodeChain(p12, password)
	if err != nil {
		t.Fatalf("PKCS#12 does not open with the password shown: %v", err)
	}
	return cert
}

// enrollWith enrolls a device with a given token.
func (e *env) enrollWith(token, name string) *device {
	e.t.Helper()
	key, csr := newCSR(e.t, name)
	res, err := e.client(nil).Enroll(context.Background(), wire.Args{Authorization: token, AgentName: name, CSR: csr})
	if err != nil {
		e.t.Fatalf("enroll: %v", err)
	}
	return deviceFrom(e.t, key, res)
}
