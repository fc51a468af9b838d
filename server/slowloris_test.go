package server_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/internal/hostile"
)

// TestHostileConnections opens, all at once, connections that dribble
// their headers (over TLS and plain HTTP), that never start or never
// finish the TLS handshake, and that agree on HTTP/2 and then send
// nothing; while they are open a normal client is served; the server
// closes every one of them within its timeouts; and the process returns
// to its baseline of goroutines and open files.
func TestHostileConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server's 10 s timeouts")
	}
	e := newEnv(t, openSQLite(t))
	addr := strings.TrimPrefix(e.url, "https://")
	client := e.httpClient(nil)
	get := func() {
		t.Helper()
		resp, err := client.Get(e.url + "/healthz")
		if err != nil {
			t.Fatalf("normal client: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("normal client: %s", resp.Status)
		}
	}
	get()
	client.CloseIdleConnections()
	base := hostile.Measure()

	tcp := func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 10*time.Second) }
	tlsConn := func() (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: e.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	}
	h2Conn := func() (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: e.roots, ServerName: "localhost", NextProtos: []string{"h2"}})
	}
	h := hostile.New(t)
	h.Start(hostile.PerKind, tlsConn, hostile.Dribble("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: "))
	h.Start(hostile.PerKind, tcp, hostile.Dribble("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")) // plain HTTP: the revocation side
	h.Start(hostile.PerKind, tcp, hostile.Silent)
	h.Start(hostile.PerKind, tcp, hostile.PartialHello)
	h.Start(hostile.PerKind, h2Conn, hostile.Silent) // HTTP/2 agreed, then no connection preface

	// Every hostile connection is open: others are still served, over
	// new connections.
	for range 3 {
		get()
		client.CloseIdleConnections()
	}
	h.WaitClosed(hostile.Cutoff + 60*time.Second)
	client.CloseIdleConnections()
	hostile.WaitBaseline(t, base, 20, 30*time.Second)
}

// TestOversizedHeaders sends a 1 MiB header over TLS and over plain HTTP:
// the server answers 431 or closes the connection, never serves it, and
// keeps serving others.
func TestOversizedHeaders(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	addr := strings.TrimPrefix(e.url, "https://")
	client := e.httpClient(nil)
	tcp := func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 10*time.Second) }
	tlsConn := func() (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: e.roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	}
	base := hostile.Measure()
	for name, dial := range map[string]func() (net.Conn, error){"tls": tlsConn, "plain": tcp} {
		for _, size := range []int{1 << 20, 80 << 10} {
			if st := hostile.Oversized(t, dial, "localhost", "/healthz", size); st != 0 && st != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%s, %d-byte header: status %d, want 431 or a closed connection", name, size, st)
			}
		}
	}
	resp, err := client.Get(e.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("normal client: %s", resp.Status)
	}
	client.CloseIdleConnections()
	hostile.WaitBaseline(t, base, 20, 30*time.Second)
}
