package gateway_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
)

// tlsUpstream is a TLS server on loopback that requires a client
// certificate of the authority and verifies it itself (the gateway does
// not end TLS on pass-through routes), then answers with the serial it
// saw and the address the connection came from.
type tlsUpstream struct {
	ln      net.Listener
	pool    *x509.CertPool // trusts its server certificate
	accepts atomic.Int64
}

func newTLSUpstream(t testing.TB, e *env, names ...string) *tlsUpstream {
	t.Helper()
	certFile, keyFile, pool := serverCert(t, e.dir, names...)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AppendCertsFromPEM(e.auth.CA().ChainPEM())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := &tlsUpstream{ln: ln, pool: pool}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.accepts.Add(1)
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
				if err := tc.Handshake(); err != nil {
					return
				}
				cs := tc.ConnectionState()
				io.WriteString(tc, "serial=0x"+cs.PeerCertificates[0].SerialNumber.Text(16)+" sni="+cs.ServerName+"\n")
			}()
		}
	}()
	return u
}

func (u *tlsUpstream) addr() string { return u.ln.Addr().String() }

type passFixture struct {
	e        *env
	app, svc *tlsUpstream
	gw       *gateway.Gateway
	addr     string
	logs     *logBuf
}

func newPassFixture(t *testing.T) *passFixture {
	e := newEnv(t)
	f := &passFixture{e: e, logs: &logBuf{}}
	f.app = newTLSUpstream(t, e, "app.example.com")
	f.svc = newTLSUpstream(t, e, "*.svc.example.com")
	f.gw = startGateway(t, gateway.Config{Logger: slog.New(slog.NewTextHandler(f.logs, nil)), Passthrough: []gateway.Passthrough{{
		Name: "edge", Listen: "127.0.0.1:0", HelloTimeout: 500 * time.Millisecond, MaxHello: 4096,
		Routes: []gateway.PassthroughRoute{
			{Hostnames: []string{"app.example.com"}, Upstream: f.app.addr()},
			{Hostnames: []string{"*.svc.example.com"}, Upstream: f.svc.addr()},
		},
	}}}, newMiddleware(t, e), nil)
	f.addr = f.gw.PassthroughAddr("edge").String()
	return f
}

func (f *passFixture) accepts() int64 { return f.app.accepts.Load() + f.svc.accepts.Load() }

// closedWithout sends in on a raw connection and asserts that the
// gateway closes it (EOF or reset, not the test's deadline) without
// dialling an upstream, and logs reason.
func (f *passFixture) closedWithout(t *testing.T, in []byte, hold bool, reason ...string) {
	t.Helper()
	before := f.accepts()
	c, err := net.DialTimeout("tcp", f.addr, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(in); err != nil {
		t.Fatal(err)
	}
	if !hold {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	b, err := io.ReadAll(c)
	if len(b) > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %q, %v; want the connection closed", b, err)
	}
	f.logs.waitFor(t, append([]string{"passthrough connection refused"}, reason...)...)
	if f.accepts() != before {
		t.Error("an upstream was dialled")
	}
}

func TestPassthrough(t *testing.T) {
	f := newPassFixture(t)
	alice := f.e.enroll("alice-laptop")

	for _, tc := range []struct {
		name, sni string
		up        *tlsUpstream
	}{
		{"exact name", "app.example.com", f.app},
		{"wildcard", "api.svc.example.com", f.svc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dialTLS(f.addr, tc.sni, tc.up.pool, alice)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			want := "serial=" + hexSerial(alice) + " sni=" + tc.sni + "\n"
			if err != nil || line != want {
				t.Fatalf("upstream saw %q (%v), want %q", line, err, want)
			}
			// The client verified the upstream's own certificate (the
			// gateway has none for these names): TLS was not ended.
			f.logs.waitFor(t, "passthrough connection opened", "server_name="+tc.sni, "upstream="+tc.up.addr())
		})
	}

	t.Run("the upstream requires the certificate itself", func(t *testing.T) {
		c, err := dialTLS(f.addr, "app.example.com", f.app.pool, nil)
		if err == nil {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			if line, _ := bufio.NewReader(c).ReadString('\n'); line != "" {
				t.Fatalf("answered without a client certificate: %q", line)
			}
		}
	})

	hello := clientHello(t, "app.example.com")
	oversized := []byte{22, 3, 1, 0x40, 0, 1, 0, 0x3f, 0xfc} // a 16 KiB record and hello, over max_hello
	for _, tc := range []struct {
		name   string
		in     []byte
		hold   bool // keep the connection open: the gateway's deadline must end it
		reason []string
	}{
		{"unknown name", clientHello(t, "other.example.com"), false, []string{"server_name=other.example.com", "no route"}},
		{"wildcard is one label", clientHello(t, "a.b.svc.example.com"), false, []string{"no route"}},
		{"no sni", clientHello(t, "127.0.0.1"), false, []string{"no SNI"}},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: app.example.com\r\n\r\n"), false, []string{"not a TLS ClientHello"}},
		{"oversized", oversized, true, []string{"more than"}},
		{"truncated", hello[:len(hello)/2], false, []string{"unexpected EOF"}},
		{"slow client", hello[:3], true, []string{"i/o timeout"}},
		{"slow client mid-record", hello[:len(hello)-1], true, []string{"i/o timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) { f.closedWithout(t, tc.in, tc.hold, tc.reason...) })
	}
}

// clientHello returns the first flight crypto/tls sends for serverName.
func clientHello(t testing.TB, serverName string) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		tc := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
		_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
		_ = tc.Handshake()
		tc.Close()
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var hdr [5]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:5]))
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr[:], body...)
}

