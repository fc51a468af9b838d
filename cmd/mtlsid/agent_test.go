package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAgentCommand(t *testing.T) {
	data := t.TempDir()
	s := startServe(t, data)
	home := t.TempDir()
	root := filepath.Join(data, "ca", "root.crt")
	cli(t, false, "enroll", s.token, "--ca", root, "--server", s.url, "--dir", home, "--name", "box")
	before, _ := os.ReadFile(filepath.Join(home, "box.cer"))

	// One pass with flags: a new certificate is not due; nothing changes.
	cli(t, false, "agent", "--once", "--server", s.url, "--dir", home, "--name", "box")
	if after, _ := os.ReadFile(filepath.Join(home, "box.cer")); string(after) != string(before) {
		t.Error("agent --once renewed a certificate that was not due")
	}

	// The same from a file; a file with an unknown key is refused.
	cfg := filepath.Join(home, "agent.yaml")
	os.WriteFile(cfg, []byte("server: "+s.url+"\nca: "+root+"\nidentities:\n  - name: box\n    dir: "+home+"\n    reload:\n      command: [\"true\"]\n"), 0o600)
	cli(t, false, "agent", "--once", "--config", cfg)
	os.WriteFile(cfg, []byte("server: "+s.url+"\nidentites: []\n"), 0o600)
	if msg := cli(t, true, "agent", "--once", "--config", cfg); !strings.Contains(msg, "identites") {
		t.Errorf("unknown key: %s", msg)
	}
	os.WriteFile(cfg, []byte("identities:\n  - name: x\n    dir: "+home+"\n    kind: server\n"), 0o600)
	if msg := cli(t, true, "agent", "--once", "--config", cfg); !strings.Contains(msg, "auth") {
		t.Errorf("server identity without auth: %s", msg)
	}
}
