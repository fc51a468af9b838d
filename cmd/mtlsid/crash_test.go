package main

// Fault tests with real processes: `mtlsid serve` runs as a child process
// (this test binary, re-executed as the mtlsid command: see init), is
// killed with SIGKILL in the middle of a enrollBurst of enrollments, or loses
// its PostgreSQL connection behind a TCP proxy that the test cuts and
// restores. After each fault the tests check the promises: every
// enrollment that was answered 200 is in the store with its audit entry,
// the audit chain verifies, no serial is issued twice, and no request left
// half a record behind. Every loop is bounded in count and time; nothing
// is asserted about how long anything took (the figures are logged, and
// docs/reliability.md records them).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
	"github.com/mtlsid/mtlsid/selfapi/wire"
)

// childEnv, set to 1, makes this test binary run as the mtlsid command:
// the child processes of the fault tests are the real program, built
// once with the tests, and die for real under SIGKILL.
const childEnv = "MTLSID_TEST_RUN_AS_MTLSID"

func init() {
	if os.Getenv(childEnv) == "1" {
		main() // exits
	}
}

// childProc is an `mtlsid serve` child process.
type childProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	url  string
	done chan struct{}
	// started is how long the process took to listen.
	started time.Duration
}

// startChild runs mtlsid with args and waits, up to 60 s, until it listens.
func startChild(t *testing.T, args ...string) *childProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &childProc{cmd: exec.Command(exe, args...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), childEnv+"=1")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	begin := time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(t) })
	re := regexp.MustCompile(`listening on (https://\S+)`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			p.url, p.started = m[1], time.Since(begin)
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("mtlsid %s exited:\n%s", strings.Join(args, " "), p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("mtlsid %s did not listen within 60 s:\n%s", strings.Join(args, " "), p.out.String())
	return nil
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (p *childProc) kill(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("kill -9 %d: %v", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("process %d survived SIGKILL", p.cmd.Process.Pid)
	}
}

func childServeArgs(data string, extra ...string) []string {
	return append([]string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--hostname", "127.0.0.1", "--log-level", "warn"}, extra...)
}

// mintTestTokens creates n enrollment tokens in the deployment's store, as
// `mtlsid token create` does.
func mintTestTokens(t *testing.T, data, database string, n int) []string {
	t.Helper()
	auth, closeAll, err := openLocalAuthority(t.Context(), &dataFlags{data: data, database: database}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	tokens := make([]string, n)
	for i := range tokens {
		if tokens[i], _, err = auth.CreateToken(t.Context(), authority.TokenRequest{Label: fmt.Sprint("fault test ", i), Lifetime: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	return tokens
}

// testEnroller enrolls devices the way `mtlsid enroll` does, over real TLS.
type testEnroller struct{ roots *x509.CertPool }

func newTestEnroller(t *testing.T, data string) *testEnroller {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(data, "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("root.crt holds no certificate")
	}
	return &testEnroller{roots: roots}
}

// enroll returns the serial of the certificate the server acknowledged
// (HTTP 200), or why there is none.
func (e *testEnroller) enroll(ctx context.Context, serverURL, token string) (string, error) {
	_, csr, err := newKeyAndCSR("fault-test")
	if err != nil {
		return "", err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: e.roots}}
	defer tr.CloseIdleConnections()
	sc := &sdk.SelfClient{URL: serverURL, HTTP: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
	res, err := sc.Enroll(ctx, wire.Args{Authorization: token, AgentName: "fault-test", CSR: base64.StdEncoding.EncodeToString(csr)})
	if err != nil {
		return "", err
	}
	if res.SerialNumber == "" {
		return "", fmt.Errorf("enrolled without a serial: %+v", res)
	}
	return res.SerialNumber, nil
}

// enrollLedger is what the clients were told: token -> acknowledged serial, and
// the tokens whose request got no 200.
type enrollLedger struct {
	mu     sync.Mutex
	acked  map[string]string
	failed []string
	// retries counts tries after a failed one; usedOnRetry the retries
	// answered "token already used": an earlier try had gone through
	// without its answer reaching the client.
	retries, usedOnRetry atomic.Int64
}

func newEnrollLedger() *enrollLedger { return &enrollLedger{acked: map[string]string{}} }

func (l *enrollLedger) ack(token, serial string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[token] = serial
	return len(l.acked)
}

func (l *enrollLedger) fail(token string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, token)
}

// checkAfterFault checks the store after a fault: the audit chain verifies;
// every acknowledged serial is stored, with exactly one issuance in the
// chain; every issuance in the chain names a stored certificate, issued
// once; every certificate of an enrolled identity is in the chain; and
// every token is either unused or used by a stored certificate (no half
// of an enrollment). It returns how many certificates the chain issued.
func checkAfterFault(t *testing.T, s mtlsid.Store, l *enrollLedger, tokens []string) int {
	t.Helper()
	ctx := t.Context()
	if n, err := authority.VerifyAudit(ctx, s); err != nil {
		t.Fatalf("audit chain: %v (after %d good entries)", err, n)
	}
	issued := map[string]int{}
	var enrolled []string
	var after int64
	for {
		page, err := s.AuditLog(ctx, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			switch e.Type {
			case mtlsid.AuditCertIssued:
				issued[e.Subject]++
			case mtlsid.AuditTokenUsed:
				enrolled = append(enrolled, e.Subject)
			}
			after = e.Seq
		}
		if len(page) < 1000 {
			break
		}
	}
	for serial, n := range issued {
		if n != 1 {
			t.Errorf("serial %s issued %d times in the audit chain", serial, n)
		}
		if _, err := s.Certificate(ctx, serial); err != nil {
			t.Errorf("audit chain issued %s, store: %v", serial, err)
		}
	}
	for token, serial := range l.acked {
		if _, err := s.Certificate(ctx, serial); err != nil {
			t.Errorf("acknowledged serial %s (token %.12s…) lost: %v", serial, token, err)
		}
		if issued[serial] != 1 {
			t.Errorf("acknowledged serial %s issued %d times in the audit chain", serial, issued[serial])
		}
	}
	for _, id := range enrolled {
		certs, err := s.IdentityCertificates(ctx, id)
		if err != nil || len(certs) == 0 {
			t.Errorf("identity %s enrolled in the chain, store: %v %v", id, certs, err)
		}
		for _, c := range certs {
			if issued[c.Serial] != 1 {
				t.Errorf("certificate %s of %s is not in the audit chain", c.Serial, id)
			}
		}
	}
	for _, token := range tokens {
		tok, err := s.Token(ctx, mtlsid.HashToken(token))
		if err != nil {
			t.Errorf("token %.12s…: %v", token, err)
			continue
		}
		if tok.UsedAt.IsZero() {
			if tok.UsedBy != "" {
				t.Errorf("token %.12s… unused but used by %q", token, tok.UsedBy)
			}
			continue
		}
		if _, err := s.Certificate(ctx, tok.UsedBy); err != nil {
			t.Errorf("token %.12s… used by %q, which is not stored: %v", token, tok.UsedBy, err)
		}
		if serial, ok := l.acked[token]; ok && serial != tok.UsedBy {
			t.Errorf("token %.12s… acknowledged as %s, stored as used by %s", token, serial, tok.UsedBy)
		}
	}
	return len(issued)
}

// enrollBurst enrolls with every token from workers goroutines, each token
// tried on the nodes in turn (a retry moves to the next node) up to
// tries times, and calls onAck after each acknowledgement. It returns
// when every token has been tried.
func enrollBurst(ctx context.Context, e *testEnroller, nodes func() []string, tokens []string, workers, tries int, l *enrollLedger, onAck func(n int)) {
	next := make(chan int, len(tokens))
	for i := range tokens {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				urls := nodes()
				var err error
				for try := range tries {
					if try > 0 {
						l.retries.Add(1)
					}
					var serial string
					serial, err = e.enroll(ctx, urls[(i+try)%len(urls)], tokens[i])
					if err == nil {
						onAck(l.ack(tokens[i], serial))
						break
					}
					var apiErr *sdk.APIError
					if errors.As(err, &apiErr) && apiErr.Kind == string(mtlsid.KindUsed) {
						if try > 0 {
							l.usedOnRetry.Add(1)
						}
						break // an earlier try went through, unacknowledged
					}
				}
				if err != nil {
					l.fail(tokens[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestFaultSQLiteKill9 kills `mtlsid serve` on SQLite with SIGKILL in the
// middle of a enrollBurst of enrollments, restarts it, and checks the store.
func TestFaultSQLiteKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs real processes")
	}
	data := t.TempDir()
	p := startChild(t, childServeArgs(data)...)
	tokens := mintTestTokens(t, data, "", 60)
	e := newTestEnroller(t, data)
	l := newEnrollLedger()
	const killAfter = 15
	var killed atomic.Bool
	enrollBurst(t.Context(), e, func() []string { return []string{p.url} }, tokens, 6, 1, l, func(n int) {
		if n >= killAfter && killed.CompareAndSwap(false, true) {
			p.kill(t)
		}
	})
	if !killed.Load() {
		t.Fatalf("the enrollBurst ended with %d acknowledgements, before the kill", len(l.acked))
	}

	restart := time.Now()
	p2 := startChild(t, childServeArgs(data)...)
	t.Logf("SQLite: %d enrollments acknowledged before kill -9, %d failed; restart listened after %v",
		len(l.acked), len(l.failed), time.Since(restart).Round(time.Millisecond))
	if o := cli(t, false, "audit", "verify", "--data", data); !strings.Contains(o, "intact") {
		t.Fatalf("audit verify after kill -9: %s", o)
	}
	s, err := openStore(t.Context(), "sqlite:"+filepath.Join(data, "mtlsid.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := checkAfterFault(t, s, l, tokens)

	// The tokens whose enrollment got no answer: each either went through
	// whole (used, with its certificate) or not at all, and then enrolls
	// now.
	retried := newEnrollLedger()
	enrollBurst(t.Context(), e, func() []string { return []string{p2.url} }, l.failed, 4, 1, retried, func(int) {})
	for _, tok := range retried.failed {
		got, err := s.Token(t.Context(), mtlsid.HashToken(tok))
		if err != nil || got.UsedAt.IsZero() {
			t.Errorf("token %.12s… failed after the restart and is not used: %v", tok, err)
		}
	}
	for tok, serial := range retried.acked {
		l.acked[tok] = serial
	}
	m := checkAfterFault(t, s, l, tokens)
	t.Logf("SQLite: %d certificates in the chain after the kill, %d after retrying the %d unanswered tokens on the restarted node",
		n, m, len(l.failed))
}

// TestFaultPostgresTwoNodesKill9 runs two `mtlsid serve` nodes on one
// PostgreSQL database, loads both, kills one with SIGKILL mid-load, and
// lets the clients retry on the other.
func TestFaultPostgresTwoNodesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs real processes")
	}
	db := pgtest.URL(t)
	d1, d2 := t.TempDir(), t.TempDir()
	a := startChild(t, childServeArgs(d1, "--database", db)...)
	// The second node shares the CA (its files and passphrase), as every
	// node of a fleet does; see docs/deploy.md.
	copyCADir(t, filepath.Join(d1, "ca"), filepath.Join(d2, "ca"))
	b := startChild(t, childServeArgs(d2, "--database", db)...)
	tokens := mintTestTokens(t, d1, db, 60)
	e := newTestEnroller(t, d1)
	l := newEnrollLedger()
	// The CRL lease is A's before the load (A started first; wait for
	// it), so that B holding it afterwards shows it moved.
	waitLease(t, e, a, true, 60*time.Second)
	var killed atomic.Bool
	enrollBurst(t.Context(), e, func() []string { return []string{a.url, b.url} }, tokens, 6, 3, l, func(n int) {
		if n >= 15 && killed.CompareAndSwap(false, true) {
			a.kill(t)
		}
	})
	if !killed.Load() {
		t.Fatalf("the load ended with %d acknowledgements, before the kill", len(l.acked))
	}
	t.Logf("PostgreSQL, two nodes: %d enrollments acknowledged, %d unanswered, node A killed after 15; %d retries on the other node, %d of them found their token used (committed by A, unanswered)",
		len(l.acked), len(l.failed), l.retries.Load(), l.usedOnRetry.Load())
	if o := cli(t, false, "audit", "verify", "--data", d2, "--database", db); !strings.Contains(o, "intact") {
		t.Fatalf("audit verify: %s", o)
	}
	s, err := openStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := checkAfterFault(t, s, l, tokens)
	// Node B took over: every token is used, acknowledged or not. A token
	// whose retry found it used is among the failed (no answer carried
	// its certificate) though A committed it before the kill.
	for _, tok := range l.failed {
		got, err := s.Token(t.Context(), mtlsid.HashToken(tok))
		if err != nil || got.UsedAt.IsZero() {
			t.Errorf("token %.12s… never enrolled, though node B was up: %v", tok, err)
		}
	}
	t.Logf("PostgreSQL, two nodes: %d certificates in the chain, each once", n)
	// The killed holder could not give its lease up: B takes it when it
	// lapses (10 s; docs/fleet.md).
	waitLease(t, e, b, true, 60*time.Second)
}

// waitLease polls the node's metrics until it holds (or not) the CRL
// lease, and fails the test after limit.
func waitLease(t *testing.T, e *testEnroller, p *childProc, held bool, limit time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.roots}}}
	defer client.CloseIdleConnections()
	want := `mtlsid_lease_held{lease="crl"} 1`
	deadline := time.Now().Add(limit)
	for {
		var body []byte
		if resp, err := client.Get(p.url + "/metrics"); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if strings.Contains(string(body), want) == held {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %s holds the CRL lease: %v, want %v", limit, p.url, !held, held)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestFaultPostgresConnectionCut puts a TCP proxy between `mtlsid serve`
// and PostgreSQL, cuts it (every connection closed, new ones refused) and
// restores it. While it is cut, enrollments fail without a 200 and leave
// nothing; once restored, the same node serves again without a restart.
func TestFaultPostgresConnectionCut(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs real processes")
	}
	db := pgtest.URL(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	px := newCutProxy(t, u.Host)
	via := *u
	via.Host = px.addr()
	q := via.Query()
	q.Set("connect_timeout", "2")
	via.RawQuery = q.Encode()

	data := t.TempDir()
	p := startChild(t, childServeArgs(data, "--database", via.String())...)
	tokens := mintTestTokens(t, data, db, 15)
	e := newTestEnroller(t, data)
	l := newEnrollLedger()
	one := func() []string { return []string{p.url} }
	enrollBurst(t.Context(), e, one, tokens[:5], 5, 1, l, func(int) {})
	if len(l.acked) != 5 {
		t.Fatalf("before the cut: %d of 5 enrolled", len(l.acked))
	}

	px.cut()
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	for _, tok := range tokens[5:10] {
		wg.Go(func() {
			_, err := e.enroll(t.Context(), p.url, tok)
			mu.Lock()
			defer mu.Unlock()
			var apiErr *sdk.APIError
			switch {
			case err == nil:
				t.Errorf("enrollment acknowledged while PostgreSQL was cut off")
			case errors.As(err, &apiErr):
				statuses[fmt.Sprintf("HTTP %d %s", apiErr.Status, apiErr.Kind)]++
			default:
				statuses["no answer: "+err.Error()]++
			}
		})
	}
	wg.Wait()
	t.Logf("answers while cut: %v", statuses)

	// Read through the real address: the requests during the cut left
	// their tokens unused.
	s, err := openStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tok := range tokens[5:10] {
		got, err := s.Token(t.Context(), mtlsid.HashToken(tok))
		if err != nil || !got.UsedAt.IsZero() {
			t.Errorf("token sent during the cut: %+v %v", got, err)
		}
	}

	px.restore()
	restored := time.Now()
	// The node reconnects by itself: poll with the first cut-off token.
	deadline := time.Now().Add(60 * time.Second)
	for {
		serial, err := e.enroll(t.Context(), p.url, tokens[5])
		if err == nil {
			l.ack(tokens[5], serial)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no enrollment went through within 60 s of the restore: %v\n%s", err, p.out.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("first enrollment after the restore: %v", time.Since(restored).Round(time.Millisecond))
	enrollBurst(t.Context(), e, one, tokens[6:], 5, 1, l, func(int) {})
	if len(l.failed) > 0 {
		t.Errorf("%d enrollments failed after the restore", len(l.failed))
	}
	checkAfterFault(t, s, l, tokens)
	if o := cli(t, false, "audit", "verify", "--data", data, "--database", db); !strings.Contains(o, "intact") {
		t.Fatalf("audit verify: %s", o)
	}
	t.Logf("proxy: %d connections accepted, %d refused while cut", px.accepted.Load(), px.refused.Load())
}

// cutProxy is a TCP proxy on loopback to one address that can be cut off.
type cutProxy struct {
	ln                net.Listener
	target            string
	mu                sync.Mutex
	down              bool
	conns             map[net.Conn]bool
	accepted, refused atomic.Int64
	wg                sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	px.wg.Go(px.serve)
	t.Cleanup(func() {
		ln.Close()
		px.cut()
		px.wg.Wait()
	})
	return px
}

func (px *cutProxy) addr() string { return px.ln.Addr().String() }

func (px *cutProxy) serve() {
	for {
		c, err := px.ln.Accept()
		if err != nil {
			return
		}
		px.mu.Lock()
		down := px.down
		if !down {
			px.conns[c] = true
		}
		px.mu.Unlock()
		if down {
			px.refused.Add(1)
			c.Close()
			continue
		}
		px.accepted.Add(1)
		px.wg.Go(func() { px.pipe(c) })
	}
}

func (px *cutProxy) pipe(c net.Conn) {
	defer px.forget(c)
	up, err := net.DialTimeout("tcp", px.target, 5*time.Second)
	if err != nil {
		return
	}
	px.mu.Lock()
	if px.down {
		px.mu.Unlock()
		up.Close()
		return
	}
	px.conns[up] = true
	px.mu.Unlock()
	defer px.forget(up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done // either side closing, or a cut, ends both
}

func (px *cutProxy) forget(c net.Conn) {
	c.Close()
	px.mu.Lock()
	delete(px.conns, c)
	px.mu.Unlock()
}

// cut closes every connection through the proxy and refuses new ones.
func (px *cutProxy) cut() {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.down = true
	for c := range px.conns {
		c.Close()
	}
}

func (px *cutProxy) restore() {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.down = false
}

func copyCADir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
