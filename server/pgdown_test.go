package server_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mtlsid/mtlsid"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
	"github.com/mtlsid/mtlsid/internal/pgtest"
	"github.com/mtlsid/mtlsid/sdk"
)

// tcpProxy relays TCP connections to a target. down cuts every connection
// and stops listening, as a database host that dies would; up listens
// again on the same address. It is the failure injection of the tests
// below: the database behind it is real.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.ln = ln
	go p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go p.relay(c)
	}
}

func (p *tcpProxy) relay(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) up() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(fleetWait); ; {
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go p.serve(ln)
}

// TestDatabaseDown cuts a node from PostgreSQL: its Identity API answers
// ER 1106 (HTTP 503), its other routes 503 with a clear message; when the
// database is back the node recovers by itself, and follows the fleet's
// events again.
func TestDatabaseDown(t *testing.T) {
	dbURL := pgtest.URL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	viaProxy := *u
	viaProxy.Host = proxy.addr
	shared := fleetCA(t)
	direct := startNode(t, dbURL, shared, "direct")
	cut := startNode(t, viaProxy.String(), shared, "behind-proxy")

	_, _, api := direct.service()
	person := direct.enroll("person-phone", mtlsid.TokenDevice)
	if r, _ := cut.inquire(api, person.serial); r.Outcome() != idwire.PB0003 {
		t.Fatalf("inquiry before: %s", r.Outcome())
	}
	browser := cut.browser(person)
	if st, body := getPage(t, browser, cut.url+"/my"); st != http.StatusOK {
		t.Fatalf("/my before: %d\n%s", st, body)
	}

	proxy.down()
	eventually(t, "ER 1106 on /v1", func() string {
		// An unknown serial is never cached: the answer needs the database.
		r, _ := cut.inquire(api, "123456789")
		if r.Status != http.StatusServiceUnavailable || r.Outcome() != idwire.ER1106 {
			return r.Outcome()
		}
		return ""
	})
	eventually(t, "503 on the pages", func() string {
		st, body := getPage(t, browser, cut.url+"/my")
		if st != http.StatusServiceUnavailable || !strings.Contains(body, "database is unavailable") {
			return http.StatusText(st)
		}
		return ""
	})
	if st, _ := getPage(t, browser, cut.url+"/readyz"); st != http.StatusServiceUnavailable {
		t.Errorf("/readyz while the database is down: %d", st)
	}
	_, err = cut.client(&person.tls).Devices(t.Context())
	var apiErr *sdk.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
		t.Errorf("self-authority API while the database is down: %v", err)
	}

	proxy.up()
	eventually(t, "recovery of /v1", func() string {
		if r, _ := cut.inquire(api, person.serial); r.Outcome() != idwire.PB0003 {
			return r.Outcome()
		}
		return ""
	})
	if st, body := getPage(t, browser, cut.url+"/my"); st != http.StatusOK {
		t.Errorf("/my after recovery: %d\n%s", st, body)
	}
	// The node follows the fleet again: a revocation on the other node
	// reaches it (its cache keeps answers for an hour).
	if err := direct.auth.RevokeLocal(t.Context(), person.serial, mtlsid.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revocation on the other node after recovery", func() string {
		if r, _ := cut.inquire(api, person.serial); r.Outcome() != idwire.PB0004 {
			return r.Outcome()
		}
		return ""
	})
}
