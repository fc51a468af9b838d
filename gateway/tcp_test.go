package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
)

// logBuf collects a gateway's logs for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor waits (up to 20 s) for a log line holding every one of parts:
// a handler logs a refusal around the time it closes the connection.
func (l *logBuf) waitFor(t testing.TB, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for line := range strings.SplitSeq(l.String(), "\n") {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(line, p)
			}
			if ok {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q in:\n%s", parts, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newMiddleware(t testing.TB, e *env) *sdk.Middleware {
	t.Helper()
	mw, err := sdk.NewMiddleware(context.Background(), e.client, sdk.WithoutRedirect(), sdk.WithPage(gateway.RenderPage))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mw.Close() })
	return mw
}

// echoUpstream is a plain TCP server on loopback that counts its
// connections and echoes each until the client half-closes, then
// half-closes too (a protocol that relies on half-close).
type echoUpstream struct {
	ln      net.Listener
	accepts atomic.Int64
}

func newEchoUpstream(t testing.TB) *echoUpstream {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &echoUpstream{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return u
}

func (u *echoUpstream) addr() string { return u.ln.Addr().String() }

// dialConfig trusts pool, names serverName and presents person's
// certificate (nil: none).
func dialConfig(pool *x509.CertPool, serverName string, person *device) *tls.Config {
	conf := &tls.Config{RootCAs: pool, ServerName: serverName}
	if person != nil {
		conf.Certificates = []tls.Certificate{person.tls}
	}
	return conf
}

func dialTLS(addr, serverName string, pool *x509.CertPool, person *device) (*tls.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 20 * time.Second}, Config: dialConfig(pool, serverName, person)}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// echo sends msg, half-closes, and reads the answer until EOF.
func echo(c *tls.Conn, msg string) (string, error) {
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	if err := c.CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// refused asserts that the connection ends without an answer.
func refused(t testing.TB, c *tls.Conn, err error) {
	t.Helper()
	if err != nil {
		return // the handshake itself failed
	}
	defer c.Close()
	got, err := echo(c, "ping")
	if err == nil && got != "" || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("refused connection answered %q, %v", got, err)
	}
}

type tcpFixture struct {
	e     *env
	mw    *sdk.Middleware
	up    *echoUpstream
	pool  *x509.CertPool
	logs  *logBuf
	gw    *gateway.Gateway
	addr  string // perimeter "echo": any_of dba
	exmpt string // perimeter "exempt": 127.0.0.0/8 exempt, all_of dba
	idle  string // perimeter "idle": idle timeout 300 ms
}

func newTCPFixture(t *testing.T) *tcpFixture {
	e := newEnv(t)
	f := &tcpFixture{e: e, mw: newMiddleware(t, e), up: newEchoUpstream(t), logs: &logBuf{}}
	certFile, keyFile, pool := serverCert(t, e.dir, "db.example.com")
	f.pool = pool
	tlsFiles := gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}
	cfg := gateway.Config{Logger: slog.New(slog.NewTextHandler(f.logs, nil)), TCP: []gateway.TCPPerimeter{
		{Name: "echo", Listen: "127.0.0.1:0", TLS: tlsFiles, Upstream: f.up.addr(), Roles: gateway.Roles{AnyOf: []string{"dba", "root"}},
			RecheckInterval: 100 * time.Millisecond},
		{Name: "exempt", Listen: "127.0.0.1:0", TLS: tlsFiles, Upstream: f.up.addr(), Roles: gateway.Roles{AllOf: []string{"dba"}}, ExemptIPs: []string{"127.0.0.0/8"}},
		{Name: "idle", Listen: "127.0.0.1:0", TLS: tlsFiles, Upstream: f.up.addr(), IdleTimeout: 300 * time.Millisecond},
	}}
	agent, err := sdk.LoadCertSource(e.agentCert, e.agentKey)
	if err != nil {
		t.Fatal(err)
	}
	f.gw = startGateway(t, cfg, f.mw, agent)
	f.addr, f.exmpt, f.idle = f.gw.TCPAddr("echo").String(), f.gw.TCPAddr("exempt").String(), f.gw.TCPAddr("idle").String()
	return f
}

