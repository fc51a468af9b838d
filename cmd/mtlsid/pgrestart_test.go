package main

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
)

// TestFaultPostgresRestart restarts PostgreSQL for real (a private cluster,
// stopped the way a host shutdown stops it, then started again) while
// clients keep enrolling through one `serve` node: while it is down they
// get a clear 503, the node recovers without a restart, and nothing
// acknowledged is lost or half written.
func TestFaultPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("fault test: runs real processes")
	}
	pg := pgtest.Private(t)
	u, err := url.Parse(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	db := u.String()

	data := t.TempDir()
	p := startChild(t, childServeArgs(data, "--database", db)...)
	tokens := mintTestTokens(t, data, db, 40)
	e := newTestEnroller(t, data)
	l := newEnrollLedger()

	// Four clients enroll with every token, each retrying its token every
	// 100 ms (for 60 s at most) until it is acknowledged or found used;
	// after the 10th acknowledgement PostgreSQL stops for 3 s.
	var (
		restarted      = make(chan struct{})
		once           sync.Once
		down           atomic.Bool
		mu             sync.Mutex
		whileDown      = map[string]int{}
		ackedWhileDown atomic.Int64 // acknowledgements while stopped
		back, firstAck atomic.Int64 // UnixNano: PostgreSQL started again; the first acknowledgement after
	)
	// down is set only while PostgreSQL is certainly stopped: after
	// pg_ctl stop has returned and before pg_ctl start is run.
	restart := func() {
		pg.Stop()
		down.Store(true)
		time.Sleep(3 * time.Second)
		down.Store(false)
		pg.Start()
		back.Store(time.Now().UnixNano())
		close(restarted)
	}
	next := make(chan string, len(tokens))
	for _, tok := range tokens {
		next <- tok
	}
	close(next)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for tok := range next {
				for try := 0; ; try++ {
					wasDown := down.Load()
					serial, err := e.enroll(t.Context(), p.url, tok)
					if err == nil {
						if wasDown && down.Load() {
							ackedWhileDown.Add(1)
						}
						if back.Load() != 0 {
							firstAck.CompareAndSwap(0, time.Now().UnixNano())
						}
						if l.ack(tok, serial) == 10 {
							once.Do(func() { go restart() })
						}
						break
					}
					var apiErr *sdk.APIError
					isAPI := errors.As(err, &apiErr)
					if isAPI && apiErr.Kind == string(mtlsid.KindUsed) {
						if try > 0 {
							l.usedOnRetry.Add(1)
						}
						break
					}
					if wasDown && down.Load() {
						mu.Lock()
						if isAPI {
							whileDown[fmt.Sprintf("HTTP %d %s", apiErr.Status, apiErr.Kind)]++
						} else {
							whileDown["no answer"]++
						}
						mu.Unlock()
					}
					if try == 600 {
						l.fail(tok)
						break
					}
					l.retries.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
			}
		})
	}
	wg.Wait()
	select {
	case <-restarted:
	case <-time.After(60 * time.Second):
		t.Fatal("the restart did not finish")
	}
	t.Logf("answers while PostgreSQL was stopped: %v; %d retries in all, %d found their token used; first acknowledgement %v after PostgreSQL accepted connections again",
		whileDown, l.retries.Load(), l.usedOnRetry.Load(), time.Duration(firstAck.Load()-back.Load()).Round(time.Millisecond))
	if ackedWhileDown.Load() > 0 {
		t.Errorf("%d enrollments acknowledged while PostgreSQL was stopped", ackedWhileDown.Load())
	}
	if whileDown["HTTP 503 unavailable"] == 0 {
		t.Errorf("no 503 unavailable while PostgreSQL was stopped: %v", whileDown)
	}
	for answer := range whileDown {
		if answer != "HTTP 503 unavailable" {
			t.Errorf("while PostgreSQL was stopped, an answer other than 503 unavailable: %s", answer)
		}
	}
	if len(l.failed) > 0 {
		t.Errorf("%d tokens never enrolled, though PostgreSQL came back", len(l.failed))
	}
	select {
	case <-p.done:
		t.Fatalf("serve exited:\n%s", p.out.String())
	default:
	}

	s, err := openStore(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	n := checkAfterFault(t, s, l, tokens)
	t.Logf("%d certificates in the chain, each once, for %d tokens", n, len(tokens))
	if o := cli(t, false, "audit", "verify", "--data", data, "--database", db); !strings.Contains(o, "intact") {
		t.Fatalf("audit verify: %s", o)
	}
}
