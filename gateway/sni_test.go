package gateway

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the committed fuzz seed corpus in testdata/fuzz")

// goHello returns the TLS records of a ClientHello crypto/tls sends for
// serverName (an IP address or "" sends no SNI).
func goHello(t testing.TB, serverName string, maxVersion uint16) []byte {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	go func() {
		tc := tls.Client(c1, &tls.Config{ServerName: serverName, InsecureSkipVerify: serverName == "", MaxVersion: maxVersion})
		_ = tc.Handshake()
		c1.Close()
	}()
	buf := make([]byte, 64<<10)
	n, err := c2.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// goServerName is what crypto/tls's own server reads as the server name
// of hello: the reference the parser is compared with.
func goServerName(t testing.TB, hello []byte) string {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c2.Close()
	got := make(chan string, 1)
	go func() {
		srv := tls.Server(c1, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			got <- h.ServerName
			return nil, errors.New("enough")
		}})
		_ = srv.Handshake()
		c1.Close()
	}()
	go func() { _, _ = c2.Write(hello); _, _ = io.Copy(io.Discard, c2) }()
	select {
	case n := <-got:
		return n
	case <-time.After(20 * time.Second):
		t.Fatal("crypto/tls did not read the hello")
		return ""
	}
}

// opensslHello captures the ClientHello of `openssl s_client`.
func opensslHello(t testing.TB, serverName string) []byte {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is not installed")
		}
		t.Skip("openssl not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(openssl, "s_client", "-connect", ln.Addr().String(), "-servername", serverName)
	cmd.Stdin = strings.NewReader("")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	raw, _, err := readClientHello(c, DefaultMaxHello)
	if err != nil {
		t.Fatalf("openssl's hello: %v", err)
	}
	return raw
}

// fragment re-splits the handshake message of the records in hello into
// records of at most size bytes.
func fragment(t testing.TB, hello []byte, size int) []byte {
	t.Helper()
	var msg []byte
	for b := hello; len(b) > 0; {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
	}
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, recordHandshake, 3, 1, byte(n>>8), byte(n))
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

// ext is one extension of a hand-built ClientHello.
type ext struct {
	typ  uint16
	data []byte
}

func sniExt(names ...string) ext {
	var list []byte
	for _, n := range names {
		list = append(list, serverNameHostName, byte(len(n)>>8), byte(len(n)))
		list = append(list, n...)
	}
	return ext{extServerName, append([]byte{byte(len(list) >> 8), byte(len(list))}, list...)}
}

