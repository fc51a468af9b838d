package gateway_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostilePerKind is how many connections of each hostile kind the test
// opens at once: enough to show the limits hold, few enough for a loaded
// 2-core machine.
const hostilePerKind = 40

// gatewayCutoff is the longest the gateway lets a client stall before its
// first request is complete: ReadHeaderTimeout, which also bounds the TLS
// handshake (net/http derives that from it), is 10 s. The test waits for
// this plus a generous margin; it asserts that the connections are
// closed, not how fast.
const gatewayCutoff = 10 * time.Second

// hostile is a set of misbehaving client connections. Each runs until
// the gateway closes it; the test's cleanup closes any left.
type hostile struct {
	t      testing.TB
	wg     sync.WaitGroup
	opened atomic.Int64
	closed atomic.Int64 // by the gateway
	stop   chan struct{}
}

func newHostile(t testing.TB) *hostile {
	h := &hostile{t: t, stop: make(chan struct{})}
	t.Cleanup(func() {
		close(h.stop)
		h.wg.Wait()
	})
	return h
}

// start opens n connections with dial and runs behave on each, while a
// reader waits for the gateway to close the connection. It returns once
// every connection is open.
func (h *hostile) start(n int, dial func() (net.Conn, error), behave func(c net.Conn, done <-chan struct{})) {
	h.t.Helper()
	for range n {
		c, err := dial()
		if err != nil {
			h.t.Fatalf("opening a hostile connection: %v", err)
		}
		h.opened.Add(1)
		done := make(chan struct{})
		h.wg.Go(func() {
			_, _ = io.Copy(io.Discard, c)
			h.closed.Add(1)
			close(done)
		})
		h.wg.Go(func() {
			defer c.Close()
			go func() {
				select {
				case <-h.stop:
					c.Close()
				case <-done:
				}
			}()
			behave(c, done)
			select {
			case <-done:
			case <-h.stop:
			}
		})
	}
}

// waitClosed polls until the gateway has closed every connection.
func (h *hostile) waitClosed(limit time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for h.closed.Load() < h.opened.Load() {
		if time.Now().After(deadline) {
			h.t.Fatalf("after %s the gateway still holds %d of %d hostile connections", limit, h.opened.Load()-h.closed.Load(), h.opened.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// dribble sends prefix and then one byte of a header value every 300 ms,
// never ending the headers.
func dribble(prefix string) func(net.Conn, <-chan struct{}) {
	return func(c net.Conn, done <-chan struct{}) {
		if _, err := io.WriteString(c, prefix); err != nil {
			return
		}
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				if _, err := c.Write([]byte{'a'}); err != nil {
					return
				}
			}
		}
	}
}

func silent(net.Conn, <-chan struct{}) {}

// partialHello starts a TLS handshake and stalls.
func partialHello(c net.Conn, _ <-chan struct{}) {
	_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})
}

type footprint struct{ goroutines, fds int }

func measure() footprint {
	fp := footprint{goroutines: runtime.NumGoroutine(), fds: -1}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fp.fds = len(ents)
	}
	return fp
}

func waitBaseline(t testing.TB, base footprint, slack int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		now := measure()
		if now.goroutines <= base.goroutines+slack && (base.fds < 0 || now.fds <= base.fds+slack) {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("footprint %+v did not return near the baseline %+v (slack %d)\n%s", now, base, slack, buf)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// oversized sends a request with one header of size bytes and returns the
// answer's status, or 0 when the gateway closed the connection without
// one.
func oversized(t testing.TB, dial func() (net.Conn, error), host string, size int) int {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		_, _ = fmt.Fprintf(c, "GET /public HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", host, strings.Repeat("a", size))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

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
	base := measure()

	tcp := func() (net.Conn, error) { return net.DialTimeout("tcp", f.addr, 10*time.Second) }
	tlsConn := func() (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", f.addr, &tls.Config{RootCAs: f.pool, ServerName: host, NextProtos: []string{"http/1.1"}})
	}
	h2Conn := func() (net.Conn, error) {
		d := &net.Dialer{Timeout: 10 * time.Second}
		return tls.DialWithDialer(d, "tcp", f.addr, &tls.Config{RootCAs: f.pool, ServerName: host, NextProtos: []string{"h2"}})
	}
	h := newHostile(t)
	h.start(hostilePerKind, tlsConn, dribble("GET /public HTTP/1.1\r\nHost: "+host+"\r\nX-Slow: "))
	h.start(hostilePerKind, tcp, silent)
	h.start(hostilePerKind, tcp, partialHello)
	h.start(hostilePerKind, h2Conn, silent) // HTTP/2 agreed, then no connection preface
	for range 3 {
		get()
		client.CloseIdleConnections()
	}
	h.waitClosed(gatewayCutoff + 60*time.Second)

	hits := f.up.hits.Load()
	for _, size := range []int{1 << 20, 80 << 10} {
		if st := oversized(t, tlsConn, host, size); st != 0 && st != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("%d-byte header: status %d, want 431 or a closed connection", size, st)
		}
	}
	if n := f.up.hits.Load() - hits; n != 0 {
		t.Errorf("%d oversized requests reached the upstream", n)
	}
	get()
	client.CloseIdleConnections()
	waitBaseline(t, base, 20, 30*time.Second)
}
