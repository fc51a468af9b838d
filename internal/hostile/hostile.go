// Package hostile opens misbehaving client connections for the tests of
// serve and the gateway: headers dribbled a byte at a time, silence, TLS
// handshakes that stall, oversized headers; and measures what the process
// holds, so that a test can show the server's limits leave nothing behind.
// Only tests import it.
package hostile

import (
	"bufio"
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

// PerKind is how many connections of each hostile kind a test opens at
// once: enough to show the limits hold, few enough for a loaded 2-core
// machine.
const PerKind = 40

// Cutoff is the longest serve and the gateway let a client stall before
// its first request is complete: ReadHeaderTimeout, the TLS handshake
// bound (derived from it by net/http) and serve's first-byte sniffing are
// all 10 s. Tests wait for this plus a generous margin; they assert that
// the connections are closed, not how fast.
const Cutoff = 10 * time.Second

// Horde is a set of misbehaving client connections. Each runs until the
// server closes it; the test's cleanup closes any left.
type Horde struct {
	t      testing.TB
	wg     sync.WaitGroup
	opened atomic.Int64
	closed atomic.Int64 // by the server
	stop   chan struct{}
}

// New returns an empty Horde that t's cleanup disbands.
func New(t testing.TB) *Horde {
	h := &Horde{t: t, stop: make(chan struct{})}
	t.Cleanup(func() {
		close(h.stop)
		h.wg.Wait()
	})
	return h
}

// Behaviour is what a hostile connection does (writes slowly, or not at
// all); done is closed when the server has closed the connection.
type Behaviour func(c net.Conn, done <-chan struct{})

// Start opens n connections with dial and runs behave on each, while a
// reader waits for the server to close the connection. It returns once
// every connection is open.
func (h *Horde) Start(n int, dial func() (net.Conn, error), behave Behaviour) {
	h.t.Helper()
	for range n {
		c, err := dial()
		if err != nil {
			h.t.Fatalf("opening a hostile connection: %v", err)
		}
		h.opened.Add(1)
		done := make(chan struct{})
		h.wg.Go(func() {
			// Whatever the server sends (a 408, an alert), the connection
			// counts as closed by the server once reading ends.
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

// WaitClosed polls until the server has closed every connection, and
// fails the test after limit.
func (h *Horde) WaitClosed(limit time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for h.closed.Load() < h.opened.Load() {
		if time.Now().After(deadline) {
			h.t.Fatalf("after %s the server still holds %d of %d hostile connections", limit, h.opened.Load()-h.closed.Load(), h.opened.Load())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Dribble sends prefix and then one byte of a header value every 300 ms,
// never ending the headers, until the server closes the connection.
func Dribble(prefix string) Behaviour {
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

// Silent writes nothing.
func Silent(net.Conn, <-chan struct{}) {}

// PartialHello starts a TLS handshake and stalls: a record header that
// announces a 512-byte ClientHello, then a few bytes of it.
func PartialHello(c net.Conn, _ <-chan struct{}) {
	_, _ = c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})
}

// Footprint is what the process holds: goroutines and open files (file
// descriptors, where /proc tells them; else -1).
type Footprint struct{ Goroutines, FDs int }

// Measure reads the process's footprint now.
func Measure() Footprint {
	fp := Footprint{Goroutines: runtime.NumGoroutine(), FDs: -1}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		fp.FDs = len(ents)
	}
	return fp
}

// WaitBaseline polls until the footprint is back within slack of base
// (the hostile connections left nothing behind), and fails the test with
// every goroutine's stack after limit.
func WaitBaseline(t testing.TB, base Footprint, slack int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		now := Measure()
		if now.Goroutines <= base.Goroutines+slack && (base.FDs < 0 || now.FDs <= base.FDs+slack) {
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

// Oversized sends GET path on host with one header of size bytes and
// returns the answer's status, or 0 when the server closed the connection
// without one.
func Oversized(t testing.TB, dial func() (net.Conn, error), host, path string, size int) int {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	go func() {
		// The server may stop reading and answer before all is sent.
		_, _ = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nX-Big: %s\r\n\r\n", path, host, strings.Repeat("a", size))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
