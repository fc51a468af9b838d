package gateway_test

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid/gateway"
)

// fastUpstream answers in each of the ways the fast path relays: echoed
// request headers (JSON, with a length), chunked with a trailer, a large
// body, no content, a body delimited by the connection's end, and
// hop-by-hop headers that must not reach the client.
func fastUpstream(t *testing.T, streamEnded, silentEnded chan struct{}) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", "yes")
		_ = json.NewEncoder(w).Encode(received{Host: r.Host, Header: r.Header})
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "part1")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
		w.Header().Set("X-Checksum", "abc")
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "102400")
		io.WriteString(w, strings.Repeat("a", 102400))
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close")
		c.Close()
	})
	mux.HandleFunc("/hop", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "yes")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		// Writes until the gateway closes the connection.
		defer close(streamEnded)
		for {
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) {
		// One line, then nothing until the gateway closes the connection.
		io.WriteString(w, "hello\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(silentEnded)
	})
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.IdleTimeout = 20 * time.Millisecond // kept-alive connections go stale between requests
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// TestFastPath: the requests the fast path takes are relayed with the
// same identity and stripping as net/http's path, in every shape of
// answer; at the first request it does not take, the connection goes to
// net/http, which answers it and the rest.
func TestFastPath(t *testing.T) {
	e := newEnv(t)
	alice := e.enroll("alice-laptop")
	e.grant(alice, "administrator")
	e.consent(alice)
	streamEnded, silentEnded := make(chan struct{}), make(chan struct{})
	up := fastUpstream(t, streamEnded, silentEnded)
	certFile, keyFile, roots := serverCert(t, e.dir, "shop.example.com")
	metrics := gateway.NewMetrics()
	mw := newMW(t, e)
	cfg := shopConfig(certFile, keyFile, up.URL, "administrator")
	cfg.Perimeters[0].Paths = append(cfg.Perimeters[0].Paths, gateway.Rule{Path: "/public", Anonymous: true})
	cfg.Metrics = metrics
	g := startGateway(t, cfg, mw, nil)
	addr := g.Addrs()[0].String()
	fast := func() int {
		t.Helper()
		mfs, err := metrics.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "mtlsid_gateway_fast_path_requests_total" {
				return int(mf.GetMetric()[0].GetCounter().GetValue())
			}
		}
		t.Fatal("no fast path metric")
		return 0
	}
	dial := func(t *testing.T) (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "shop.example.com",
			Certificates: []tls.Certificate{alice.tls}, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}
	read := func(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
		t.Helper()
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}
	echoed := func(t *testing.T, body string) http.Header {
		t.Helper()
		var r received
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return r.Header
	}
	spoof := "X-Mtls-Id: 0x1\r\nX_mTLS_Roles: root\r\nClient-Cert: :c3Bvb2Y=:\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"

	t.Run("pipelined, then handed over", func(t *testing.T) {
		c, br := dial(t)
		before := fast()
		get := "GET /admin/x?y=1 HTTP/1.1\r\nHost: shop.example.com\r\n" + spoof + "\r\n"
		anon := "GET /public/x HTTP/1.1\r\nHost: shop.example.com\r\n" + spoof + "\r\n"
		if _, err := io.WriteString(c, get+anon+get); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			resp, body := read(t, br, "GET")
			if resp.StatusCode != 200 {
				t.Fatalf("answer %d: %s %s", i, resp.Status, body)
			}
			h := echoed(t, body)
			if i != 1 && (h.Get("X-Mtls-Id") != hexSerial(alice) || h.Get("X-Mtls-Roles") != "administrator" || h.Get("Client-Cert") == "") {
				t.Errorf("answer %d: identity not forwarded: %v", i, h)
			}
			for k, vs := range h {
				for _, v := range vs {
					if strings.Contains(v, "6.6.6.6") || v == "0x1" || v == "root" || v == ":c3Bvb2Y=:" {
						t.Errorf("answer %d: upstream got %s: %s", i, k, v)
					}
				}
			}
			if got := h.Get("X-Forwarded-For"); got != "127.0.0.1" {
				t.Errorf("answer %d: X-Forwarded-For %q", i, got)
			}
		}
		if n := fast() - before; n != 1 {
			t.Errorf("%d requests on the fast path, want 1 (the first; then net/http has the connection)", n)
		}
	})

	t.Run("answers", func(t *testing.T) {
		c, br := dial(t)
		before := fast()
		req := func(method, path string) {
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: shop.example.com\r\n\r\n", method, path)
		}
		req("GET", "/chunked")
		resp, body := read(t, br, "GET")
		if body != "part1part2" || resp.Trailer.Get("X-Checksum") != "abc" || len(resp.TransferEncoding) != 1 {
			t.Errorf("chunked: %q trailer %v encoding %v", body, resp.Trailer, resp.TransferEncoding)
		}
		req("GET", "/big")
		if resp, body = read(t, br, "GET"); len(body) != 102400 || resp.ContentLength != 102400 {
			t.Errorf("big: %d bytes, Content-Length %d", len(body), resp.ContentLength)
		}
		req("HEAD", "/big")
		if resp, body = read(t, br, "HEAD"); body != "" || resp.ContentLength != 102400 {
			t.Errorf("HEAD: %q, Content-Length %d", body, resp.ContentLength)
		}
		req("GET", "/nocontent")
		if resp, body = read(t, br, "GET"); resp.StatusCode != 204 || body != "" {
			t.Errorf("no content: %s %q", resp.Status, body)
		}
		req("GET", "/close")
		if resp, body = read(t, br, "GET"); body != "until-close" || resp.Close {
			t.Errorf("close-delimited: %q, close %v", body, resp.Close)
		}
		time.Sleep(50 * time.Millisecond) // the upstream drops its idle connections: the next request meets a stale one
		req("GET", "/hop")
		if resp, _ = read(t, br, "GET"); resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" || resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("hop-by-hop headers relayed: %v", resp.Header)
		}
		if resp.Header.Get("Date") == "" {
			t.Error("no Date")
		}
		if n := fast() - before; n != 6 {
			t.Errorf("%d of 6 requests on the fast path", n)
		}
	})

	t.Run("connection close", func(t *testing.T) {
		c, br := dial(t)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.example.com\r\nConnection: close\r\n\r\n")
		resp, _ := read(t, br, "GET")
		if !resp.Close || resp.StatusCode != 200 {
			t.Errorf("%s close %v", resp.Status, resp.Close)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("connection left open: %v", err)
		}
	})

	t.Run("large head handed over", func(t *testing.T) {
		c, br := dial(t)
		before := fast()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: shop.example.com\r\nX-Big: %s\r\n%s\r\n", strings.Repeat("b", 20<<10), spoof)
		resp, body := read(t, br, "GET")
		h := echoed(t, body)
		if resp.StatusCode != 200 || len(h.Get("X-Big")) != 20<<10 || h.Get("X-Mtls-Id") != hexSerial(alice) || h.Get("Client-Cert") == "" {
			t.Errorf("%s: %v", resp.Status, h.Get("X-Mtls-Id"))
		}
		if n := fast() - before; n != 0 {
			t.Errorf("a %d-byte head went on the fast path", 20<<10)
		}
	})

	t.Run("refusals and bodies go to net/http", func(t *testing.T) {
		for _, tc := range []struct {
			name, req string
			status    int
		}{
			{"dot segment", "GET /public/../admin HTTP/1.1\r\nHost: shop.example.com\r\n\r\n", 400},
			{"other host", "GET / HTTP/1.1\r\nHost: other.example.com\r\n\r\n", 421},
			{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
			// net/http reads the body as chunked and drops the length (RFC 9112 §6.3).
			{"length and chunked", "GET / HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200},
			{"POST", "POST / HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 5\r\n\r\nhello", 200},
		} {
			c, br := dial(t)
			before := fast()
			io.WriteString(c, tc.req)
			resp, body := read(t, br, "GET")
			if resp.StatusCode != tc.status {
				t.Errorf("%s: %s, want %d: %s", tc.name, resp.Status, tc.status, body)
			}
			if n := fast() - before; n != 0 {
				t.Errorf("%s went on the fast path", tc.name)
			}
		}
	})

	for _, tc := range []struct {
		name, path, first string
		ended             chan struct{}
	}{
		{"client leaves a stream", "/stream", "tick\n", streamEnded},
		{"client leaves a silent stream", "/silent", "hello\n", silentEnded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dial(t)
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: shop.example.com\r\n\r\n", tc.path)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(resp.Body).ReadString('\n'); line != tc.first {
				t.Fatalf("%q %v", line, err)
			}
			c.Close()
			select {
			case <-tc.ended:
			case <-time.After(10 * time.Second):
				t.Fatalf("the upstream's answer to %s still runs 10 s after its client left", tc.path)
			}
		})
	}

	t.Run("a person without the role", func(t *testing.T) {
		bob := e.enroll("bob-phone")
		e.consent(bob)
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "shop.example.com", Certificates: []tls.Certificate{bob.tls}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\nGET /admin HTTP/1.1\r\nHost: shop.example.com\r\n\r\nGET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
		for i, want := range []int{200, 403, 200} {
			if resp, body := read(t, br, "GET"); resp.StatusCode != want {
				t.Errorf("answer %d: %s, want %d: %s", i, resp.Status, want, body)
			}
		}
	})
}
