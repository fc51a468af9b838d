package domainverify

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mtlsid/mtlsid"
)

func TestNewChallenge(t *testing.T) {
	tok, err := NewChallenge(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("A", 43); tok != want {
		t.Errorf("NewChallenge(zeros) = %q, want %q", tok, want)
	}
	a, _ := NewChallenge(nil)
	b, _ := NewChallenge(nil)
	if a == b {
		t.Errorf("two challenges are equal: %q", a)
	}
	for _, tok := range []string{a, b} {
		if err := checkToken(tok); err != nil {
			t.Errorf("checkToken(%q) = %v", tok, err)
		}
	}
	if _, err := NewChallenge(bytes.NewReader(make([]byte, 31))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("NewChallenge(short reader) = %v; want io.ErrUnexpectedEOF", err)
	}
	if _, err := NewChallenge(iotest.ErrReader(io.ErrClosedPipe)); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("NewChallenge(failing reader) = %v", err)
	}
}

func TestCheckDomain(t *testing.T) {
	for _, tt := range []struct {
		domain string
		why    string // "" if valid; else a substring of the message
	}{
		{"example.com", ""},
		{"a.b.c.example.co.uk", ""},
		{"xn--r8jz45g.jp", ""},
		{"123.example.com", ""},
		{"svc-1.internal", ""},
		{strings.Repeat("a", 63) + ".com", ""},
		{"", "empty"},
		{"example.com.", "must not end with a dot"},
		{"127.0.0.1", "IP address"},
		{"::1", "IP address"},
		{"1.2.3.4.5", "all digits"},
		{"evil.com:22", `character ':'`},
		{"evil.com/path", `character '/'`},
		{"Example.com", "lower case"},
		{"example", "two labels"},
		{"localhost", "two labels"},
		{"svc.localhost", "localhost"},
		{"a..com", "empty label"},
		{"-a.com", "starts or ends with '-'"},
		{strings.Repeat("a", 64) + ".com", "label longer than 63"},
		{strings.Repeat("a.", 127) + "com", "longer than 253"},
	} {
		err := CheckDomain(tt.domain)
		switch {
		case tt.why == "" && err != nil:
			t.Errorf("CheckDomain(%q) = %v; want ok", tt.domain, err)
		case tt.why != "" && (mtlsid.ErrorKind(err) != mtlsid.KindInvalid || !strings.Contains(err.Error(), tt.why)):
			t.Errorf("CheckDomain(%q) = %v; want invalid, %q", tt.domain, err, tt.why)
		}
	}
}

// FuzzCheckDomain checks that whatever CheckDomain accepts names only a
// host: it parses back as exactly that host in a URL and is no IP address.
func FuzzCheckDomain(f *testing.F) {
	for _, s := range []string{"example.com", "127.0.0.1", "evil.com:22", "a.com/x", "[::1]", "A.com", "a.b."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, domain string) {
		if CheckDomain(domain) != nil {
			return
		}
		if _, err := netip.ParseAddr(domain); err == nil {
			t.Fatalf("accepted IP %q", domain)
		}
		u, err := url.Parse("http://" + domain + WellKnownPath("tok"))
		if err != nil || u.Hostname() != domain || u.Port() != "" || u.Path != WellKnownPath("tok") || u.User != nil {
			t.Fatalf("accepted %q, which parses as %#v (%v)", domain, u, err)
		}
		if strings.ToLower(domain) != domain || strings.HasSuffix(domain, ".") {
			t.Fatalf("accepted non-canonical %q", domain)
		}
	})
}
