package gateway

import (
	"strings"
	"testing"
)

func TestParseHead(t *testing.T) {
	strip := newStripSet(Headers{}, []string{"X-Shop-User"})
	head := func(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n") + "\r\n\r\n") }

	t.Run("taken", func(t *testing.T) {
		h := head("GET /a/b.c?x=%41&y=/../ HTTP/1.1", "Host: shop.example.com:8443", "Accept: */*",
			"X-mTLS-ID: spoofed", "x_mtls_roles: spoofed", "CLIENT-CERT: :c3Bvb2Y=:", "X-Shop-User: spoofed",
			"X-Forwarded-For: 6.6.6.6", "x-forwarded-host: spoofed", "X-Forwarded-Proto: spoofed", "Forwarded: for=6.6.6.6",
			"Connection: keep-alive, close", "Keep-Alive: 5", "Proxy-Authorization: Basic x", "Cookie:  a=b\t")
		hi, out, ok := parseHead(h, strip, nil)
		if !ok {
			t.Fatal("refused")
		}
		want := "GET /a/b.c?x=%41&y=/../ HTTP/1.1\r\nHost: shop.example.com:8443\r\nAccept: */*\r\nCookie:  a=b\t\r\n"
		if string(out) != want {
			t.Errorf("upstream head\n%q\nwant\n%q", out, want)
		}
		if hi.method != "GET" || string(hi.path) != "/a/b.c" || string(hi.host) != "shop.example.com:8443" || !hi.close {
			t.Errorf("%+v", hi)
		}
		if hi, _, ok := parseHead(head("HEAD / HTTP/1.1", "host: x"), strip, nil); !ok || hi.method != "HEAD" || hi.close {
			t.Errorf("HEAD: %v %+v", ok, hi)
		}
	})

	for name, h := range map[string][]byte{
		"POST":                  head("POST / HTTP/1.1", "Host: x"),
		"lower-case method":     head("get / HTTP/1.1", "Host: x"),
		"HTTP/1.0":              head("GET / HTTP/1.0", "Host: x"),
		"HTTP/2 text":           head("GET / HTTP/2.0", "Host: x"),
		"absolute form":         head("GET http://x/ HTTP/1.1", "Host: x"),
		"asterisk":              head("OPTIONS * HTTP/1.1", "Host: x"),
		"percent in path":       head("GET /%61dmin HTTP/1.1", "Host: x"),
		"dot segment":           head("GET /public/../admin HTTP/1.1", "Host: x"),
		"dot first":             head("GET /.well-known/x HTTP/1.1", "Host: x"),
		"double slash":          head("GET //admin HTTP/1.1", "Host: x"),
		"backslash":             head("GET /a\\b HTTP/1.1", "Host: x"),
		"fragment":              head("GET /a?b#c HTTP/1.1", "Host: x"),
		"two spaces":            head("GET  / HTTP/1.1", "Host: x"),
		"no host":               head("GET / HTTP/1.1", "Accept: */*"),
		"two hosts":             head("GET / HTTP/1.1", "Host: x", "Host: y"),
		"bad host":              head("GET / HTTP/1.1", "Host: x y"),
		"host with user":        head("GET / HTTP/1.1", "Host: u@x"),
		"content-length":        head("GET / HTTP/1.1", "Host: x", "Content-Length: 0"),
		"transfer-encoding":     head("GET / HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"),
		"upgrade":               head("GET / HTTP/1.1", "Host: x", "Connection: Upgrade", "Upgrade: websocket"),
		"expect":                head("GET / HTTP/1.1", "Host: x", "Expect: 100-continue"),
		"te":                    head("GET / HTTP/1.1", "Host: x", "TE: trailers"),
		"connection option":     head("GET / HTTP/1.1", "Host: x", "Connection: X-Secret"),
		"space before colon":    head("GET / HTTP/1.1", "Host: x", "X-A : b"),
		"empty name":            head("GET / HTTP/1.1", "Host: x", ": b"),
		"folded":                head("GET / HTTP/1.1", "Host: x", "X-A: b", " c"),
		"bare LF in value":      head("GET / HTTP/1.1", "Host: x", "X-A: b\nX-Mtls-Id: spoofed"),
		"bare CR in value":      head("GET / HTTP/1.1", "Host: x", "X-A: b\rc"),
		"NUL in value":          head("GET / HTTP/1.1", "Host: x", "X-A: b\x00c"),
		"DEL in value":          head("GET / HTTP/1.1", "Host: x", "X-A: b\x7fc"),
		"long name":             head("GET / HTTP/1.1", "Host: x", strings.Repeat("X", 65)+": b"),
		"line without colon":    head("GET / HTTP/1.1", "Host: x", "X-A"),
		"no request line CRLF":  []byte("GET / HTTP/1.1"),
		"bytes after the head":  append(head("GET / HTTP/1.1", "Host: x"), "GET"...),
		"empty line first":      []byte("\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"control in the target": head("GET /a\x01 HTTP/1.1", "Host: x"),
	} {
		if _, _, ok := parseHead(h, strip, nil); ok {
			t.Errorf("%s: taken", name)
		}
	}
}
