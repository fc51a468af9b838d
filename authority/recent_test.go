package authority

import (
	"fmt"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
)

// TestRecentCallsBounded: an identity keeps its last perID answers, oldest
// first; past maxIDs identities the first one asked about is forgotten;
// and the memory held stays within the bounds however many answers pass.
func TestRecentCallsBounded(t *testing.T) {
	r := newRecentCalls(3, 2)
	at := time.Unix(0, 0)
	ask := func(identity string, n int) {
		for i := range n {
			p := &Profile{Certificate: &mtlsid.Certificate{IdentityID: identity}, Authorizing: fmt.Sprint(i), Method: MethodCertificate}
			r.add(p, "svc", at.Add(time.Duration(i)*time.Second))
		}
	}
	ask("alice", 7)
	got := r.get("alice")
	if len(got) != 3 || got[0].Serial != "4" || got[1].Serial != "5" || got[2].Serial != "6" {
		t.Fatalf("alice's last 3 answers, oldest first: %+v", got)
	}
	ask("bob", 1)
	if len(r.get("alice")) != 3 || len(r.get("bob")) != 1 {
		t.Fatal("two identities fit")
	}
	ask("carol", 1) // a third: alice, the first asked about, goes
	if r.get("alice") != nil || len(r.get("bob")) != 1 || len(r.get("carol")) != 1 {
		t.Fatalf("after a third identity: alice %v, bob %v, carol %v", r.get("alice"), r.get("bob"), r.get("carol"))
	}
	for i := range 1000 {
		ask(fmt.Sprint("p", i), 5)
	}
	if len(r.calls) != 2 || len(r.order) != 2 {
		t.Fatalf("%d identities kept, order %d; want 2", len(r.calls), len(r.order))
	}
	for _, ring := range r.calls {
		if cap(ring.buf) > 3 {
			t.Fatalf("a ring grew to %d", cap(ring.buf))
		}
	}
}
