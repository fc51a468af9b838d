package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHTTP1(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/close" {
			w.Header().Set("Connection", "close")
		}
		if r.URL.Path == "/big" {
			fmt.Fprint(w, strings.Repeat("x", 10000)) // chunked
			return
		}
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	cfg := &tls.Config{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	c := NewHTTP1(srv.Listener.Addr().String(), cfg, 2, 0)
	defer c.Close()
	req := func(path string) []byte { return []byte("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n") }
	ctx := context.Background()
	for i := range 10 {
		status, body, err := c.Do(ctx, req(fmt.Sprintf("/%d", i)))
		if err != nil || status != 200 || string(body) != fmt.Sprintf("GET /%d", i) {
			t.Fatalf("answer %d %q %v", status, body, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("10 sequential requests used %d connections, want 1 kept alive", n)
	}
	if _, body, err := c.Do(ctx, req("/big")); err != nil || len(body) != 10000 {
		t.Fatalf("chunked answer: %d bytes, %v", len(body), err)
	}
	if status, _, err := c.Do(ctx, req("/close")); err != nil || status != 200 {
		t.Fatalf("answer with Connection: close: %d %v", status, err)
	}
	// The pooled connection was closed by the server: the next request
	// must dial again rather than fail.
	if status, _, err := c.Do(ctx, req("/after")); err != nil || status != 200 {
		t.Fatalf("after a closed connection: %d %v", status, err)
	}
	// An idle connection the server closed is retried once on a new one.
	srv.CloseClientConnections()
	if status, _, err := c.Do(ctx, req("/stale")); err != nil || status != 200 {
		t.Fatalf("after the server closed idle connections: %d %v", status, err)
	}
	if status, _, err := c.Do(ctx, []byte("not http\r\n\r\n")); err != nil || status != http.StatusBadRequest {
		t.Errorf("malformed request: %d %v, want the server's 400", status, err)
	}
	srv.Close()
	if _, _, err := c.Do(ctx, req("/gone")); err == nil {
		t.Error("a request to a closed server did not fail")
	}
}