// buildHello builds the records of a minimal ClientHello with exts.
func buildHello(exts ...ext) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one cipher suite
	body = append(body, 1, 0)                // null compression
	var eb []byte
	for _, e := range exts {
		eb = binary.BigEndian.AppendUint16(eb, e.typ)
		eb = binary.BigEndian.AppendUint16(eb, uint16(len(e.data)))
		eb = append(eb, e.data...)
	}
	if exts != nil {
		body = binary.BigEndian.AppendUint16(body, uint16(len(eb)))
		body = append(body, eb...)
	}
	msg := append([]byte{handshakeHello, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{recordHandshake, 3, 1, byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func TestReadClientHello(t *testing.T) {
	tls13 := goHello(t, "App.Example.com", 0)
	tests := []struct {
		name  string
		in    []byte
		want  string // server name; "" with err
		err   error
		extra string // in the error message
	}{
		{"go tls 1.3", tls13, "app.example.com", nil, ""},
		{"go tls 1.2", goHello(t, "db.example.com", tls.VersionTLS12), "db.example.com", nil, ""},
		{"fragmented in 50-byte records", fragment(t, tls13, 50), "app.example.com", nil, ""},
		{"one-byte records", fragment(t, tls13, 1), "app.example.com", nil, ""},
		{"built", buildHello(sniExt("x.example.com")), "x.example.com", nil, ""},
		{"trailing dot", buildHello(sniExt("x.example.com.")), "x.example.com", nil, ""},
		{"no sni (ip address)", goHello(t, "127.0.0.1", 0), "", errNoServerName, ""},
		{"no extensions", buildHello(), "", errNoServerName, ""},
		{"other extensions only", buildHello(ext{10, []byte{0, 2, 0, 29}}), "", errNoServerName, ""},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "", errClientHello, "record type 71"},
		{"sslv2 hello", []byte{0x80, 0x2e, 1, 3, 1, 0, 0x15, 0, 0, 0, 0x10}, "", errClientHello, ""},
		{"not a hello", []byte{22, 3, 1, 0, 4, 2, 0, 0, 0}, "", errClientHello, "handshake message type 2"},
		{"oversized", []byte{22, 3, 1, 0, 4, 1, 0x10, 0, 0}, "", errClientHello, "more than"},
		{"record too long", []byte{22, 3, 1, 0x48, 1}, "", errClientHello, "record length"},
		{"empty record", []byte{22, 3, 1, 0, 0}, "", errClientHello, "record length"},
		{"truncated", tls13[:len(tls13)-10], "", io.ErrUnexpectedEOF, ""},
		{"empty", nil, "", io.EOF, ""},
		{"repeated sni", buildHello(sniExt("a.example.com"), sniExt("b.example.com")), "", errClientHello, "repeated"},
		{"two host names", buildHello(sniExt("a.example.com", "b.example.com")), "", errClientHello, "two host names"},
		{"bad name", buildHello(sniExt("a b.example.com")), "", errClientHello, "not a host name"},
		{"name with nul", buildHello(sniExt("a\x00.example.com")), "", errClientHello, "not a host name"},
		{"empty label", buildHello(sniExt("a..example.com")), "", errClientHello, "not a host name"},
		{"wildcard name", buildHello(sniExt("*.example.com")), "", errClientHello, "not a host name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, name, err := readClientHello(bytes.NewReader(tc.in), DefaultMaxHello)
			if !bytes.HasPrefix(tc.in, raw) {
				t.Fatalf("raw is not a prefix of the input")
			}
			if tc.err == nil {
				if err != nil || name != tc.want {
					t.Fatalf("got %q, %v; want %q", name, err, tc.want)
				}
				if !bytes.Equal(raw, tc.in) {
					t.Errorf("read %d of %d bytes", len(raw), len(tc.in))
				}
				return
			}
			if !errors.Is(err, tc.err) || !strings.Contains(fmt.Sprint(err), tc.extra) {
				t.Fatalf("got %q, %v; want error %v containing %q", name, err, tc.err, tc.extra)
			}
		})
	}
}

// TestReadClientHelloStopsAtHello pins that nothing past the hello's
// last record is read: it belongs to the upstream.
func TestReadClientHelloStopsAtHello(t *testing.T) {
	hello := buildHello(sniExt("x.example.com"))
	r := bytes.NewReader(append(append([]byte{}, hello...), "after"...))
	raw, _, err := readClientHello(r, DefaultMaxHello)
	if err != nil || !bytes.Equal(raw, hello) || r.Len() != len("after") {
		t.Fatalf("raw %d bytes, %d left, %v", len(raw), r.Len(), err)
	}
}

// TestReadClientHelloMatchesPeers compares the parser with crypto/tls's
// server and feeds it the hello of a real openssl.
func TestReadClientHelloMatchesPeers(t *testing.T) {
	hellos := map[string][]byte{
		"go":          goHello(t, "shop.example.com", 0),
		"go-tls12":    goHello(t, "shop.example.com", tls.VersionTLS12),
		"go-fragment": fragment(t, goHello(t, "shop.example.com", 0), 7),
		"openssl":     opensslHello(t, "shop.example.com"),
	}
	for name, h := range hellos {
		_, got, err := readClientHello(bytes.NewReader(h), DefaultMaxHello)
		if err != nil || got != "shop.example.com" {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		if ref := goServerName(t, h); ref != got {
			t.Errorf("%s: crypto/tls reads %q, the parser %q", name, ref, got)
		}
	}
	if *updateSeeds {
		writeSeeds(t, "FuzzReadClientHello", map[string][]byte{
			"go-tls13": hellos["go"], "go-tls12": hellos["go-tls12"], "openssl": hellos["openssl"],
			"fragmented":  fragment(t, hellos["go"], 100),
			"no-sni":      goHello(t, "127.0.0.1", 0),
			"built":       buildHello(sniExt("x.example.com"), ext{10, []byte{0, 2, 0, 29}}),
			"repeated":    buildHello(sniExt("a.example.com"), sniExt("b.example.com")),
			"http":        []byte("GET / HTTP/1.1\r\n\r\n"),
			"truncated":   hellos["go"][:60],
			"proxyheader": appendProxyHeader(nil, mustAddrPort("192.0.2.1:5000"), mustAddrPort("192.0.2.2:443")),
		})
	}
}

// writeSeeds writes the seed corpus of a fuzz test of one []byte
// argument.
func writeSeeds(t *testing.T, fuzzName string, seeds map[string][]byte) {
	t.Helper()
	args := map[string][]any{}
	for name, b := range seeds {
		args[name] = []any{b}
	}
	writeSeedArgs(t, fuzzName, args)
}

// writeSeedArgs writes corpus files in the format of go test fuzz v1.
func writeSeedArgs(t *testing.T, fuzzName string, seeds map[string][]any) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, vals := range seeds {
		content := "go test fuzz v1\n"
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				content += "[]byte(" + strconv.Quote(string(v)) + ")\n"
			case uint16:
				content += fmt.Sprintf("uint16(%d)\n", v)
			default:
				t.Fatalf("seed of type %T", v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzReadClientHello: the parser never panics, reads no byte past what
// it returns, and accepts only host names.
func FuzzReadClientHello(f *testing.F) {
	f.Add(buildHello(sniExt("x.example.com")))
	f.Add(buildHello())
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		raw, name, err := readClientHello(r, 4096)
		if !bytes.HasPrefix(in, raw) || len(raw)+r.Len() != len(in) {
			t.Fatalf("returned %d bytes, consumed %d of %d", len(raw), len(in)-r.Len(), len(in))
		}
		if len(raw) > 2*4096+5+maxRecordLen {
			t.Fatalf("read %d bytes", len(raw))
		}
		if err == nil && !validHostname(name) {
			t.Fatalf("accepted server name %q", name)
		}
		if err != nil && name != "" {
			t.Fatalf("error %v with name %q", err, name)
		}
	})
}
