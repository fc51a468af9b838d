package sdk_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/server"
	"github.com/mtlsid/mtlsid/store/postgres"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

// backends runs f once per store: SQLite always, PostgreSQL when
// MTLSID_TEST_POSTGRES is set.
func backends(t *testing.T, f func(t *testing.T, store mtlsid.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mtlsid.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
}

// env is a real `mtlsid serve` on loopback, with a clock the test can
// move, an organization "acme" with service "shop", its API certificate
// in files, and an SDK client using them.
type env struct {
	t      testing.TB
	store  mtlsid.Store
	auth   *authority.Authority
	srv    *server.Server
	url    string
	roots  *x509.CertPool
	offset atomic.Int64

	admin             *device
	service           *mtlsid.Service
	api               *device
	certFile, keyFile string
	client            *sdk.IdentityClient
}

type device struct {
	key    crypto.Signer
	cert   *x509.Certificate
	tls    tls.Certificate
	serial string
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

func newEnv(t testing.TB, store mtlsid.Store) *env {
	t.Helper()
	e := &env{t: t, store: store}
	dir := t.TempDir()
	c, err := ca.Init(filepath.Join(dir, "ca"), ca.InitConfig{Now: func() time.Time { return time.Now().Add(-24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if c, err = c.WithConfig(ca.Config{Now: e.now, OCSPURL: base + "/ca/ocsp", CRLURL: base + "/ca/crl", IssuerURL: base + "/ca/issuer.crt"}); err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AddCert(c.Root())
	e.auth, err = authority.New(authority.Config{
		Store: store, CA: c, Now: e.now, BaseDomain: "mtls.test",
		OnRevoke: func(ctx context.Context) { e.srv.RevocationHook(ctx) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.auth.Close)
	e.srv, err = server.New(context.Background(), server.Config{
		Authority: e.auth, Store: store, DataDir: dir, Hostnames: []string{"localhost", "127.0.0.1"}, Now: e.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.srv.Shutdown(ctx)
	})
	e.url = "https://" + ln.Addr().String()

	ctx := context.Background()
	e.admin = e.enroll("admin-laptop")
	if _, err := e.auth.CreateOrg(ctx, e.record(e.admin), "acme", "", ""); err != nil {
		t.Fatal(err)
	}
	if e.service, err = e.auth.CreateService(ctx, e.record(e.admin), "acme", "shop"); err != nil {
		t.Fatal(err)
	}
	e.api = e.apiCert()
	e.certFile, e.keyFile = filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	writePair(t, e.certFile, e.keyFile, e.api)
	e.client = e.newClient()
	return e
}

func (e *env) newClient(opts ...sdk.Option) *sdk.IdentityClient {
	e.t.Helper()
	c, err := sdk.NewIdentityClient(e.url, append([]sdk.Option{sdk.WithRootCAs(e.roots), sdk.WithCertificateFiles(e.certFile, e.keyFile)}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func writePair(t testing.TB, certFile, keyFile string, d *device) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(d.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.cert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newKeyCSR(t testing.TB, name string) (crypto.Signer, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func newDevice(key crypto.Signer, out *authority.Issued) *device {
	return &device{key: key, cert: out.Certificate, serial: out.Record.Serial,
		tls: tls.Certificate{Certificate: [][]byte{out.Certificate.Raw}, PrivateKey: key, Leaf: out.Certificate}}
}

// enroll enrolls a person's device with a one-time token.
func (e *env) enroll(name string) *device {
	e.t.Helper()
	ctx := context.Background()
	secret, _, err := e.auth.CreateToken(ctx, authority.TokenRequest{Purpose: mtlsid.TokenDevice})
	if err != nil {
		e.t.Fatal(err)
	}
	key, csr := newKeyCSR(e.t, name)
	out, err := e.auth.Enroll(ctx, authority.EnrollRequest{Token: secret, Name: name, CSR: csr})
	if err != nil {
		e.t.Fatalf("enroll: %v", err)
	}
	return newDevice(key, out)
}

func (e *env) apiCert() *device {
	e.t.Helper()
	key, csr := newKeyCSR(e.t, "api")
	out, err := e.auth.IssueAPICert(context.Background(), e.record(e.admin), authority.APICertRequest{ServiceID: e.service.ID, CSR: csr})
	if err != nil {
		e.t.Fatal(err)
	}
	return newDevice(key, out)
}

func (e *env) record(d *device) *mtlsid.Certificate {
	e.t.Helper()
	c, err := e.store.Certificate(context.Background(), d.serial)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// share makes person known to the shop without the sign-on page (a role
// grant is a relation the service sees; consent comes from the page, so
// tests that need OK 0001 at once go through signon).
func (e *env) grant(person *device, role string) {
	e.t.Helper()
	ctx := context.Background()
	_ = e.auth.DefineRole(ctx, e.record(e.admin), e.service.ID, role)
	if err := e.auth.GrantRole(ctx, e.record(e.admin), e.service.ID, person.serial, role); err != nil {
		e.t.Fatal(err)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signon drives the authority's sign-on page with person's certificate,
// consenting, and returns where it redirects.
func (e *env) signon(person *device, signonURL string) string {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots, Certificates: []tls.Certificate{person.tls}}}}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Get(signonURL)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if !strings.Contains(string(body), "Share") {
			e.t.Fatalf("sign-on page without consent form:\n%s", body)
		}
		form := url.Values{"consent": {"yes"}}
		if m := csrfRE.FindSubmatch(body); m != nil {
			form.Set("csrf", string(m[1])) // the page's CSRF token, when it has one
		}
		resp, err = hc.PostForm(signonURL, form)
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
