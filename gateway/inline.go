package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// inlineTransport sends a request to a plain-HTTP upstream and reads its
// answer in the calling goroutine, over a pool of kept-alive connections.
//
// It exists for speed: http.Transport hands every request to a writer and
// a reader goroutine of the connection and waits for them on channels,
// three goroutine switches a request that cost the gateway a tenth of its
// keep-alive rate and much of its added latency on two cores. It takes only
// what it can take safely: requests without a body, with a safe method and
// not asking for a protocol upgrade (repeatable and not an upgrade: a
// connection found closed by the upstream can be retried on a new one, and
// nothing needs writing while the answer is read). Everything else goes to
// the http.Transport beside it.
type inlineTransport struct {
	addr        string // host:port
	dialer      net.Dialer
	maxIdle     int
	idleTimeout time.Duration
	now         func() time.Time

	mu   sync.Mutex
	idle []*upConn // most recently used last
}

type upConn struct {
	c         net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

func newInlineTransport(addr string) *inlineTransport {
	return &inlineTransport{
		addr:        addr,
		dialer:      net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle:     64,
		idleTimeout: 90 * time.Second,
		now:         time.Now,
	}
}

// takes reports whether req is one for the inline transport.
func (t *inlineTransport) takes(req *http.Request) bool {
	return repeatable(req) && req.Header.Get("Upgrade") == ""
}

// errUnaskedUpgrade is an upstream's 101 to a request that asked for no
// upgrade.
var errUnaskedUpgrade = errors.New("upstream switched protocols unasked")

func (t *inlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := t.send(req.Context(), func(uc *upConn) (*http.Response, error) { return t.exchange(req, uc) })
	return resp, err
}

// send runs exchange on a pooled connection, and once more on a new one
// when the pooled one proves stale: the upstream closed the kept-alive
// connection as the request went out on it (callers send only requests
// that repeat safely). It returns the connection the answer came on.
func (t *inlineTransport) send(ctx context.Context, exchange func(*upConn) (*http.Response, error)) (*http.Response, *upConn, error) {
	uc, reused, err := t.conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	resp, err := exchange(uc)
	if err != nil && reused && ctx.Err() == nil && stale(err) {
		if uc, err = t.dial(ctx); err != nil {
			return nil, nil, err
		}
		resp, err = exchange(uc)
	}
	return resp, uc, err
}

// readAnswer reads the final answer to req: 1xx interim answers (103
// Early Hints) are not passed on; a 101 nobody asked for is an error.
func readAnswer(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		resp, err := http.ReadResponse(br, req)
		switch {
		case err != nil:
			return nil, err
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errUnaskedUpgrade
		case resp.StatusCode >= 200:
			return resp, nil
		}
	}
}

// exchange writes req on uc and reads the answer's head; its body, read by
// the caller, gives uc back to the pool at its end.
func (t *inlineTransport) exchange(req *http.Request, uc *upConn) (*http.Response, error) {
	// A client going away while the upstream thinks ends the wait: the
	// deadline makes the blocked read return.
	stop := context.AfterFunc(req.Context(), func() { uc.c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		uc.c.Close()
		return nil, err
	}
	if err := req.Write(uc.bw); err != nil {
		return fail(err)
	}
	if err := uc.bw.Flush(); err != nil {
		return fail(err)
	}
	resp, err := readAnswer(uc.br, req)
	if err != nil {
		return fail(err)
	}
	reuse := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		t.release(uc, stop, reuse)
		return resp, nil
	}
	resp.Body = &inlineBody{rc: resp.Body, t: t, uc: uc, stop: stop, reuse: reuse}
	return resp, nil
}

// stale reports whether err may be a kept-alive connection the upstream
// had closed: an end of stream (http.ReadResponse reports one before the
// answer's first line as io.ErrUnexpectedEOF) or a failed read or write.
// The request is repeatable, so a wrong guess costs only a second try.
func stale(err error) bool {
	var op *net.OpError
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.As(err, &op) && (op.Op == "read" || op.Op == "write")
}

// conn returns an idle connection, or a new one; reused says which.
func (t *inlineTransport) conn(ctx context.Context) (uc *upConn, reused bool, err error) {
	now := t.now()
	t.mu.Lock()
	for len(t.idle) > 0 {
		uc = t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if now.Sub(uc.idleSince) < t.idleTimeout {
			t.mu.Unlock()
			return uc, true, nil
		}
		uc.c.Close()
	}
	t.mu.Unlock()
	uc, err = t.dial(ctx)
	return uc, false, err
}

func (t *inlineTransport) dial(ctx context.Context) (*upConn, error) {
	c, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	return &upConn{c: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

// release gives uc back to the pool, or closes it when it cannot carry
// another request: the upstream or the client asked to close, the client's
// going away set a deadline on it, or bytes the answer did not account for
// wait on it.
func (t *inlineTransport) release(uc *upConn, stop func() bool, reuse bool) {
	if !stop() || uc.br.Buffered() > 0 {
		reuse = false
	}
	if !reuse {
		uc.c.Close()
		return
	}
	uc.idleSince = t.now()
	t.mu.Lock()
	if len(t.idle) < t.maxIdle {
		t.idle = append(t.idle, uc)
		uc = nil
	}
	t.mu.Unlock()
	if uc != nil {
		uc.c.Close()
	}
}

// CloseIdleConnections closes the pooled connections (on reload: the old
// upstreams may be gone from the new configuration).
func (t *inlineTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, uc := range idle {
		uc.c.Close()
	}
}

// inlineBody is an answer's body: read to its end, it gives the
// connection back to the pool; closed before, it closes the connection
// (reading the rest could take as long as the upstream likes).
type inlineBody struct {
	rc    io.ReadCloser
	t     *inlineTransport
	uc    *upConn
	stop  func() bool
	reuse bool
	done  bool
}

func (b *inlineBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	switch {
	case err == io.EOF:
		b.done = true
		b.t.release(b.uc, b.stop, b.reuse)
	case err != nil:
		b.done = true
		b.t.release(b.uc, b.stop, false)
	}
	return n, err
}

func (b *inlineBody) Close() error {
	if !b.done {
		b.done = true
		b.t.release(b.uc, b.stop, false)
	}
	return nil
}
