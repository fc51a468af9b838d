package agent_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/agent"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	"github.com/mtlsid/mtlsid/server"
	"github.com/mtlsid/mtlsid/store/sqlite"
)

// authorityEnv is a real authority on loopback whose device and server
// certificates live lifetime.
type authorityEnv struct {
	store mtlsid.Store
	url   string
	auth  *authority.Authority
	ca    *ca.CA
	roots *x509.CertPool
}

func startAuthority(t *testing.T, lifetime time.Duration) *authorityEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c, err := ca.Init(filepath.Join(dir, "ca"), ca.InitConfig{Now: func() time.Time { return time.Now().Add(-time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	if c, err = c.WithConfig(ca.Config{OCSPURL: base + "/ca/ocsp", DeviceLifetime: lifetime, ServerLifetime: lifetime}); err != nil {
		t.Fatal(err)
	}
	auth, err := authority.New(authority.Config{Store: store, CA: c, BaseDomain: "mtls.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	srv, err := server.New(context.Background(), server.Config{Authority: auth, Store: store, DataDir: dir, Hostnames: []string{"127.0.0.1"}, ServerCertLifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	roots := x509.NewCertPool()
	roots.AddCert(c.Root())
	return &authorityEnv{store: store, url: "https://" + ln.Addr().String(), auth: auth, ca: c, roots: roots}
}

// enroll makes a device identity in files under dir.
func (e *authorityEnv) enroll(t *testing.T, dir, name string) agent.Files {
	t.Helper()
	tok, _, err := e.auth.CreateToken(context.Background(), authority.TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	out, err := e.auth.Enroll(context.Background(), authority.EnrollRequest{Token: tok, Name: name, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	f := agent.Files{Base: filepath.Join(dir, name)}
	if err := f.Save(key, out.CertificatePEM(), out.ChainPEM()); err != nil {
		t.Fatal(err)
	}
	return f
}

func serial(t *testing.T, f agent.Files) string {
	t.Helper()
	c, err := f.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

func TestAgentRenewsDeviceAndRunsHook(t *testing.T) {
	e := startAuthority(t, 6*time.Second)
	dir := t.TempDir()
	f := e.enroll(t, dir, "laptop")
	first := serial(t, f)
	marker := filepath.Join(dir, "reloaded")
	statusFile := filepath.Join(dir, "status.json")
	a := &agent.Agent{
		Engine:     &agent.Engine{Server: e.url, Roots: e.roots},
		Identities: []agent.Identity{{Name: "laptop", Files: f, Reload: agent.Reload{Command: []string{"touch", marker}}}},
		StatusFile: statusFile, MinBackoff: 200 * time.Millisecond,
	}
	// Before two thirds of the life, a pass renews nothing.
	if err := a.Once(context.Background()); err != nil || serial(t, f) != first {
		t.Fatalf("early pass: %v, serial changed: %v", err, serial(t, f) != first)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for serial(t, f) == first {
		if ctx.Err() != nil {
			t.Fatal("no renewal within 15 s of a 6 s certificate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The hook runs right after the files are written.
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("reload hook did not run")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if _, err := os.Stat(f.Base + ".cer.prev"); err != nil {
		t.Errorf("old certificate not kept as .prev: %v", err)
	}
	for _, ext := range agent.Exts {
		fi, err := os.Stat(f.Base + ext)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", ext, fi, err)
		}
	}
	b, err := os.ReadFile(statusFile)
	var st []agent.Status
	if err != nil || json.Unmarshal(b, &st) != nil || len(st) != 1 || st[0].NextAttempt.IsZero() || st[0].LastRenewal.IsZero() {
		t.Errorf("status file: %s %v", b, err)
	}
	if _, err := f.KeyPair(); err != nil {
		t.Errorf("new key and certificate do not pair: %v", err)
	}
}

func TestAgentRetriesWhenAuthorityUnreachable(t *testing.T) {
	e := startAuthority(t, 6*time.Second)
	dir := t.TempDir()
	f := e.enroll(t, dir, "box")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "https://" + ln.Addr().String()
	ln.Close()
	a := &agent.Agent{
		Engine:     &agent.Engine{Server: dead, Roots: e.roots, Timeout: time.Second},
		Identities: []agent.Identity{{Name: "box", Files: f}},
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 7*time.Second)
	defer cancel()
	go a.Run(ctx)
	for {
		if s := a.Snapshot(); len(s) == 1 && s[0].Failures >= 2 && s[0].LastError != "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no retried failure reported: %+v", a.Snapshot())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAgentKeepsTLSServerFresh: the agent keeps a service's server
// certificate (6 s lifetime) fresh and a real TLS server reloads it on the
// hook, while a client connects continuously: no handshake fails.
func TestAgentKeepsTLSServerFresh(t *testing.T) {
	e := startAuthority(t, 6*time.Second)
	ctx := context.Background()
	dir := t.TempDir()
	admin := e.enroll(t, dir, "admin")
	adminRec, _ := adminRecord(t, e, admin)
	if _, err := e.auth.CreateOrg(ctx, adminRec, "acme", "", ""); err != nil {
		t.Fatal(err)
	}
	svc, err := e.auth.CreateService(ctx, adminRec, "acme", "shop")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	api, err := e.auth.IssueAPICert(ctx, adminRec, authority.APICertRequest{ServiceID: svc.ID, CSR: csr})
	if err != nil {
		t.Fatal(err)
	}
	apiFiles := agent.Files{Base: filepath.Join(dir, "api")}
	if err := apiFiles.Save(key, api.CertificatePEM(), api.ChainPEM()); err != nil {
		t.Fatal(err)
	}
	host := svc.ID + ".mtls.test"
	serverFiles := agent.Files{Base: filepath.Join(dir, "service-id", host)}
	marker := filepath.Join(dir, "reload")
	id := agent.Identity{Name: host, Kind: agent.KindServer, Files: serverFiles, Auth: apiFiles, Reload: agent.Reload{Command: []string{"touch", marker}}}
	eng := &agent.Engine{Server: e.url, Roots: e.roots}
	// The first certificate, then the TLS server that reloads on the hook.
	if out, err := eng.Renew(ctx, id, false); err != nil || !out.Renewed {
		t.Fatalf("first server certificate: %+v %v", out, err)
	}
	var current atomic.Pointer[tls.Certificate]
	load := func() {
		if c, err := serverFiles.KeyPair(); err == nil {
			current.Store(c)
		}
	}
	load()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ts := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }),
		TLSConfig: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil }}}
	go ts.ServeTLS(ln, "", "")
	defer ts.Close()
	runCtx, cancel := context.WithTimeout(ctx, 12*time.Second)
	defer cancel()
	go func() { // the reload: watch the hook's marker
		var last time.Time
		for runCtx.Err() == nil {
			if fi, err := os.Stat(marker); err == nil && fi.ModTime() != last {
				last = fi.ModTime()
				load()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	a := &agent.Agent{Engine: eng, Identities: []agent.Identity{id}, MinBackoff: 200 * time.Millisecond}
	go a.Run(runCtx)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{RootCAs: e.roots, ServerName: host}}}
	first := serial(t, serverFiles)
	var ok, failed int
	for runCtx.Err() == nil {
		resp, err := client.Get("https://" + ln.Addr().String())
		if err != nil {
			failed++
			t.Logf("request failed: %v", err)
		} else {
			resp.Body.Close()
			ok++
		}
		time.Sleep(25 * time.Millisecond)
	}
	if serial(t, serverFiles) == first {
		t.Fatal("the server certificate was never renewed")
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed across renewals", failed, ok+failed)
	}
}

func adminRecord(t *testing.T, e *authorityEnv, f agent.Files) (*mtlsid.Certificate, error) {
	t.Helper()
	c, err := f.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	return e.auth.Caller(context.Background(), c)
}
