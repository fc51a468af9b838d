package domainverify

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// env is a Verifier wired to a real DNS server and a real HTTP server on
// loopback. The DNS server answers the domains under test with 127.0.0.1, so
// the HTTP check takes the production path: resolve, dial, GET.
type env struct {
	dns  *testDNS
	http *httptest.Server
	hits atomic.Int64
	v    *Verifier
	logs *syncBuffer

	mu    sync.Mutex
	files map[string]file // URL path -> answer
}

type file struct {
	status int
	body   string
	header http.Header
}

func newEnv(t *testing.T, timeout time.Duration) *env {
	t.Helper()
	e := &env{dns: startDNS(t), files: map[string]file{}, logs: &syncBuffer{}}
	e.http = httptest.NewServer(http.HandlerFunc(e.serveHTTP))
	t.Cleanup(e.http.Close)
	_, port, err := net.SplitHostPort(e.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	e.v, err = New(Config{
		Resolver: e.dns.addr,
		HTTPPort: p,
		Timeout:  timeout,
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) serveHTTP(w http.ResponseWriter, r *http.Request) {
	e.hits.Add(1)
	e.mu.Lock()
	f, ok := e.files[r.URL.Path]
	e.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.status == -1 { // hang until the client gives up
		<-r.Context().Done()
		return
	}
	for k, vs := range f.header {
		w.Header()[k] = vs
	}
	w.WriteHeader(f.status)
	_, _ = w.Write([]byte(f.body))
}

func (e *env) serveFile(token string, f file) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.files[WellKnownPath(token)] = f
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newToken(t *testing.T) string {
	t.Helper()
	tok, err := NewChallenge(nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerify(t *testing.T) {
	e := newEnv(t, 2*time.Second)
	tests := []struct {
		name       string
		setup      func(d, tok string)
		wantMethod string
		wantKind   mtlsid.Kind
		wantMsg    []string // substrings of the message; TOKEN stands for the token
		after      func(t *testing.T)
	}{
		{
			name:       "dns",
			setup:      func(d, tok string) { e.dns.setTXT(RecordName(d), []string{tok}) },
			wantMethod: MethodDNS,
		},
		{
			name: "dns among other records",
			setup: func(d, tok string) {
				e.dns.setTXT(RecordName(d), []string{"v=spf1 -all"}, []string{tok}, []string{"x"})
			},
			wantMethod: MethodDNS,
		},
		{
			name:       "dns record split into strings",
			setup:      func(d, tok string) { e.dns.setTXT(RecordName(d), []string{tok[:5], tok[5:20], tok[20:]}) },
			wantMethod: MethodDNS,
		},
		{
			name: "dns over tcp after truncation",
			setup: func(d, tok string) {
				e.dns.setTXT(RecordName(d), []string{tok})
				e.dns.setTruncate(RecordName(d))
			},
			wantMethod: MethodDNS,
			after: func(t *testing.T) {
				if e.dns.tcpQueries.Load() == 0 {
					t.Error("no query came over TCP")
				}
			},
		},
		{
			name: "dns wrong value and http 404",
			setup: func(d, tok string) {
				e.dns.setTXT(RecordName(d), []string{"stale-" + tok}, []string{"other"})
				e.dns.setA(d, "127.0.0.1")
			},
			wantKind: mtlsid.KindForbidden,
			wantMsg: []string{
				"control of DOMAIN not proven",
				"dns: no TXT record _mtlsid-challenge.DOMAIN with the challenge; found 2 other records",
				"http: http://DOMAIN:PORT/.well-known/mtlsid-challenge/TOKEN answered 404 Not Found",
			},
		},
		{
			name: "dns nxdomain then http",
			setup: func(d, tok string) {
				e.dns.setA(d, "127.0.0.1")
				e.serveFile(tok, file{status: 200, body: tok + "\r\n"})
			},
			wantMethod: MethodHTTP,
		},
		{
			name: "dns servfail then http",
			setup: func(d, tok string) {
				e.dns.setServfail(RecordName(d))
				e.dns.setA(d, "127.0.0.1")
				e.serveFile(tok, file{status: 200, body: tok})
			},
			wantMethod: MethodHTTP,
		},
		{
			name: "http wrong body",
			setup: func(d, tok string) {
				e.dns.setA(d, "127.0.0.1")
				e.serveFile(tok, file{status: 200, body: "hello"})
			},
			wantKind: mtlsid.KindForbidden,
			wantMsg:  []string{"dns: no TXT record _mtlsid-challenge.DOMAIN;", "answered 200 but the body (5 bytes) is not the challenge"},
		},
		{
			name: "http oversized body",
			setup: func(d, tok string) {
				e.dns.setA(d, "127.0.0.1")
				e.serveFile(tok, file{status: 200, body: tok + strings.Repeat(" ", maxBody)})
			},
			wantKind: mtlsid.KindForbidden,
			wantMsg:  []string{"answered 200 with a body over 4096 bytes"},
		},
		{
			name: "http redirect not followed",
			setup: func(d, tok string) {
				e.dns.setA(d, "127.0.0.1")
				e.serveFile(tok, file{status: 302, header: http.Header{"Location": {"/ok"}}})
				e.serveFile("ok", file{status: 200, body: tok})
			},
			wantKind: mtlsid.KindForbidden,
			wantMsg:  []string{"answered 302 Found (redirects are not followed)"},
		},
		{
			name:     "no records at all",
			setup:    func(d, tok string) {},
			wantKind: mtlsid.KindForbidden,
			wantMsg:  []string{"dns: no TXT record _mtlsid-challenge.DOMAIN; http: DOMAIN has no address"},
		},
		{
			name:     "http connection refused",
			setup:    func(d, tok string) { e.dns.setA(d, "127.0.0.2") },
			wantKind: mtlsid.KindForbidden,
			wantMsg:  []string{"http: connection to DOMAIN:PORT refused"},
		},
		{
			name: "resolver fails for both",
			setup: func(d, tok string) {
				e.dns.setServfail(RecordName(d))
				e.dns.setServfail(d)
			},
			wantKind: mtlsid.KindUnavailable,
			wantMsg: []string{
				"dns: could not look up TXT _mtlsid-challenge.DOMAIN: resolver failed; try again later",
				"http: could not resolve DOMAIN; try again later",
			},
		},
		{
			name: "dns definite, http inconclusive",
			setup: func(d, tok string) {
				e.dns.setTXT(RecordName(d), []string{"other"})
				e.dns.setServfail(d)
			},
			wantKind: mtlsid.KindForbidden,
			wantMsg:  []string{"found 1 other record;", "could not resolve DOMAIN"},
		},
	}
	_, port, _ := net.SplitHostPort(e.http.Listener.Addr().String())
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			domain := "svc" + strconv.Itoa(i) + ".example.com"
			tok := newToken(t)
			tt.setup(domain, tok)
			method, err := e.v.Verify(t.Context(), domain, tok)
			if method != tt.wantMethod {
				t.Errorf("method = %q, want %q (err: %v)", method, tt.wantMethod, err)
			}
			if got := mtlsid.ErrorKind(err); got != tt.wantKind {
				t.Errorf("kind = %q, want %q (err: %v)", got, tt.wantKind, err)
			}
			msg := mtlsid.ErrorMessage(err)
			for _, want := range tt.wantMsg {
				want = strings.NewReplacer("DOMAIN", domain, "TOKEN", tok, "PORT", port).Replace(want)
				if !strings.Contains(msg, want) {
					t.Errorf("message %q\nlacks %q", msg, want)
				}
			}
			if tt.after != nil {
				tt.after(t)
			}
			if strings.Contains(e.logs.String(), tok) {
				t.Errorf("token appears in the log:\n%s", e.logs.String())
			}
		})
	}
}

func TestVerifyResolverDown(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there now
	v, err := New(Config{Resolver: addr, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	method, err := v.Verify(t.Context(), "example.com", newToken(t))
	if method != "" || mtlsid.ErrorKind(err) != mtlsid.KindUnavailable {
		t.Fatalf("Verify = %q, %v (kind %q); want unavailable", method, err, mtlsid.ErrorKind(err))
	}
	for _, want := range []string{"could not look up TXT _mtlsid-challenge.example.com", "could not resolve example.com"} {
		if !strings.Contains(mtlsid.ErrorMessage(err), want) {
			t.Errorf("message %q lacks %q", mtlsid.ErrorMessage(err), want)
		}
	}
	if dnsErr, ok := errors.AsType[*net.DNSError](err); !ok || dnsErr.Server != addr {
		t.Errorf("cause %v does not name the configured resolver %s", err, addr)
	}
}

func TestVerifyTimeouts(t *testing.T) {
	t.Run("silent resolver", func(t *testing.T) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		v, err := New(Config{Resolver: pc.LocalAddr().String(), Timeout: 150 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = v.VerifyDNS(t.Context(), "example.com", newToken(t))
		if mtlsid.ErrorKind(err) != mtlsid.KindUnavailable || !strings.Contains(mtlsid.ErrorMessage(err), "timed out") {
			t.Errorf("VerifyDNS = %v; want unavailable, timed out", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("VerifyDNS took %v; Timeout not applied", d)
		}
	})
	t.Run("silent web server", func(t *testing.T) {
		e := newEnv(t, 200*time.Millisecond)
		tok := newToken(t)
		e.dns.setA("slow.example.com", "127.0.0.1")
		e.serveFile(tok, file{status: -1})
		err := e.v.VerifyHTTP(t.Context(), "slow.example.com", tok)
		if mtlsid.ErrorKind(err) != mtlsid.KindUnavailable || !strings.Contains(mtlsid.ErrorMessage(err), "no answer from http://slow.example.com:") {
			t.Errorf("VerifyHTTP = %v; want unavailable, no answer", err)
		}
	})
}

func TestVerifyCanceled(t *testing.T) {
	e := newEnv(t, time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := e.v.Verify(ctx, "example.com", newToken(t))
	if mtlsid.ErrorKind(err) != mtlsid.KindUnavailable || !errors.Is(err, context.Canceled) {
		t.Errorf("Verify = %v; want unavailable wrapping context.Canceled", err)
	}
	if n := e.hits.Load(); n != 0 {
		t.Errorf("HTTP server hit %d times after cancel", n)
	}
}

// TestInvalidInputNoIO checks that bad domains and tokens are refused before
// anything is sent to the DNS or HTTP server.
func TestInvalidInputNoIO(t *testing.T) {
	e := newEnv(t, time.Second)
	tok := newToken(t)
	domains := []string{
		"", "127.0.0.1", "[::1]", "::1", "evil.com:22", "evil.com/x", "evil.com?x", "evil.com#x",
		"user@evil.com", "Example.com", "example.com.", ".example.com", "example..com", "localhost",
		"a.localhost", "-a.example.com", "a-.example.com", "exa mple.com", "ex_ample.com", "example",
		"1.2.3.4", "0x7f.1", "例え.jp", "example.com\x00.evil.com", strings.Repeat("a", 64) + ".com",
		strings.Repeat("abcdefghi.", 26) + "com",
	}
	for _, d := range domains {
		for name, check := range map[string]func() error{
			"Verify":     func() error { _, err := e.v.Verify(t.Context(), d, tok); return err },
			"VerifyDNS":  func() error { return e.v.VerifyDNS(t.Context(), d, tok) },
			"VerifyHTTP": func() error { return e.v.VerifyHTTP(t.Context(), d, tok) },
		} {
			if err := check(); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
				t.Errorf("%s(%q) = %v; want KindInvalid", name, d, err)
			}
		}
	}
	tokens := []string{"", "short", tok + "/../x", tok + "?a=b", tok + "%2f", strings.Repeat("a", maxTokenLen+1), tok[:21], tok + " "}
	for _, bad := range tokens {
		if _, err := e.v.Verify(t.Context(), "example.com", bad); mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
			t.Errorf("Verify(token %q) = %v; want KindInvalid", bad, err)
		}
	}
	if q, h := e.dns.queries.Load(), e.hits.Load(); q != 0 || h != 0 {
		t.Errorf("invalid input caused %d DNS queries and %d HTTP requests; want none", q, h)
	}
}

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"resolver host:port", Config{Resolver: "127.0.0.1:5353"}, true},
		{"resolver ipv6 host:port", Config{Resolver: "[::1]:53"}, true},
		{"resolver bare ip", Config{Resolver: "10.0.0.2"}, true},
		{"resolver name:port", Config{Resolver: "dns.example.net:53"}, true},
		{"resolver without port", Config{Resolver: "dns.example.net"}, false},
		{"resolver bad port", Config{Resolver: "127.0.0.1:99999"}, false},
		{"port too big", Config{HTTPPort: 70000}, false},
		{"negative port", Config{HTTPPort: -1}, false},
		{"negative timeout", Config{Timeout: -time.Second}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if tt.ok != (err == nil) {
				t.Fatalf("New(%+v) = %v; want ok=%v", tt.cfg, err, tt.ok)
			}
			if err != nil && mtlsid.ErrorKind(err) != mtlsid.KindInvalid {
				t.Errorf("kind = %q; want invalid", mtlsid.ErrorKind(err))
			}
		})
	}
}
