package gateway_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
	"github.com/mtlsid/mtlsid/sdk"
)

// streamsFixture is a gateway serving TCP perimeters and pass-through
// listeners only, to be reloaded by the tests.
type streamsFixture struct {
	e      *env
	mw     *sdk.Middleware
	logs   *logBuf
	gw     *gateway.Gateway
	tls    gateway.TLSFiles // the TCP perimeters' certificate, for db.example.com
	pool   *x509.CertPool   // trusts it
	logger *slog.Logger

	alice, bob, carol *device // roles: dba; ops; dba and ops
}

func newStreamsFixture(t *testing.T) *streamsFixture {
	t.Helper()
	e := newEnv(t)
	f := &streamsFixture{e: e, mw: newMiddleware(t, e), logs: &logBuf{}}
	certFile, keyFile, pool := serverCert(t, e.dir, "db.example.com")
	f.tls, f.pool = gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, pool
	f.logger = slog.New(slog.NewTextHandler(f.logs, nil))
	f.alice, f.bob, f.carol = e.enroll("alice-laptop"), e.enroll("bob-phone"), e.enroll("carol-pc")
	e.grant(f.alice, "dba")
	e.grant(f.bob, "ops")
	e.grant(f.carol, "dba")
	e.grant(f.carol, "ops")
	for _, p := range []*device{f.alice, f.bob, f.carol} {
		e.consent(p)
	}
	return f
}

// start serves cfg, with the fixture's logger.
func (f *streamsFixture) start(t *testing.T, cfg gateway.Config) {
	t.Helper()
	f.gw = startGateway(t, f.config(cfg), f.mw, nil)
}

func (f *streamsFixture) config(cfg gateway.Config) gateway.Config {
	cfg.Logger = f.logger
	return cfg
}

func (f *streamsFixture) reload(cfg gateway.Config) error {
	return f.gw.Reload(f.config(cfg), f.mw, nil)
}

// tcp is a TCP perimeter named name with the fixture's certificate.
func (f *streamsFixture) tcp(name, listen, upstream string, anyOf ...string) gateway.TCPPerimeter {
	return gateway.TCPPerimeter{Name: name, Listen: listen, TLS: f.tls, Upstream: upstream,
		Roles: gateway.Roles{AnyOf: anyOf}, RecheckInterval: 50 * time.Millisecond}
}

// roundTrip sends msg on an open relayed connection and reads the echo.
func roundTrip(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	b := make([]byte, len(msg))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != msg {
		return fmt.Errorf("echo %q, want %q", b, msg)
	}
	return nil
}

// passLine dials a pass-through address for serverName, trusting pool,
// and returns the line the upstream answers.
func passLine(addr, serverName string, pool *x509.CertPool, person *device) (string, error) {
	c, err := dialTLS(addr, serverName, pool, person)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// passLineAny is passLine trusting the certificate of any of pools
// (upstreams with different certificates for the same name).
func passLineAny(addr, serverName string, person *device, pools ...*x509.CertPool) (string, error) {
	conf := &tls.Config{ServerName: serverName, Certificates: []tls.Certificate{person.tls},
		InsecureSkipVerify: true, // verified below against each pool in turn
		VerifyConnection: func(cs tls.ConnectionState) error {
			var err error
			for _, p := range pools {
				inter := x509.NewCertPool()
				for _, c := range cs.PeerCertificates[1:] {
					inter.AddCert(c)
				}
				if _, err = cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: p, DNSName: serverName, Intermediates: inter}); err == nil {
					return nil
				}
			}
			return errors.Join(errors.New("no pool trusts the upstream"), err)
		}}
	c, err := (&tls.Dialer{NetDialer: &net.Dialer{Timeout: 20 * time.Second}, Config: conf}).Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// TestReloadTCPRoles changes a TCP perimeter's roles and upstream by a
