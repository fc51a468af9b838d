package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid/internal/pgtest"
)

// TestMigrateSQLiteToPostgres moves a deployment that served from SQLite
// (a device, an organization, a service, a role granted, a development
// API certificate) into PostgreSQL, then serves from PostgreSQL with the
// same data directory: the device's certificate, issued before the move,
// is still recognised and renews; its role is still granted; the audit
// chain verifies. A second migrate into the now non-empty target is
// refused and changes nothing.
func TestMigrateSQLiteToPostgres(t *testing.T) {
	pgURL := pgtest.URL(t)
	data := t.TempDir()
	s := startServe(t, data)
	home, out := t.TempDir(), t.TempDir()
	root := filepath.Join(data, "ca", "root.crt")
	me := []string{"--server", s.url, "--dir", home, "--name", "laptop"}
	enrolled := cli(t, false, append([]string{"enroll", s.token, "--ca", root}, me...)...)
	serial := regexp.MustCompile(`serial (\d+)`).FindStringSubmatch(enrolled)[1]
	cli(t, false, append([]string{"org", "create", "acme", "--display", "Acme Inc", "--email", "ops@acme.example"}, me...)...)
	cli(t, false, append([]string{"service", "create", "web", "--org", "acme"}, me...)...)
	cli(t, false, append([]string{"role", "define", "editor", "--service", "web.acme"}, me...)...)
	cli(t, false, append([]string{"role", "grant", serial, "editor", "--service", "web.acme"}, me...)...)
	cli(t, false, append([]string{"apicert", "issue", "--service", "web.acme", "--dev", "--agent-name", "api", "--out", out}, me...)...)
	s.stop()
	before := cli(t, false, "audit", "verify", "--data", data)

	o := cli(t, false, "migrate", "--from", "sqlite:"+data, "--to", pgURL)
	for _, want := range []string{"certificates", "count checked", "audit chain intact in the target", "leases", "skipped", filepath.Join(data, "ca")} {
		if !strings.Contains(o, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, o)
		}
	}
	// The target's chain has the source's entries, each verified.
	n := regexp.MustCompile(`(\d+) entries verified`).FindStringSubmatch(before)[1]
	if !strings.Contains(o, n+" entries verified") {
		t.Errorf("source had %s entries; migrate says:\n%s", n, o)
	}

	p := startServe(t, data, "--database", pgURL)
	pme := []string{"--server", p.url, "--dir", home, "--name", "laptop"}
	if o := cli(t, false, append([]string{"list-devices"}, pme...)...); !strings.Contains(o, serial) {
		t.Errorf("list-devices on PostgreSQL lacks %s:\n%s", serial, o)
	}
	if o := cli(t, false, append([]string{"role", "list", "--service", "web.acme"}, pme...)...); !strings.Contains(o, "editor") {
		t.Errorf("role list on PostgreSQL: %s", o)
	}
	if o := cli(t, false, append([]string{"list-service-roles"}, pme...)...); !strings.Contains(o, "editor") {
		t.Errorf("list-service-roles on PostgreSQL: %s", o)
	}
	o = cli(t, false, append([]string{"renew"}, pme...)...)
	if m := regexp.MustCompile(`serial (\d+)`).FindStringSubmatch(o); m == nil || m[1] == serial {
		t.Errorf("renew on PostgreSQL: %s", o)
	}
	p.stop()
	after := cli(t, false, "audit", "verify", "--data", data, "--database", pgURL)
	if !strings.Contains(after, "intact") {
		t.Errorf("audit verify on PostgreSQL: %s", after)
	}

	// The target now holds data: refused, exit 1, nothing changed.
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"migrate", "--from", "sqlite:" + data, "--to", pgURL}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "not empty") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("migrate into a non-empty target: %v", err)
	}
	if code := exitCode(err, &stderr); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if again := cli(t, false, "audit", "verify", "--data", data, "--database", pgURL); again != after {
		t.Errorf("refused migrate changed the target: %q then %q", after, again)
	}

	// --force replaces it with the source as it is now.
	o = cli(t, false, "migrate", "--from", "sqlite:"+filepath.Join(data, "mtlsid.db"), "--to", pgURL, "--force")
	if !strings.Contains(o, "replaced") || !strings.Contains(o, n+" entries verified") {
		t.Errorf("migrate --force:\n%s", o)
	}
}

// TestMigrateBadArguments: each mistake gets a clear message, and neither
// database changes (a missing source file is not created).
func TestMigrateBadArguments(t *testing.T) {
	data := t.TempDir()
	missing := filepath.Join(t.TempDir(), "nothing-here")
	notDB := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notDB, []byte("not a database, but long enough to look like a file of some sort\n"), 0o600)
	pg := "postgres://postgres@127.0.0.1:1/none?connect_timeout=2"
	if u := os.Getenv(pgtest.EnvVar); u != "" {
		pg = u
	}
	// A real source, to pair with bad targets.
	s := startServe(t, data)
	s.stop()
	verified := cli(t, false, "audit", "verify", "--data", data)

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "usage: mtlsid migrate"},
		{[]string{"--from", "sqlite:" + data}, 2, "usage: mtlsid migrate"},
		{[]string{"--from", "postgres://x@127.0.0.1/db", "--to", pg}, 2, "must be sqlite:PATH"},
		{[]string{"--from", "sqlite:", "--to", pg}, 2, "needs a path"},
		{[]string{"--from", "sqlite:" + missing, "--to", pg}, 1, "no such file"},
		{[]string{"--from", "sqlite:" + t.TempDir(), "--to", pg}, 1, "no mtlsid database in that directory"},
		{[]string{"--from", "sqlite:" + notDB, "--to", pg}, 1, "open source"},
		{[]string{"--from", "sqlite:" + data, "--to", "mysql://root@127.0.0.1/x"}, 2, "must be a PostgreSQL URL"},
		{[]string{"--from", "sqlite:" + data, "--to", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2"}, 1, "open target"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"migrate"}, c.args...), &stdout, &stderr)
		if err == nil {
			t.Errorf("migrate %v succeeded", c.args)
			continue
		}
		if code := exitCode(err, &stderr); code != c.code {
			t.Errorf("migrate %v: exit code %d, want %d (%v)", c.args, code, c.code, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("migrate %v: %q lacks %q", c.args, err, c.want)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("migrate created the missing source file")
	}
	if again := cli(t, false, "audit", "verify", "--data", data); again != verified {
		t.Errorf("source changed: %q then %q", verified, again)
	}
}