func TestTCPPerimeter(t *testing.T) {
	f := newTCPFixture(t)
	e := f.e
	alice, bob, carol, dave := e.enroll("alice-laptop"), e.enroll("bob-phone"), e.enroll("carol-pc"), e.enroll("dave-pc")
	e.grant(alice, "dba")
	e.grant(dave, "root")
	for _, p := range []*device{alice, bob, dave} {
		e.consent(p)
	}
	// carol never consents: PB 0003.

	t.Run("role holder relayed with half-close", func(t *testing.T) {
		c, err := dialTLS(f.addr, "db.example.com", f.pool, alice)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := strings.Repeat("0123456789", 20000) // several records each way
		if got, err := echo(c, msg); err != nil || got != msg {
			t.Fatalf("echo: %d bytes, %v", len(got), err)
		}
		f.logs.waitFor(t, "tcp connection opened", "tcp_perimeter=echo", hexSerial(alice))
		f.logs.waitFor(t, "tcp connection closed", hexSerial(alice), "bytes_in=200000", "bytes_out=200000")
	})

	for _, tc := range []struct {
		name   string
		person *device
		addr   string
		log    []string
	}{
		{"no certificate", nil, f.addr, []string{"tls handshake", "certificate"}},
		{"without the role", bob, f.addr, []string{hexSerial(bob), "needs one of the roles: dba, root"}},
		{"identity not shared", carol, f.addr, []string{hexSerial(carol), "PB 0003"}},
		{"all-of without the role, exempt address with a certificate", bob, f.exmpt, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.up.accepts.Load()
			c, err := dialTLS(tc.addr, "db.example.com", f.pool, tc.person)
			if tc.log == nil { // exempt: passes
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if got, err := echo(c, "ping"); got != "ping" {
					t.Fatalf("exempt: %q %v", got, err)
				}
				return
			}
			refused(t, c, err)
			f.logs.waitFor(t, append([]string{"tcp connection refused"}, tc.log...)...)
			if n := f.up.accepts.Load(); n != before {
				t.Errorf("the upstream was dialled for a refused connection (%d -> %d)", before, n)
			}
		})
	}

	t.Run("any-of other role", func(t *testing.T) {
		c, err := dialTLS(f.addr, "db.example.com", f.pool, dave)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := echo(c, "dave"); got != "dave" {
			t.Fatalf("%q %v", got, err)
		}
	})

	t.Run("certificate of another authority", func(t *testing.T) {
		other := newEnv(t).enroll("mallory")
		before := f.up.accepts.Load()
		c, err := dialTLS(f.addr, "db.example.com", f.pool, other)
		refused(t, c, err)
		f.logs.waitFor(t, "tcp connection refused", "tls handshake")
		if f.up.accepts.Load() != before {
			t.Error("the upstream was dialled")
		}
	})

	t.Run("exempt address without a certificate", func(t *testing.T) {
		c, err := dialTLS(f.exmpt, "db.example.com", f.pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := echo(c, "monitor"); got != "monitor" {
			t.Fatalf("%q %v", got, err)
		}
	})

	t.Run("idle timeout", func(t *testing.T) {
		c, err := dialTLS(f.idle, "db.example.com", f.pool, bob)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Bytes moving keep it open; then silence closes it.
		for i := range 3 {
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			msg := "tick" + strconv.Itoa(i)
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
				t.Fatalf("tick %d: %q %v", i, buf, err)
			}
		}
		_, err = c.Read(make([]byte, 1))
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("idle connection not closed: %v", err)
		}
		f.logs.waitFor(t, "tcp connection closed", "tcp_perimeter=idle", "end=\"idle timeout\"")
	})

	t.Run("revoked", func(t *testing.T) {
		c, err := dialTLS(f.addr, "db.example.com", f.pool, dave)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := echo(c, "x"); got != "x" {
			t.Fatal("dave refused before revocation")
		}
		c.Close()
		// A connection open at the revocation is closed by the recheck.
		held, err := dialTLS(f.addr, "db.example.com", f.pool, dave)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		_ = held.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, 4)
		if _, err := io.WriteString(held, "held"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(held, buf); err != nil || string(buf) != "held" {
			t.Fatalf("held connection: %q %v", buf, err)
		}
		if err := e.auth.RevokeLocal(context.Background(), dave.serial, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := held.Read(buf); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection open at the revocation still relayed: %v", err)
		}
		f.logs.waitFor(t, "identity no longer accepted", hexSerial(dave), "PB 0004")
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := dialTLS(f.addr, "db.example.com", f.pool, dave)
			got := ""
			if err == nil {
				got, _ = echo(c, "x")
				c.Close()
			}
			if got == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("revoked certificate still relayed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		f.logs.waitFor(t, "tcp connection refused", hexSerial(dave), "PB 0004")
	})
}