// reload: the next connections follow them, an open connection whose
// holder still has the roles keeps working on its old upstream, and one
// whose holder lacks the new roles is closed by its recheck (which
// follows the perimeter's current settings).
func TestReloadTCPRoles(t *testing.T) {
	f := newStreamsFixture(t)
	up1, up2 := newEchoUpstream(t), newEchoUpstream(t)
	f.start(t, gateway.Config{TCP: []gateway.TCPPerimeter{f.tcp("db", "127.0.0.1:0", up1.addr(), "dba")}})
	addr := f.gw.TCPAddr("db").String()

	c, err := dialTLS(addr, "db.example.com", f.pool, f.bob)
	refused(t, c, err) // ops is not enough yet
	f.logs.waitFor(t, "tcp connection refused", hexSerial(f.bob), "needs one of the roles: dba")

	carolConn, err := dialTLS(addr, "db.example.com", f.pool, f.carol)
	if err != nil {
		t.Fatal(err)
	}
	defer carolConn.Close()
	aliceConn, err := dialTLS(addr, "db.example.com", f.pool, f.alice)
	if err != nil {
		t.Fatal(err)
	}
	defer aliceConn.Close()
	for _, c := range []net.Conn{carolConn, aliceConn} {
		if err := roundTrip(c, "before\n"); err != nil {
			t.Fatal(err)
		}
	}
	if n := up1.accepts.Load(); n != 2 {
		t.Fatalf("upstream 1 accepted %d connections, want 2", n)
	}

	if err := f.reload(gateway.Config{TCP: []gateway.TCPPerimeter{f.tcp("db", "127.0.0.1:0", up2.addr(), "ops")}}); err != nil {
		t.Fatal(err)
	}
	if got := f.gw.TCPAddr("db").String(); got != addr {
		t.Fatalf("the listener moved from %s to %s", addr, got)
	}

	t.Run("next connection follows the new roles and upstream", func(t *testing.T) {
		c, err := dialTLS(addr, "db.example.com", f.pool, f.bob)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := echo(c, "ping"); err != nil || got != "ping" {
			t.Fatalf("bob after the reload: %q, %v", got, err)
		}
		if up2.accepts.Load() != 1 {
			t.Error("the new connection did not reach the new upstream")
		}
		c, err = dialTLS(addr, "db.example.com", f.pool, f.alice)
		refused(t, c, err)
		f.logs.waitFor(t, "tcp connection refused", hexSerial(f.alice), "needs one of the roles: ops")
	})

	t.Run("recheck follows the perimeter's current roles", func(t *testing.T) {
		f.logs.waitFor(t, "identity no longer accepted", hexSerial(f.alice), "needs one of the roles: ops")
		_ = aliceConn.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := aliceConn.Read(make([]byte, 1)); err == nil {
			t.Fatal("alice's connection still answers")
		}
	})

	t.Run("open connection keeps working on its upstream", func(t *testing.T) {
		for i := range 5 {
			if err := roundTrip(carolConn, fmt.Sprintf("after %d\n", i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := up1.accepts.Load(); n != 2 {
			t.Errorf("upstream 1 accepted %d connections, want 2", n)
		}
	})
}

// TestReloadPassthroughRoutes adds a route and moves another by reload.
func TestReloadPassthroughRoutes(t *testing.T) {
	f := newStreamsFixture(t)
	app, app2, svc := newTLSUpstream(t, f.e, "app.example.com"), newTLSUpstream(t, f.e, "app.example.com"), newTLSUpstream(t, f.e, "*.svc.example.com")
	edge := func(routes ...gateway.PassthroughRoute) gateway.Config {
		return gateway.Config{Passthrough: []gateway.Passthrough{{Name: "edge", Listen: "127.0.0.1:0", Routes: routes}}}
	}
	f.start(t, edge(gateway.PassthroughRoute{Hostnames: []string{"app.example.com"}, Upstream: app.addr()}))
	addr := f.gw.PassthroughAddr("edge").String()

	want := "serial=" + hexSerial(f.alice) + " sni=app.example.com\n"
	if line, err := passLine(addr, "app.example.com", app.pool, f.alice); line != want {
		t.Fatalf("before: %q, %v", line, err)
	}
	if line, err := passLine(addr, "api.svc.example.com", svc.pool, f.alice); err == nil || line != "" {
		t.Fatalf("a name without a route answered %q", line)
	}
	f.logs.waitFor(t, "passthrough connection refused", "server_name=api.svc.example.com", "no route")

	if err := f.reload(edge(
		gateway.PassthroughRoute{Hostnames: []string{"app.example.com"}, Upstream: app2.addr()},
		gateway.PassthroughRoute{Hostnames: []string{"*.svc.example.com"}, Upstream: svc.addr()},
	)); err != nil {
		t.Fatal(err)
	}
	if got := f.gw.PassthroughAddr("edge").String(); got != addr {
		t.Fatalf("the listener moved from %s to %s", addr, got)
	}
	// app2 has its own certificate: trusting only its pool proves the
	// route moved.
	if line, err := passLine(addr, "app.example.com", app2.pool, f.alice); line != want {
		t.Fatalf("moved route: %q, %v", line, err)
	}
	if line, err := passLine(addr, "api.svc.example.com", svc.pool, f.alice); line != "serial="+hexSerial(f.alice)+" sni=api.svc.example.com\n" {
		t.Fatalf("added route: %q, %v", line, err)
	}
	if n := app.accepts.Load(); n != 1 {
		t.Errorf("the old upstream accepted %d connections, want 1", n)
	}
}

// TestReloadStreamListeners adds and removes TCP and pass-through
// listeners: a connection open on a removed listener runs on, its address
// no longer accepts, the added ones serve.
func TestReloadStreamListeners(t *testing.T) {
	f := newStreamsFixture(t)
	up := newEchoUpstream(t)
	tlsUp := newTLSUpstream(t, f.e, "app.example.com")
	route := []gateway.PassthroughRoute{{Hostnames: []string{"app.example.com"}, Upstream: tlsUp.addr()}}
	f.start(t, gateway.Config{
		TCP:         []gateway.TCPPerimeter{f.tcp("a", "127.0.0.1:0", up.addr(), "dba")},
		Passthrough: []gateway.Passthrough{{Name: "p1", Listen: "127.0.0.1:0", Routes: route}},
	})
	aAddr, p1Addr := f.gw.TCPAddr("a").String(), f.gw.PassthroughAddr("p1").String()
	open, err := dialTLS(aAddr, "db.example.com", f.pool, f.alice)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := roundTrip(open, "hello\n"); err != nil {
		t.Fatal(err)
	}

	if err := f.reload(gateway.Config{
		TCP:         []gateway.TCPPerimeter{f.tcp("b", "127.0.0.1:0", up.addr(), "dba")},
		Passthrough: []gateway.Passthrough{{Name: "p2", Listen: "127.0.0.1:0", Routes: route}},
	}); err != nil {
		t.Fatal(err)
	}
	if f.gw.TCPAddr("a") != nil || f.gw.PassthroughAddr("p1") != nil {
		t.Error("removed listeners still reported")
	}
	f.logs.waitFor(t, "tcp listener closing", "name=a")
	f.logs.waitFor(t, "passthrough listener closing", "name=p1")
	for _, a := range []string{aAddr, p1Addr} {
		if c, err := net.DialTimeout("tcp", a, 20*time.Second); err == nil {
			c.Close()
			t.Errorf("removed listener %s still accepts", a)
		}
	}

	t.Run("open connection on a removed listener runs on", func(t *testing.T) {
		for i := range 5 {
			if err := roundTrip(open, fmt.Sprintf("still %d\n", i)); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("added listeners serve", func(t *testing.T) {
		c, err := dialTLS(f.gw.TCPAddr("b").String(), "db.example.com", f.pool, f.alice)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err := echo(c, "ping"); got != "ping" {
			t.Fatalf("tcp b: %q, %v", got, err)
		}
		want := "serial=" + hexSerial(f.alice) + " sni=app.example.com\n"
		if line, err := passLine(f.gw.PassthroughAddr("p2").String(), "app.example.com", tlsUp.pool, f.alice); line != want {
			t.Fatalf("passthrough p2: %q, %v", line, err)
		}
	})
}

// TestReloadStreamsRefused: a reload with an address in use, an invalid
// route, or a listener changing kind is refused and changes nothing.
func TestReloadStreamsRefused(t *testing.T) {
	f := newStreamsFixture(t)
	up := newEchoUpstream(t)
	tlsUp := newTLSUpstream(t, f.e, "app.example.com")
	route := gateway.PassthroughRoute{Hostnames: []string{"app.example.com"}, Upstream: tlsUp.addr()}
	fixed := "127.0.0.1:" + strconv.Itoa(freePort(t))
	good := gateway.Config{
		TCP:         []gateway.TCPPerimeter{f.tcp("db", "127.0.0.1:0", up.addr(), "dba")},
		Passthrough: []gateway.Passthrough{{Name: "edge", Listen: fixed, Routes: []gateway.PassthroughRoute{route}}},
	}
	f.start(t, good)
	dbAddr := f.gw.TCPAddr("db").String()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	certFile, keyFile, _ := serverCert(t, f.e.dir, "shop.example.com")

	for _, tc := range []struct {
		name string
		cfg  func(cfg *gateway.Config)
		want string
	}{
		{"tcp address in use", func(cfg *gateway.Config) {
			cfg.TCP = append(cfg.TCP, f.tcp("busy", busy.Addr().String(), up.addr()))
		}, "address already in use"},
		{"passthrough address in use", func(cfg *gateway.Config) {
			cfg.Passthrough = append(cfg.Passthrough, gateway.Passthrough{Name: "busy", Listen: busy.Addr().String(), Routes: []gateway.PassthroughRoute{route}})
		}, "address already in use"},
		{"http address in use after the streams bound theirs", func(cfg *gateway.Config) {
			cfg.Passthrough = append(cfg.Passthrough, gateway.Passthrough{Name: "new", Listen: "127.0.0.1:0", Routes: []gateway.PassthroughRoute{route}})
			cfg.Perimeters = []gateway.Perimeter{{Name: "shop", Listen: busy.Addr().String(), Hostnames: []string{"shop.example.com"},
				TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, Upstream: "http://127.0.0.1:9"}}
		}, "address already in use"},
		{"invalid route", func(cfg *gateway.Config) {
			cfg.Passthrough[0].Routes = []gateway.PassthroughRoute{{Hostnames: []string{"app.example.com"}, Upstream: "no-port"}}
		}, "not host:port"},
		{"passthrough becomes tcp", func(cfg *gateway.Config) {
			cfg.Passthrough = nil
			cfg.TCP = append(cfg.TCP, f.tcp("edge", fixed, up.addr()))
		}, "changes from passthrough to tcp"},
		{"passthrough becomes http", func(cfg *gateway.Config) {
			cfg.Passthrough = nil
			cfg.Perimeters = []gateway.Perimeter{{Name: "shop", Listen: fixed, Hostnames: []string{"shop.example.com"},
				TLS: gateway.TLSFiles{CertFile: certFile, KeyFile: keyFile}, Upstream: "http://127.0.0.1:9"}}
		}, "changes from passthrough to http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			cfg.TCP = []gateway.TCPPerimeter{f.tcp("db", "127.0.0.1:0", up.addr(), "ops")} // a change that must not apply
			cfg.Passthrough = append([]gateway.Passthrough(nil), good.Passthrough...)
			tc.cfg(&cfg)
			err := f.reload(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("reload: %v, want an error with %q", err, tc.want)
			}
			if f.gw.TCPAddr("busy") != nil || f.gw.PassthroughAddr("busy") != nil || f.gw.PassthroughAddr("new") != nil || len(f.gw.Addrs()) != 0 {
				t.Error("a refused reload left a listener")
			}
			if got := f.gw.TCPAddr("db").String(); got != dbAddr {
				t.Fatalf("tcp perimeter moved to %s", got)
			}
			c, err := dialTLS(dbAddr, "db.example.com", f.pool, f.alice)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got, err := echo(c, "ping"); got != "ping" {
				t.Fatalf("the old roles no longer serve: %q, %v", got, err)
			}
			want := "serial=" + hexSerial(f.alice) + " sni=app.example.com\n"
			if line, err := passLine(fixed, "app.example.com", tlsUp.pool, f.alice); line != want {
				t.Fatalf("the old route no longer serves: %q, %v", line, err)
			}
		})
	}
	// The pass-through listener kept its fixed address through it all.
	if ln, err := net.Listen("tcp", fixed); err == nil {
		ln.Close()
		t.Error("the pass-through address is not bound")
	}
}

// TestReloadStreamsUnderLoad reloads TCP perimeter and pass-through
// settings repeatedly while clients keep connections open and open new
// ones: no connection fails.
func TestReloadStreamsUnderLoad(t *testing.T) {
	f := newStreamsFixture(t)
	up1, up2 := newEchoUpstream(t), newEchoUpstream(t)
	app1, app2 := newTLSUpstream(t, f.e, "app.example.com"), newTLSUpstream(t, f.e, "app.example.com")
	cfgN := func(i int) gateway.Config {
		up, app := up1, app1
		roles := []string{"dba"}
		if i%2 == 1 {
			up, app = up2, app2
			roles = []string{"dba", "root"}
		}
		return gateway.Config{
			TCP: []gateway.TCPPerimeter{f.tcp("db", "127.0.0.1:0", up.addr(), roles...)},
			Passthrough: []gateway.Passthrough{{Name: "edge", Listen: "127.0.0.1:0",
				Routes: []gateway.PassthroughRoute{{Hostnames: []string{"app.example.com"}, Upstream: app.addr()}}}},
		}
	}
	f.start(t, cfgN(0))
	dbAddr, edgeAddr := f.gw.TCPAddr("db").String(), f.gw.PassthroughAddr("edge").String()

	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		ok, fail atomic.Int64
		firstErr sync.Once
		errMsg   atomic.Pointer[string]
	)
	failed := func(err error) {
		fail.Add(1)
		firstErr.Do(func() { s := err.Error(); errMsg.Store(&s) })
	}
	// Long-lived TCP connections: many round trips each, across reloads.
	for w := range 2 {
		wg.Go(func() {
			for !stop.Load() {
				c, err := dialTLS(dbAddr, "db.example.com", f.pool, f.alice)
				if err != nil {
					failed(err)
					return
				}
				for i := 0; i < 50 && !stop.Load(); i++ {
					if err := roundTrip(c, fmt.Sprintf("w%d %d\n", w, i)); err != nil {
						failed(err)
						c.Close()
						return
					}
					ok.Add(1)
				}
				c.Close()
			}
		})
	}
	// New pass-through connections, one after the other.
	wg.Go(func() {
		want := "serial=" + hexSerial(f.alice) + " sni=app.example.com\n"
		for !stop.Load() {
			line, err := passLineAny(edgeAddr, "app.example.com", f.alice, app1.pool, app2.pool)
			if err != nil || line != want {
				failed(fmt.Errorf("passthrough: %q, %w", line, err))
				return
			}
			ok.Add(1)
		}
	})

	for i := 1; i <= 6; i++ {
		before := ok.Load()
		waitUntil(t, "traffic between reloads", func() bool { return ok.Load() >= before+20 || fail.Load() > 0 })
		u0, a0 := up2.accepts.Load(), app2.accepts.Load()
		if err := f.reload(cfgN(i)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			// Until new connections reach the reloaded upstreams: the
			// traffic counted above may all be round trips on TCP
			// connections opened before the reload.
			waitUntil(t, "new connections on the reloaded upstreams", func() bool {
				return up2.accepts.Load() > u0 && app2.accepts.Load() > a0 || fail.Load() > 0
			})
		}
	}
	before := ok.Load()
	waitUntil(t, "traffic after the reloads", func() bool { return ok.Load() >= before+20 || fail.Load() > 0 })
	stop.Store(true)
	wg.Wait()
	if n := fail.Load(); n > 0 {
		t.Fatalf("%d connections failed during reloads; first: %s", n, *errMsg.Load())
	}
	if up2.accepts.Load() == 0 || app2.accepts.Load() == 0 {
		t.Error("the reloaded upstreams were never used")
	}
	t.Logf("%d round trips and pass-through connections across 6 reloads", ok.Load())
}
