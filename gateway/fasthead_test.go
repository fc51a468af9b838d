package gateway

import (
	"bufio"
	"bytes"
	"net/http"
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

// FuzzParseHead: a head the fast path takes is one net/http reads the
// same way (method, Host, path, no body), and the head it writes for the
// upstream is well formed and carries no stripped or hop-by-hop header.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
		"HEAD /a/b?c=d%20e HTTP/1.1\r\nHost: x:8443\r\nAccept: */*\r\nConnection: close\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nX-mTLS-ID: 0x1\r\nX_Mtls_Roles: root\r\nClient-Cert: :AA==:\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET /x HTTP/1.1\r\nhost: x\r\nX-A: b\r\n c\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: [::1]:443\r\nCookie: a=b; c=d\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	strip := newStripSet(Headers{}, []string{"X-Shop-User"})
	hop := map[string]bool{"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true,
		"Trailer": true, "Transfer-Encoding": true, "Upgrade": true, "Proxy-Authorization": true,
		"X-Forwarded-For": true, "X-Forwarded-Host": true, "X-Forwarded-Proto": true}
	f.Fuzz(func(t *testing.T, head []byte) {
		hi, out, ok := parseHead(head, strip, nil)
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("taken, but net/http refuses it: %v\n%q", err, head)
		}
		if req.Method != hi.method || req.Host != string(hi.host) || req.URL.Path != string(hi.path) ||
			req.ContentLength != 0 || len(req.TransferEncoding) != 0 || req.Close != hi.close || len(req.Header["Host"]) > 1 {
			t.Fatalf("read otherwise by net/http: %s %q %q close %v, length %d\n%q", req.Method, req.Host, req.URL.Path, req.Close, req.ContentLength, head)
		}
		up, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(append(out, "\r\n"...))))
		if err != nil {
			t.Fatalf("upstream head unreadable: %v\n%q", err, out)
		}
		if up.Host != req.Host || up.URL.RequestURI() != req.URL.RequestURI() || up.ContentLength != 0 {
			t.Fatalf("upstream reads %q %q, client sent %q %q", up.Host, up.URL.RequestURI(), req.Host, req.URL.RequestURI())
		}
		for k := range up.Header {
			if strip[foldName(k)] || hop[k] {
				t.Fatalf("upstream gets %s\n%q", k, out)
			}
		}
		if bytes.Count(out, []byte("\n")) != bytes.Count(out, []byte("\r\n")) || bytes.ContainsRune(out, '\r') && bytes.Count(out, []byte("\r")) != bytes.Count(out, []byte("\r\n")) {
			t.Fatalf("bare CR or LF in %q", out)
		}
	})
}

func TestAppendField(t *testing.T) {
	for v, want := range map[string]string{
		"plain":               "X-A: plain\r\n",
		"a\r\nX-Mtls-Id: 0x1": "X-A: a  X-Mtls-Id: 0x1\r\n",
		"a\nb\rc":             "X-A: a b c\r\n",
		"":                    "X-A: \r\n",
	} {
		if got := string(appendField(nil, "X-A", v)); got != want {
			t.Errorf("appendField(%q) = %q, want %q", v, got, want)
		}
	}
}