// TestTCPShutdownClosesConnections: open relays end when Shutdown's
// context does, and Shutdown returns without waiting longer.
func TestTCPShutdownClosesConnections(t *testing.T) {
	e := newEnv(t)
	mw := newMiddleware(t, e)
	up := newEchoUpstream(t)
	certFile, keyFile, pool := serverCert(t, e.dir, "db.example.com")
	alice := e.enroll("alice")
	e.consent(alice)
	metrics := gateway.NewMetrics()
	g, err := gateway.New(gateway.Config{Metrics: metrics, TCP: []gateway.TCPPerimeter{{Name: "db", Listen: "127.0.0.1:0",
		TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, Upstream: up.addr()}}}, mw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve() }()
	c, err := dialTLS(g.TCPAddr("db").String(), "db.example.com", pool, alice)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, "open\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "open\n" {
		t.Fatalf("%q %v", line, err)
	}
	if n := metricValue(t, metrics, "mtlsid_gateway_connections_active", "listener", "tcp db"); n != 1 {
		t.Errorf("connections_active{listener=\"tcp db\"} = %v, want 1", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The open connection had to be cut: Shutdown says so, as
	// http.Server.Shutdown does.
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection still open after shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if _, err := net.DialTimeout("tcp", g.TCPAddr("db").String(), 5*time.Second); err == nil {
		t.Error("still accepting after shutdown")
	}
}

// TestTCPPerimeterPostgres puts the real PostgreSQL behind a TCP
// perimeter. PostgreSQL's protocol starts in plain text, so the client
// speaks TLS to the gateway first: pgx dials with tls.Dial and the
// client certificate, and sslmode=disable for PostgreSQL itself.
func TestTCPPerimeterPostgres(t *testing.T) {
	base := os.Getenv(pgtest.EnvVar)
	if base == "" {
		t.Skip("PostgreSQL test skipped: set " + pgtest.EnvVar + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run it")
	}
	pgCfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	mw := newMiddleware(t, e)
	logs := &logBuf{}
	certFile, keyFile, pool := serverCert(t, e.dir, "pg.example.com")
	g := startGateway(t, gateway.Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), TCP: []gateway.TCPPerimeter{{
		Name: "pg", Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile},
		Upstream: net.JoinHostPort(pgCfg.Host, strconv.Itoa(int(pgCfg.Port))), Roles: gateway.Roles{AnyOf: []string{"dba"}},
	}}}, mw, nil)
	gwAddr := g.TCPAddr("pg").String()
	alice, bob := e.enroll("alice-laptop"), e.enroll("bob-phone")
	e.grant(alice, "dba")
	e.consent(alice)
	e.consent(bob)

	connect := func(person *device) (*pgx.Conn, error) {
		cfg, err := pgx.ParseConfig(base) // sslmode=disable: the TLS is the gateway's
		if err != nil {
			t.Fatal(err)
		}
		cfg.Fallbacks = nil
		conf := dialConfig(pool, "pg.example.com", person)
		cfg.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&tls.Dialer{Config: conf}).DialContext(ctx, "tcp", gwAddr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return pgx.ConnectConfig(ctx, cfg)
	}

	conn, err := connect(alice)
	if err != nil {
		t.Fatalf("alice through the gateway: %v", err)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("query: %d %v", n, err)
	}
	conn.Close(context.Background())
	logs.waitFor(t, "tcp connection opened", hexSerial(alice), "roles=dba")

	for _, tc := range []struct {
		name   string
		person *device
		log    string
	}{
		{"no certificate", nil, "tls handshake"},
		{"without the role", bob, hexSerial(bob)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := connect(tc.person)
			if err == nil {
				conn.Close(context.Background())
				t.Fatal("connected")
			}
			logs.waitFor(t, "tcp connection refused", tc.log)
		})
	}
}

