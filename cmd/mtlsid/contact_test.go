package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestContactCLI sets, shows and clears where expiry notices go against a
// real `serve`; the webhook secret is printed once.
func TestContactCLI(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	me := []string{"--server", s.url, "--dir", t.TempDir(), "--name", "laptop"}
	cli(t, false, append([]string{"enroll", s.token, "--ca", filepath.Join(data, "ca", "root.crt")}, me...)...)

	if o := cli(t, false, append([]string{"contact", "show"}, me...)...); !strings.Contains(o, "no contact details") {
		t.Errorf("show before set: %s", o)
	}
	o := cli(t, false, append([]string{"contact", "set", "--email", "me@example.com", "--webhook", "https://hooks.example.com/x"}, me...)...)
	m := regexp.MustCompile(`shown only now; keep it with the receiver\):\n(\S{16,})\n`).FindStringSubmatch(o)
	if m == nil || !strings.Contains(o, "me@example.com") {
		t.Fatalf("contact set does not print the secret:\n%s", o)
	}
	o = cli(t, false, append([]string{"contact", "show"}, me...)...)
	if !strings.Contains(o, "https://hooks.example.com/x") || !strings.Contains(o, "secret:  set") || strings.Contains(o, m[1]) {
		t.Errorf("contact show:\n%s", o)
	}
	if o := cli(t, true, append([]string{"contact", "set", "--email", "not an address"}, me...)...); !strings.Contains(o, "not a plain address") {
		t.Errorf("bad address: %s", o)
	}
	if o := cli(t, false, append([]string{"contact", "set", "--clear"}, me...)...); !strings.Contains(o, "removed") {
		t.Errorf("clear: %s", o)
	}

	for _, args := range [][]string{
		{"contact"},
		{"contact", "set"},
		{"contact", "set", "--clear", "--email", "me@example.com"},
		{"contact", "set", "--email", "me@example.com", "--new-secret"},
		{"contact", "show", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		if code := exitCode(err, &stderr); code != 2 {
			t.Errorf("mtlsid %s: exit %d (%v), want 2", strings.Join(args, " "), code, err)
		}
	}
}
