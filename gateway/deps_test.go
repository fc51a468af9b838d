package gateway_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGoesThroughSDK pins STYLE's rule: the gateway reaches the authority
// through sdk only, never a store, the CA or the server.
func TestGoesThroughSDK(t *testing.T) {
	const mod = "github.com/mtlsid/mtlsid"
	out, err := exec.Command("go", "list", "-deps", mod+"/gateway").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{mod + "/store", mod + "/ca", mod + "/authority", mod + "/server", mod + "/selfapi", mod + "/web",
		mod + "/revocation", "modernc.org/sqlite", "github.com/jackc/pgx"}
	for _, d := range strings.Fields(string(out)) {
		if d == mod+"/selfapi/wire" || d == mod+"/identityapi/wire" {
			continue
		}
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("gateway depends on %s", d)
			}
		}
	}
}
