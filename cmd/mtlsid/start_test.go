package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrongDatabaseURLExits1(t *testing.T) {
	for _, url := range []string{"mysql://root@localhost/x", "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", "sqlite:"} {
		t.Run(url, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), []string{"serve", "--data", t.TempDir(), "--database", url, "--listen", "127.0.0.1:0"}, &out, &errOut)
			if err == nil {
				t.Fatal("serve started with a bad database URL")
			}
			if code := exitCode(err, &errOut); code != 1 {
				t.Errorf("exit code %d, want 1", code)
			}
			if !strings.Contains(errOut.String(), "database") {
				t.Errorf("message does not mention the database: %q", errOut.String())
			}
		})
	}
}

func TestWrongPassphraseChangesNothing(t *testing.T) {
	data := t.TempDir()
	t.Setenv("MTLSID_CA_PASSPHRASE", "right horse battery staple")
	s := startServe(t, data)
	s.stop()
	before := snapshot(t, filepath.Join(data, "ca"))

	t.Setenv("MTLSID_CA_PASSPHRASE", "wrong")
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("serve with a wrong passphrase: %v", err)
	}
	if code := exitCode(err, &errOut); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if after := snapshot(t, filepath.Join(data, "ca")); !equalMaps(before, after) {
		t.Errorf("CA files changed after a failed start")
	}
	// And with no passphrase at all the message says how to give one.
	t.Setenv("MTLSID_CA_PASSPHRASE", "")
	err = run(context.Background(), []string{"serve", "--data", data, "--listen", "127.0.0.1:0"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "MTLSID_CA_PASSPHRASE") {
		t.Fatalf("serve without a passphrase: %v", err)
	}
}

func TestRestartKeepsCAAndPrintsNoToken(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	fp := waitFor(t, s.out, fingerprintRE)[1]
	s.stop()
	s2 := startServe(t, data)
	if s2.token != "" {
		t.Errorf("restart printed a bootstrap token")
	}
	if fp2 := waitFor(t, s2.out, fingerprintRE)[1]; fp2 != fp {
		t.Errorf("CA changed across restart: %s then %s", fp, fp2)
	}
	// The generated passphrase sits beside the keys, 0600.
	fi, err := os.Stat(filepath.Join(data, "ca", passphraseFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("generated passphrase file: %v %v", fi, err)
	}
}

func TestUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); exitCode(err, &errOut) != 2 {
		t.Errorf("unknown command: %v", err)
	}
	if err := run(context.Background(), []string{"enroll"}, &out, &errOut); exitCode(err, &errOut) != 2 {
		t.Errorf("enroll without token: %v", err)
	}
	home := t.TempDir()
	err := run(context.Background(), []string{"renew", "--dir", home, "--name", "ghost"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "enroll first") {
		t.Errorf("renew without identity: %v", err)
	}
}

func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