// TestTCPConfig covers the validation of TCP perimeters.
func TestTCPConfig(t *testing.T) {
	ok := gateway.TCPPerimeter{Name: "db", Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: "c", KeyFile: "k"}, Upstream: "127.0.0.1:5432"}
	for _, tc := range []struct {
		name string
		edit func(*gateway.TCPPerimeter)
		want string // "" valid
	}{
		{"valid", func(*gateway.TCPPerimeter) {}, ""},
		{"no listen", func(p *gateway.TCPPerimeter) { p.Listen = "" }, "listen is required"},
		{"no tls", func(p *gateway.TCPPerimeter) { p.TLS = gateway.TLSFiles{} }, "tls.cert"},
		{"no upstream", func(p *gateway.TCPPerimeter) { p.Upstream = "" }, "upstream is required"},
		{"upstream url", func(p *gateway.TCPPerimeter) { p.Upstream = "postgres://db:5432" }, "host:port"},
		{"plain text remote", func(p *gateway.TCPPerimeter) { p.Upstream = "10.0.0.5:5432" }, "plain text on a non-loopback"},
		{"plain text remote allowed", func(p *gateway.TCPPerimeter) {
			p.Upstream, p.InsecurePlaintextUpstream = "10.0.0.5:5432", true
		}, ""},
		{"tls remote", func(p *gateway.TCPPerimeter) { p.Upstream, p.UpstreamTLS = "db.internal:5432", true }, ""},
		{"upstream_ca without tls", func(p *gateway.TCPPerimeter) { p.UpstreamCA = "ca.pem" }, "upstream_tls"},
		{"bad exempt", func(p *gateway.TCPPerimeter) { p.ExemptIPs = []string{"10.0.0.0/99"} }, "exempt_ips"},
		{"negative timeout", func(p *gateway.TCPPerimeter) { p.IdleTimeout = -1 }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := ok
			tc.edit(&p)
			err := gateway.Config{TCP: []gateway.TCPPerimeter{p}}.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	two := gateway.Config{TCP: []gateway.TCPPerimeter{ok, ok}}
	if err := two.Validate(); err == nil || !strings.Contains(err.Error(), "named db") {
		t.Errorf("two named db: %v", err)
	}
	ok2 := ok
	ok2.Name, ok.Listen, ok2.Listen = "db2", ":15432", ":15432"
	if err := (gateway.Config{TCP: []gateway.TCPPerimeter{ok, ok2}}).Validate(); err == nil || !strings.Contains(err.Error(), "both listen") {
		t.Errorf("shared address: %v", err)
	}
}

// TestTCPUpstreamTLS: the hop to the upstream is itself mTLS, with the
// gateway's agent certificate, and the gateway's server certificate is
// read again when its files change.
func TestTCPUpstreamTLS(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice")
	e.consent(alice)
	upCert, upKey, _ := serverCert(t, e.dir, "db.internal")
	pair, err := tls.LoadX509KeyPair(upCert, upKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(e.auth.CA().ChainPEM())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
				if tc.Handshake() != nil {
					return
				}
				io.WriteString(tc, "upstream saw 0x"+tc.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)+"\n")
			}()
		}
	}()
	certFile, keyFile, pool := serverCert(t, e.dir, "db.example.com")
	agent, err := sdk.LoadCertSource(e.agentCert, e.agentKey)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	g := startGateway(t, gateway.Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), TCP: []gateway.TCPPerimeter{{
		Name: "db", Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile},
		Upstream: ln.Addr().String(), UpstreamTLS: true, UpstreamCA: upCert, UpstreamServerName: "db.internal",
	}}}, newMiddleware(t, e), agent)
	addr := g.TCPAddr("db").String()
	read := func(pool *x509.CertPool) (string, *x509.Certificate, error) {
		c, err := dialTLS(addr, "db.example.com", pool, alice)
		if err != nil {
			return "", nil, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return line, c.ConnectionState().PeerCertificates[0], err
	}
	line, first, err := read(pool)
	if want := "upstream saw 0x" + agent.Leaf().SerialNumber.Text(16) + "\n"; err != nil || line != want {
		t.Fatalf("%q %v, want the agent certificate: %q", line, err, want)
	}

	// Renewed files: new connections get the new certificate.
	_, _, pool2 := serverCert(t, e.dir, "db.example.com") // rewrites the same files
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, got, err := read(pool2)
		if err == nil && got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificate not reloaded: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	logs.waitFor(t, "TLS certificate reloaded", "tcp_perimeter=db")
}

