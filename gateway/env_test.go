package gateway_test

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
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/server"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

// env is a real `mtlsid serve` on loopback (SQLite), an organization
// "acme" with service "shop", the shop's API certificate in files (the
// gateway's agent certificate), and an SDK client using it.
type env struct {
	t       testing.TB
	store   mtlsid.Store
	auth    *authority.Authority
	srv     *server.Server
	url     string
	roots   *x509.CertPool
	dir     string
	admin   *device
	service *mtlsid.Service

	agentCert, agentKey string
	client              *sdk.IdentityClient
}

type device struct {
	key    crypto.Signer
	cert   *x509.Certificate
	tls    tls.Certificate
	serial string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "mtlsid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, store: store, dir: dir}
	c, err := ca.Init(filepath.Join(dir, "ca"), ca.InitConfig{Now: func() time.Time { return time.Now().Add(-24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if c, err = c.WithConfig(ca.Config{OCSPURL: base + "/ca/ocsp", CRLURL: base + "/ca/crl", IssuerURL: base + "/ca/issuer.crt"}); err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AddCert(c.Root())
	e.auth, err = authority.New(authority.Config{
		Store: store, CA: c, BaseDomain: "mtls.test",
		OnRevoke: func(ctx context.Context) { e.srv.RevocationHook(ctx) },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.auth.Close)
	e.srv, err = server.New(ctx, server.Config{Authority: e.auth, Store: store, DataDir: dir, Hostnames: []string{"localhost", "127.0.0.1"}})
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

	e.admin = e.enroll("admin-laptop")
	if _, err := e.auth.CreateOrg(ctx, e.record(e.admin), "acme", "", ""); err != nil {
		t.Fatal(err)
	}
	if e.service, err = e.auth.CreateService(ctx, e.record(e.admin), "acme", "shop"); err != nil {
		t.Fatal(err)
	}
	key, csr := newKeyCSR(t, "gateway")
	out, err := e.auth.IssueAPICert(ctx, e.record(e.admin), authority.APICertRequest{ServiceID: e.service.ID, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	e.agentCert, e.agentKey = filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key")
	writePair(t, e.agentCert, e.agentKey, key, out.Certificate)
	e.client, err = sdk.NewIdentityClient(e.url, sdk.WithRootCAs(e.roots), sdk.WithCertificateFiles(e.agentCert, e.agentKey))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func writePair(t testing.TB, certFile, keyFile string, key crypto.Signer, cert *x509.Certificate) {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644); err != nil {
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
	return &device{key: key, cert: out.Certificate, serial: out.Record.Serial,
		tls: tls.Certificate{Certificate: [][]byte{out.Certificate.Raw}, PrivateKey: key, Leaf: out.Certificate}}
}

func (e *env) record(d *device) *mtlsid.Certificate {
	e.t.Helper()
	c, err := e.store.Certificate(context.Background(), d.serial)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) grant(person *device, role string) {
	e.t.Helper()
	ctx := context.Background()
	_ = e.auth.DefineRole(ctx, e.record(e.admin), e.service.ID, role)
	if err := e.auth.GrantRole(ctx, e.record(e.admin), e.service.ID, person.serial, role); err != nil {
		e.t.Fatal(err)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consent has person share their identity with the shop on the
// authority's sign-on page, so that their certificate alone identifies
// them afterwards (OK 0001 instead of PB 0003).
func (e *env) consent(person *device) {
	e.t.Helper()
	ref, err := e.client.CreateIntent(context.Background(), idwire.Intent{Type: "discover", ReturnURL: "https://shop.acme.mtls.test/"})
	if err != nil {
		e.t.Fatal(err)
	}
	signonURL := e.client.SignonURL(ref)
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
		form := url.Values{"consent": {"yes"}}
		if m := csrfRE.FindSubmatch(body); m != nil {
			form.Set("csrf", string(m[1]))
		}
		if resp, err = hc.PostForm(signonURL, form); err != nil {
			e.t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("sign-on: %s\n%s", resp.Status, body)
	}
}

// serverCert writes a self-signed server certificate for names and
// returns its files and a pool trusting it.
func serverCert(t testing.TB, dir string, names ...string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		DNSNames: names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	base := strings.ReplaceAll(names[0], "*", "star")
	certFile, keyFile = filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
	writePair(t, certFile, keyFile, key, cert)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
