package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/domainverify"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
	"github.com/mtlsid/mtlsid/server"
	"github.com/mtlsid/mtlsid/store/postgres"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

// backends runs f once per store: SQLite always, PostgreSQL when
// MTLSID_TEST_POSTGRES is set.
func backends(t *testing.T, f func(t *testing.T, open func(t *testing.T) mtlsid.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, func(t *testing.T) mtlsid.Store { return openSQLite(t) }) })
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.URL(t)
		f(t, func(t *testing.T) mtlsid.Store { return openPostgres(t, url) })
	})
}

func openSQLite(t testing.TB) mtlsid.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mtlsid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(t testing.TB, url string) mtlsid.Store {
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// env is a running server on loopback with a clock the test can move.
type env struct {
	t      testing.TB
	store  mtlsid.Store
	ca     *ca.CA
	auth   *authority.Authority
	srv    *server.Server
	url    string
	roots  *x509.CertPool
	dns    *dnsServer
	offset atomic.Int64 // added to the real time, in nanoseconds
}

func (e *env) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// advance moves the clock of the authority and server forward.
func (e *env) advance(d time.Duration) { e.offset.Add(int64(d)) }

// envOption changes the authority's or the server's configuration.
type envOption func(*authority.Config, *server.Config)

func newEnv(t testing.TB, store mtlsid.Store, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, store: store}
	dir := t.TempDir()
	// The CA starts in the past so that certificates issued "now" are
	// still inside its validity when the test moves the clock forward.
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
	e.ca = c
	e.roots = x509.NewCertPool()
	e.roots.AddCert(c.Root())
	e.dns = startDNS(t)
	verifier, err := domainverify.New(domainverify.Config{Resolver: e.dns.addr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	acfg := authority.Config{
		Store: store, CA: c, Now: e.now, BaseDomain: "mtls.test", Verifier: verifier,
		OnRevoke: func(ctx context.Context) { e.srv.RevocationHook(ctx) },
	}
	scfg := server.Config{Store: store, DataDir: dir, Hostnames: []string{"localhost", "127.0.0.1"}, Now: e.now}
	for _, o := range opts {
		o(&acfg, &scfg)
	}
	if acfg.CA != c { // an option shares another node's CA
		e.ca = acfg.CA
		e.roots = x509.NewCertPool()
		e.roots.AddCert(e.ca.Root())
	}
	e.auth, err = authority.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.auth.Close)
	scfg.Authority = e.auth
	e.srv, err = server.New(context.Background(), scfg)
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
	return e
}

// httpClient returns a client trusting the CA and presenting cert, if any.
func (e *env) httpClient(cert *tls.Certificate) *http.Client {
	conf := &tls.Config{RootCAs: e.roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
}

func (e *env) client(cert *tls.Certificate) *sdk.SelfClient {
	return &sdk.SelfClient{URL: e.url, HTTP: e.httpClient(cert)}
}

func (e *env) token(purpose mtlsid.TokenPurpose) string {
	e.t.Helper()
	secret, _, err := e.auth.CreateToken(context.Background(), authority.TokenRequest{Purpose: purpose})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// device is an enrolled identity as a client holds it.
type device struct {
	key    crypto.Signer
	cert   *x509.Certificate
	tls    tls.Certificate
	serial string
}

func newCSR(t testing.TB, name string) (crypto.Signer, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, base64.StdEncoding.EncodeToString(der)
}

func (e *env) enroll(name string, purpose mtlsid.TokenPurpose) *device {
	e.t.Helper()
	key, csr := newCSR(e.t, name)
	res, err := e.client(nil).Enroll(context.Background(), wire.Args{Authorization: e.token(purpose), AgentName: name, CSR: csr})
	if err != nil {
		e.t.Fatalf("enroll: %v", err)
	}
	return deviceFrom(e.t, key, res)
}

func deviceFrom(t testing.TB, key crypto.Signer, res *wire.CertificateResult) *device {
	t.Helper()
	certPEM, err := base64.StdEncoding.DecodeString(res.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("certificate is not PEM: %q", certPEM)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &device{key: key, cert: cert, serial: res.SerialNumber, tls: tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
}

// auditLen is how many entries the audit chain holds: every write appends
// at least one, so an unchanged length means nothing was written.
func (e *env) auditLen() int {
	e.t.Helper()
	n, err := authority.VerifyAudit(context.Background(), e.store)
	if err != nil {
		e.t.Fatalf("audit chain: %v", err)
	}
	return int(n)
}

func decodeB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func caRequestAgent(pub crypto.PublicKey) ca.Request {
	return ca.Request{Profile: mtlsid.ProfileAgent, PublicKey: pub, CommonName: "ghost", DeviceType: mtlsid.DeviceAgent}
}
