package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream is a TCP server on loopback that reads HTTP requests and
// answers each with whatever answer returns, for the answers a well-behaved
// server would not give. After an answer with close set it closes the
// connection.
type rawUpstream struct {
	addr  string
	conns atomic.Int64
	gone  chan struct{} // a connection the server was reading ended
}

func newRawUpstream(t *testing.T, answer func(n int64, req *http.Request) (resp string, close bool)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u := &rawUpstream{addr: ln.Addr().String(), gone: make(chan struct{}, 100)}
	var reqs atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						u.gone <- struct{}{}
						return
					}
					resp, closeAfter := answer(reqs.Add(1), req)
					if _, err := io.WriteString(c, resp); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	return u
}

func get(ctx context.Context, t *testing.T, tr *inlineTransport) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+tr.addr+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("round trip: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return resp, string(b)
}

const okAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

// TestInlineReuse: sequential requests share one kept-alive connection;
// chunked bodies with trailers and 1xx interim answers are handled.
func TestInlineReuse(t *testing.T) {
	answers := []string{
		okAnswer,
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 7\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		okAnswer,
	}
	u := newRawUpstream(t, func(n int64, _ *http.Request) (string, bool) { return answers[(n-1)%int64(len(answers))], false })
	tr := newInlineTransport(u.addr)
	defer tr.CloseIdleConnections()
	want := []string{"ok", "hints", "abc", "", "ok"}
	for i, w := range want {
		resp, body := get(context.Background(), t, tr)
		if body != w {
			t.Errorf("answer %d: body %q, want %q", i, body, w)
		}
		if i == 2 && resp.Trailer.Get("X-Sum") != "7" {
			t.Errorf("trailer: %v", resp.Trailer)
		}
	}
	if n := u.conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for sequential requests, want 1", n)
	}
}

// TestInlineNotReused: an answer that closes, or leaves bytes it does not
// account for, does not leave its connection in the pool.
func TestInlineNotReused(t *testing.T) {
	for name, answer := range map[string]string{
		"connection close": "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.0":         "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"bytes after":      okAnswer + "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil",
	} {
		t.Run(name, func(t *testing.T) {
			u := newRawUpstream(t, func(int64, *http.Request) (string, bool) { return answer, false })
			tr := newInlineTransport(u.addr)
			defer tr.CloseIdleConnections()
			for range 3 {
				if _, body := get(context.Background(), t, tr); body != "ok" {
					t.Fatalf("body %q", body)
				}
			}
			if n := u.conns.Load(); n != 3 {
				t.Errorf("%d upstream connections for 3 requests, want 3", n)
			}
		})
	}
}

// TestInlineStale: a kept-alive connection the upstream closed after its
// answer is met by the next request, which is sent again on a new one.
func TestInlineStale(t *testing.T) {
	u := newRawUpstream(t, func(int64, *http.Request) (string, bool) { return okAnswer, true })
	tr := newInlineTransport(u.addr)
	defer tr.CloseIdleConnections()
	for i := range 5 {
		if _, body := get(context.Background(), t, tr); body != "ok" {
			t.Fatalf("request %d: body %q", i, body)
		}
	}
	if n := u.conns.Load(); n != 5 {
		t.Errorf("%d upstream connections, want 5", n)
	}
}

// TestInlineClientGone: the client going away while the upstream is still
// answering ends the read and closes the upstream connection.
func TestInlineClientGone(t *testing.T) {
	u := newRawUpstream(t, func(int64, *http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart", false
	})
	tr := newInlineTransport(u.addr)
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+u.addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "part" {
		t.Fatalf("first bytes %q, %v", buf, err)
	}
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); done <- err }()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a body cut short read without error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the read did not end when the client went away")
	}
	resp.Body.Close()
	select {
	case <-u.gone:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream connection stayed open")
	}
	if len(tr.idle) != 0 {
		t.Error("a cut-short connection went back to the pool")
	}
}

// TestInlineRefuses: an unasked 101, a malformed answer and a dead
// upstream are errors; what the transport does not take goes elsewhere.
func TestInlineRefuses(t *testing.T) {
	for name, answer := range map[string]string{
		"unasked upgrade": "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
		"malformed":       "HTTP/1.1 two hundred\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			u := newRawUpstream(t, func(int64, *http.Request) (string, bool) { return answer, false })
			tr := newInlineTransport(u.addr)
			req, _ := http.NewRequest(http.MethodGet, "http://"+u.addr+"/", nil)
			if _, err := tr.RoundTrip(req); err == nil {
				t.Fatal("no error")
			}
			if len(tr.idle) != 0 {
				t.Error("the connection went back to the pool")
			}
		})
	}
	t.Run("dead upstream", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		tr := newInlineTransport(addr)
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		_, err := tr.RoundTrip(req)
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Fatalf("err %v, want a dial error (the pool marks the upstream down on it)", err)
		}
	})
	t.Run("takes", func(t *testing.T) {
		tr := newInlineTransport("127.0.0.1:1")
		plain, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		post, _ := http.NewRequest(http.MethodPost, "http://x/", strings.NewReader("a"))
		ws, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
		ws.Header.Set("Upgrade", "websocket")
		if !tr.takes(plain) || tr.takes(post) || tr.takes(ws) {
			t.Errorf("takes: GET %v, POST %v, upgrade %v; want true, false, false", tr.takes(plain), tr.takes(post), tr.takes(ws))
		}
	})
}
