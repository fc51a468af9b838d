package mtlsid_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependenciesPointInward pins the layering of STYLE.md: the root
// imports nothing from the module, and the SDK pulls in neither a store,
// nor the CA, nor the server side.
func TestDependenciesPointInward(t *testing.T) {
	const mod = "github.com/mtlsid/mtlsid"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, d := range deps(mod) {
		if strings.HasPrefix(d, mod+"/") {
			t.Errorf("root package imports %s", d)
		}
	}
	forbidden := []string{mod + "/store", mod + "/ca", mod + "/authority", mod + "/server", mod + "/selfapi", "modernc.org/sqlite", "github.com/jackc/pgx"}
	for _, d := range deps(mod + "/sdk") {
		if d == mod+"/selfapi/wire" || d == mod+"/identityapi/wire" {
			continue
		}
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("sdk depends on %s", d)
			}
		}
	}
	for _, pkg := range []string{"ca", "store/sqlite", "store/postgres", "revocation", "domainverify", "selfapi/wire", "identityapi/wire", "internal/storeinput"} {
		for _, d := range deps(mod + "/" + pkg) {
			if strings.HasPrefix(d, mod+"/") && d != mod+"/"+pkg && !strings.HasPrefix(d, mod+"/internal/") {
				t.Errorf("%s imports %s: it may import only the root package", pkg, d)
			}
		}
	}
}