func TestPassthroughConfig(t *testing.T) {
	route := gateway.PassthroughRoute{Hostnames: []string{"app.example.com"}, Upstream: "10.0.0.1:443"}
	for _, tc := range []struct {
		name string
		p    gateway.Passthrough
		want string
	}{
		{"valid", gateway.Passthrough{Listen: ":8443", Routes: []gateway.PassthroughRoute{route}}, ""},
		{"proxy v2", gateway.Passthrough{Listen: ":8443", Routes: []gateway.PassthroughRoute{{Hostnames: []string{"*.example.com"}, Upstream: "h:1", ProxyProtocol: "v2"}}}, ""},
		{"no routes", gateway.Passthrough{Listen: ":8443"}, "routes are required"},
		{"no listen", gateway.Passthrough{Routes: []gateway.PassthroughRoute{route}}, "listen is required"},
		{"no hostnames", gateway.Passthrough{Listen: ":1", Routes: []gateway.PassthroughRoute{{Upstream: "h:1"}}}, "hostnames are required"},
		{"bad wildcard", gateway.Passthrough{Listen: ":1", Routes: []gateway.PassthroughRoute{{Hostnames: []string{"a.*.com"}, Upstream: "h:1"}}}, "wildcard"},
		{"twice", gateway.Passthrough{Listen: ":1", Routes: []gateway.PassthroughRoute{route, route}}, "routed twice"},
		{"bad upstream", gateway.Passthrough{Listen: ":1", Routes: []gateway.PassthroughRoute{{Hostnames: []string{"a.com"}, Upstream: "https://a.com"}}}, "host:port"},
		{"proxy v1", gateway.Passthrough{Listen: ":1", Routes: []gateway.PassthroughRoute{{Hostnames: []string{"a.com"}, Upstream: "h:1", ProxyProtocol: "v1"}}}, "proxy_protocol"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := gateway.Config{Passthrough: []gateway.Passthrough{tc.p}}.Validate()
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
	shared := gateway.Config{
		Perimeters:  []gateway.Perimeter{{Listen: ":8443", TLS: gateway.TLSFiles{CertFile: "c", KeyFile: "k"}, Upstream: "http://127.0.0.1:1"}},
		Passthrough: []gateway.Passthrough{{Name: "edge", Listen: ":8443", Routes: []gateway.PassthroughRoute{route}}},
	}
	if err := shared.Validate(); !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), "both listen on :8443") {
		t.Errorf("an HTTP perimeter and a passthrough listener on one address: %v", err)
	}
}