// TestTCPPerimeterPsqlSocat is docs/gateway.md's psql recipe: psql
// cannot present a client certificate to a TLS-first proxy, so a local
// socat opens the TLS connection with the certificate and psql talks
// plain text to socat on loopback.
func TestTCPPerimeterPsqlSocat(t *testing.T) {
	base := os.Getenv(pgtest.EnvVar)
	if base == "" {
		t.Skip("PostgreSQL test skipped: set " + pgtest.EnvVar + "=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run it")
	}
	socat, err1 := exec.LookPath("socat")
	psql, err2 := exec.LookPath("psql")
	if err := errors.Join(err1, err2); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("socat and psql are needed under CI (.ci/run installs them): %v", err)
		}
		t.Skipf("socat and psql are needed (apt-get install socat postgresql-client): %v", err)
	}
	pgCfg, err := pgx.ParseConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	certFile, keyFile, _ := serverCert(t, e.dir, "pg.example.com")
	g := startGateway(t, gateway.Config{TCP: []gateway.TCPPerimeter{{
		Name: "pg", Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile},
		Upstream: net.JoinHostPort(pgCfg.Host, strconv.Itoa(int(pgCfg.Port))), Roles: gateway.Roles{AnyOf: []string{"dba"}},
	}}}, newMiddleware(t, e), nil)
	alice := e.enroll("alice-laptop")
	e.grant(alice, "dba")
	e.consent(alice)
	aliceCrt, aliceKey := filepath.Join(e.dir, "alice.crt"), filepath.Join(e.dir, "alice.key")
	writePair(t, aliceCrt, aliceKey, alice.key, alice.cert)

	port := freePort(t)
	cmd := exec.Command(socat, fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", port),
		fmt.Sprintf("OPENSSL:%s,cert=%s,key=%s,cafile=%s,commonname=pg.example.com", g.TCPAddr("pg"), aliceCrt, aliceKey, certFile))
	var socatErr bytes.Buffer
	cmd.Stderr = &socatErr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
			break
		}
		if i > 400 {
			t.Fatalf("socat did not start: %s", socatErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", port, pgCfg.User, pgCfg.Database)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, psql, conninfo, "-Atc", "SELECT 6 * 7").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "42" {
		t.Fatalf("psql through socat and the gateway: %v\n%s\nsocat: %s", err, out, socatErr.String())
	}
}

// metricValue is the value of the series of name whose label is value
// (-1 when there is none).
func metricValue(t testing.TB, m *gateway.Metrics, name, label, value string) float64 {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if g := s.GetGauge(); g != nil {
						return g.GetValue()
					}
					return s.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestTCPUpstreamDown: an upstream that cannot be reached closes the
// client's connection, logs it and counts it.
func TestTCPUpstreamDown(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice")
	e.consent(alice)
	certFile, keyFile, pool := serverCert(t, e.dir, "db.example.com")
	down := "127.0.0.1:" + strconv.Itoa(freePort(t)) // nothing listens there
	metrics, logs := gateway.NewMetrics(), &logBuf{}
	g := startGateway(t, gateway.Config{Metrics: metrics, Logger: slog.New(slog.NewTextHandler(logs, nil)), TCP: []gateway.TCPPerimeter{{
		Name: "db", Listen: "127.0.0.1:0", TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, Upstream: down,
	}}}, newMiddleware(t, e), nil)
	c, err := dialTLS(g.TCPAddr("db").String(), "db.example.com", pool, alice)
	refused(t, c, err)
	logs.waitFor(t, "upstream failed", hexSerial(alice), "upstream="+down)
	if n := metricValue(t, metrics, "mtlsid_gateway_upstream_errors_total", "upstream", down); n != 1 {
		t.Errorf("upstream_errors_total = %v, want 1", n)
	}
}
