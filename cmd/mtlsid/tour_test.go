package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mtlsid/mtlsid/internal/pgtest"
)

// TestIdentityTourScript runs docs/identity-tour.sh, the Identity API tour
// of the docs, against a built binary on both stores: the docs' commands
// are tested as written.
func TestIdentityTourScript(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	bin := filepath.Join(t.TempDir(), "mtlsid")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var args []string
			if backend == "postgres" {
				args = []string{"--database", pgtest.URL(t)}
			}
			cmd := exec.Command("bash", append([]string{"../../docs/identity-tour.sh"}, args...)...)
			cmd.Env = append(cmd.Environ(), "MTLSID="+bin)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "tour complete") {
				t.Fatalf("tour failed: %v\n%s", err, out)
			}
		})
	}
}
