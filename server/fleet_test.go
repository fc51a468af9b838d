package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/ca"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
	"github.com/mtlsid/mtlsid/server"
	"github.com/mtlsid/mtlsid/store/storetest"
)

// fleetWait bounds every wait for something to cross the fleet. It is
// generous so that a loaded machine passes; it is a deadline, not a
// measure (docs/benchmarks.md has the measures).
const fleetWait = 20 * time.Second

// node is one `serve` of a fleet: its own store (connection pool), its own
// authority, server, listener and background jobs, on the fleet's
// database and CA.
type node struct {
	*env
	stopRun context.CancelFunc
	runDone chan struct{}
}

// fleet starts n nodes on one PostgreSQL schema, sharing one CA. Their
// read caches keep answers for an hour, so that only the fleet's events
// can make a node see another's change.
func newFleet(t testing.TB, n int) (dbURL string, nodes []*node) {
	t.Helper()
	dbURL = pgtest.URL(t)
	shared := fleetCA(t)
	for i := range n {
		nodes = append(nodes, startNode(t, dbURL, shared, fmt.Sprint("node-", i+1)))
	}
	return dbURL, nodes
}

func fleetCA(t testing.TB) *ca.CA {
	t.Helper()
	c, err := ca.Init(filepath.Join(t.TempDir(), "ca"), ca.InitConfig{Now: func() time.Time { return time.Now().Add(-24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	// Behind a load balancer, certificates name its address.
	base := "http://fleet.mtls.test"
	c, err = c.WithConfig(ca.Config{OCSPURL: base + "/ca/ocsp", CRLURL: base + "/ca/crl", IssuerURL: base + "/ca/issuer.crt"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startNode(t testing.TB, dbURL string, shared *ca.CA, name string) *node {
	t.Helper()
	e := newEnv(t, openPostgres(t, dbURL), func(a *authority.Config, s *server.Config) {
		a.CA = shared
		a.CacheTTL = time.Hour
		s.NodeName = name
		s.LeaseTTL = 3 * time.Second // renewed every second
	})
	n := &node{env: e, runDone: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	n.stopRun = cancel
	go func() { e.srv.Run(ctx); close(n.runDone) }()
	t.Cleanup(n.stop)
	return n
}

// stop stops the node's jobs (giving up its leases) and its server.
func (n *node) stop() {
	n.stopRun()
	<-n.runDone
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
}

// eventually polls f until it returns "" or fleetWait passes, and then
// fails the test with f's last complaint.
func eventually(t *testing.T, what string, f func() string) {
	t.Helper()
	deadline := time.Now().Add(fleetWait)
	for {
		why := f()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, fleetWait, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// service makes, on node e, an organization administered by a new person
// with a service "shop" in it, and returns the admin, the service and an
// API certificate of it.
func (e *env) service() (admin *device, svc *mtlsid.Service, api *device) {
	e.t.Helper()
	admin = e.enroll("admin-laptop", mtlsid.TokenDevice)
	svc = e.org(admin, "acme", "shop")
	return admin, svc, e.apiCert(admin, svc.ID, false)
}

// TestFleetRevocation: a certificate revoked on node A is refused on node
// B, whose cache held its answer (caches keep answers for an hour here:
// only the event can tell B).
func TestFleetRevocation(t *testing.T) {
	_, nodes := newFleet(t, 2)
	a, b := nodes[0], nodes[1]
	_, _, api := a.service()
	person := a.enroll("person-phone", mtlsid.TokenDevice)

	if r, _ := b.inquire(api, person.serial); r.Outcome() != idwire.PB0003 {
		t.Fatalf("inquiry on b before: %s", r.Outcome())
	}
	if err := a.auth.RevokeLocal(context.Background(), person.serial, mtlsid.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	eventually(t, "person's revocation on b", func() string {
		if r, _ := b.inquire(api, person.serial); r.Outcome() != idwire.PB0004 {
			return r.Outcome()
		}
		return ""
	})

	// The service's own API certificate, revoked on a, is refused by b.
	if err := a.auth.RevokeLocal(context.Background(), api.serial, mtlsid.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	eventually(t, "API certificate's revocation on b", func() string {
		if r, _ := b.inquire(api, person.serial); r.Outcome() != idwire.ER1103 {
			return r.Outcome()
		}
		return ""
	})
}

// watch follows the event stream of node e with the API certificate api
// until the test ends.
func (e *env) watch(t testing.TB, api *device) <-chan sdk.Event {
	t.Helper()
	got := make(chan sdk.Event, 16)
	connected := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.idClient(api).WatchEvents(ctx, func(ev sdk.Event) { got <- ev }, func() { connected <- struct{}{} })
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-time.After(fleetWait):
		t.Fatalf("event stream on %s not connected", e.url)
	}
	return got
}

func wantEvent(t testing.TB, got <-chan sdk.Event, what string, w sdk.Event) {
	t.Helper()
	select {
	case ev := <-got:
		if ev != w {
			t.Fatalf("%s: event %+v; want %+v", what, ev, w)
		}
	case <-time.After(fleetWait):
		t.Fatalf("%s: no event within %v", what, fleetWait)
	}
}

// TestFleetEventStream: a service following /v1/events on node B hears of
// a role granted and a certificate revoked on node A; another service
// hears of the revocation only.
func TestFleetEventStream(t *testing.T) {
	_, nodes := newFleet(t, 2)
	a, b := nodes[0], nodes[1]
	admin, svc, api := a.service()
	person := a.enroll("person-phone", mtlsid.TokenDevice)
	otherSvc, err := a.auth.CreateService(context.Background(), a.record(admin), "acme", "blog")
	if err != nil {
		t.Fatal(err)
	}
	got, other := b.watch(t, api), b.watch(t, a.apiCert(admin, otherSvc.ID, false))
	want := func(what string, w sdk.Event) { t.Helper(); wantEvent(t, got, what, w) }

	bg := context.Background()
	if err := a.auth.DefineRole(bg, a.record(admin), svc.ID, "editor"); err != nil {
		t.Fatal(err)
	}
	if err := a.auth.GrantRole(bg, a.record(admin), svc.ID, person.serial, "editor"); err != nil {
		t.Fatal(err)
	}
	want("role granted on a", sdk.Event{Kind: sdk.EventRoles, Serial: person.serial})
	if err := a.auth.RevokeRole(bg, a.record(admin), svc.ID, person.serial, "editor"); err != nil {
		t.Fatal(err)
	}
	want("role taken away on a", sdk.Event{Kind: sdk.EventRoles, Serial: person.serial})
	if err := a.auth.RevokeLocal(bg, person.serial, mtlsid.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	want("revocation on a", sdk.Event{Kind: sdk.EventRevoked, Serial: person.serial})
	wantEvent(t, other, "another service's first event", sdk.Event{Kind: sdk.EventRevoked, Serial: person.serial})
}

// TestFleetCRL: one node holds the CRL lease; when it stops, another takes
// it. Every node serves the CRL the database holds, with numbers that only
// go up, listing a revocation made on any node.
func TestFleetCRL(t *testing.T) {
	_, nodes := newFleet(t, 2)
	holder := func() string {
		var who []string
		for i, n := range nodes {
			if n != nil && n.leaseHeld() {
				who = append(who, fmt.Sprint(i))
			}
		}
		if len(who) != 1 {
			return "holders: [" + strings.Join(who, " ") + "]"
		}
		return ""
	}
	eventually(t, "one CRL lease holder", holder)
	first := 0
	if nodes[1].leaseHeld() {
		first = 1
	}
	other := nodes[1-first]

	person := other.enroll("person-phone", mtlsid.TokenDevice)
	if err := nodes[first].auth.RevokeLocal(context.Background(), person.serial, mtlsid.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	before := nodes[first].crl().Number.Int64()
	eventually(t, "the other node serving the new CRL", func() string {
		crl := other.crl()
		if crl.Number.Int64() < before || !crlLists(crl, person.cert) {
			return fmt.Sprintf("CRL %v; the holder's is %d", crl.Number, before)
		}
		return ""
	})

	nodes[first].stop()
	nodes[first] = nil
	eventually(t, "the lease moving to the other node", func() string {
		if !other.leaseHeld() {
			return "not held"
		}
		return ""
	})
	second := other.enroll("second-phone", mtlsid.TokenDevice)
	if err := other.auth.RevokeLocal(context.Background(), second.serial, mtlsid.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	crl := other.crl()
	if crl.Number.Int64() <= before || !crlLists(crl, second.cert) || !crlLists(crl, person.cert) {
		t.Errorf("CRL after the move: number %v (was %d), lists both: %v %v", crl.Number, before, crlLists(crl, person.cert), crlLists(crl, second.cert))
	}
}

// leaseHeld reads the node's metrics for the CRL lease.
func (e *env) leaseHeld() bool {
	resp, err := e.httpClient(nil).Get(e.url + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Contains(string(body), `mtlsid_lease_held{lease="`+server.CRLLease+`"} 1`)
}

// TestFleetForms: a form rendered by node A is accepted by node B, since
// the nodes share the form key through the database.
func TestFleetForms(t *testing.T) {
	_, nodes := newFleet(t, 2)
	a, b := nodes[0], nodes[1]
	_, _, api := a.service()
	person := a.enroll("person-phone", mtlsid.TokenDevice)
	ref := a.intentRef(api)

	hc := a.browser(person) // one cookie jar: the nodes share the host
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	st, page := getPage(t, hc, a.url+"/signon/"+ref)
	if st != http.StatusOK {
		t.Fatalf("sign-on page on a: %d\n%s", st, page)
	}
	resp, err := hc.PostForm(b.url+"/signon/"+ref, url.Values{"consent": {"yes"}, "csrf": {formToken(t, []byte(page))}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "https://shop.acme.mtls.test/back") {
		t.Fatalf("consent posted to b: %s to %q\n%s", resp.Status, resp.Header.Get("Location"), body)
	}
}

// TestFleetConcurrentEnrollment enrolls on three nodes at once: no
// duplicate serial, every certificate stored, and every issuance in the
// one audit chain, which verifies.
func TestFleetConcurrentEnrollment(t *testing.T) {
	_, nodes := newFleet(t, 3)
	const perNode = 12
	tokens := nodes[0].mintTokens(perNode * len(nodes))
	// Each device is enrolled on one node, lists its devices and is
	// renewed (forced, a new key) on the next, and has its first
	// certificate revoked on the third: a mixed load over the fleet.
	serials := make(chan string, 2*len(tokens))
	var wg sync.WaitGroup
	for i, tok := range tokens {
		n, m, o := nodes[i%len(nodes)], nodes[(i+1)%len(nodes)], nodes[(i+2)%len(nodes)]
		wg.Go(func() {
			key, csr := newCSR(t, "device")
			res, err := n.client(nil).Enroll(context.Background(), wire.Args{Authorization: tok, AgentName: fmt.Sprint("device-", i), CSR: csr})
			if err != nil {
				t.Errorf("enroll on %s: %v", n.url, err)
				return
			}
			d := deviceFrom(t, key, res)
			serials <- d.serial
			if _, err := m.client(&d.tls).Devices(context.Background()); err != nil {
				t.Errorf("list devices on %s: %v", m.url, err)
				return
			}
			_, csr2 := newCSR(t, "device")
			res, err = m.client(&d.tls).Renew(context.Background(), wire.Args{CSR: csr2})
			if err != nil || res.Outcome != wire.OutcomeRenewed {
				t.Errorf("renew on %s: %v", m.url, err)
				return
			}
			serials <- res.SerialNumber
			if _, err := o.client(&d.tls).Revoke(context.Background(), d.serial); err != nil {
				t.Errorf("revoke on %s: %v", o.url, err)
			}
		})
	}
	wg.Wait()
	close(serials)
	seen := map[string]bool{}
	for s := range serials {
		if seen[s] {
			t.Errorf("serial %s issued twice", s)
		}
		seen[s] = true
	}
	if len(seen) != 2*len(tokens) {
		t.Fatalf("%d certificates for %d enrollments and as many renewals", len(seen), len(tokens))
	}
	store := nodes[2].store
	for s := range seen {
		if _, err := store.Certificate(context.Background(), s); err != nil {
			t.Errorf("certificate %s: %v", s, err)
		}
	}
	if _, err := storetest.VerifyChain(context.Background(), store, 500); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	logged := map[string]bool{}
	for after := int64(0); ; {
		page, err := store.AuditLog(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			// A renewal is an issuance too; it is audited under its own type
			// with the new serial as subject.
			if e.Type == mtlsid.AuditCertIssued || e.Type == mtlsid.AuditCertRenewed {
				logged[e.Subject] = true
			}
			after = e.Seq
		}
		if len(page) < 500 {
			break
		}
	}
	for s := range seen {
		if !logged[s] {
			t.Errorf("issuance of %s not in the audit chain", s)
		}
	}
}

// TestFleetCleanup: the node holding the clean-up lease purges intents
// that expired more than a day before; a fresh one stays.
func TestFleetCleanup(t *testing.T) {
	_, nodes := newFleet(t, 2)
	a := nodes[0]
	_, _, api := a.service()
	old := mtlsid.HashToken(a.intentRef(api))
	for _, n := range nodes {
		n.advance(48 * time.Hour) // every node's clock, so their leases agree
	}
	fresh := mtlsid.HashToken(a.intentRef(api))
	eventually(t, "the purge of the old intent", func() string {
		if _, err := a.store.Intent(context.Background(), old); mtlsid.ErrorKind(err) != mtlsid.KindNotFound {
			return fmt.Sprint("still there: ", err)
		}
		return ""
	})
	if _, err := a.store.Intent(context.Background(), fresh); err != nil {
		t.Errorf("the fresh intent: %v", err)
	}
}
