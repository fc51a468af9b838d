package gateway_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/internal/hostile"
)

// TestGatewayHostileConnections opens, all at once, connections that
// dribble their headers, that never start or never finish the TLS
// handshake, and that agree on HTTP/2 and then send nothing; while they
// are open a normal client is served; the gateway closes every one within
// its timeouts; then a 1 MiB header is refused (431 or a closed
// connection, never forwarded upstream); and the process returns to its
// baseline of goroutines and open files.
func TestGatewayHostileConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the gateway's 10 s timeouts")
	}
	f := newFixture(t)
	const host = "shop.example.com"
	client := f.client(nil, f.addr, host)
	get := func() {
		t.Helper()
		resp, err := client.Get("https://" + host + "/public")
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

	tcp := func() (net.Conn, error) { return net.DialTimeout("tcp", f.addr, 10*time.Second) }
	tlsConn := func() (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", f.addr, &tls.Config{RootCAs: f.pool, ServerName: host, NextProtos: []string{"http/1.1"}})
	}
	h2Conn := func() (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", f.addr, &tls.Config{RootCAs: f.pool, ServerName: host, NextProtos: []string{"h2"}})
	}
	h := hostile.New(t)
	h.Start(hostile.PerKind, tlsConn, hostile.Dribble("GET /public HTTP/1.1\r\nHost: "+host+"\r\nX-Slow: "))
	h.Start(hostile.PerKind, tcp, hostile.Silent)
	h.Start(hostile.PerKind, tcp, hostile.PartialHello)
	h.Start(hostile.PerKind, h2Conn, hostile.Silent) // HTTP/2 agreed, then no connection preface
	for range 3 {
		get()
		client.CloseIdleConnections()
	}
	h.WaitClosed(hostile.Cutoff + 60*time.Second)

	hits := f.up.hits.Load()
	for _, size := range []int{1 << 20, 80 << 10} {
		if st := hostile.Oversized(t, tlsConn, host, "/public", size); st != 0 && st != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d-byte header: status %d, want 431 or a closed connection", size, st)
		}
	}
	if n := f.up.hits.Load() - hits; n != 0 {
		t.Errorf("%d oversized requests reached the upstream", n)
	}
	get()
	client.CloseIdleConnections()
	hostile.WaitBaseline(t, base, 20, 30*time.Second)
}
