package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HTTP1 is a lean keep-alive HTTP/1.1 client over TLS: each request is
// prepared bytes written on a pooled connection used by one request at a
// time, and its answer is read with net/http's own parser in the calling
// goroutine. It exists because http.Transport hands every request to two
// goroutines of its connection and back, which on a machine where the
// load generator and the server share two cores costs the generator about
// as much CPU as the server spends answering: the measurement was then of
// the two together. The pool holds at most as many connections as the
// run has workers.
type HTTP1 struct {
	addr  string
	tls   *tls.Config
	wait  time.Duration
	conns chan *conn1
}

type conn1 struct {
	c   *tls.Conn
	r   *bufio.Reader
	buf []byte
}

// NewHTTP1 returns a client for the TLS server at addr (host:port) keeping
// up to size connections. timeout bounds each request.
func NewHTTP1(addr string, cfg *tls.Config, size int, timeout time.Duration) *HTTP1 {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &HTTP1{addr: addr, tls: cfg, wait: timeout, conns: make(chan *conn1, size)}
}

// Do writes req, a whole HTTP/1.1 request, and returns the answer's status
// and body. The body is valid until the next call. A request that fails
// on a connection that had served others is tried once more on a new one:
// the server may have closed it while it was idle. Only requests that
// change nothing should be sent through Do.
func (h *HTTP1) Do(ctx context.Context, req []byte) (int, []byte, error) {
	c, reused, err := h.get(ctx)
	if err != nil {
		return 0, nil, err
	}
	status, body, keep, err := h.exchange(c, req)
	if err != nil && reused && ctx.Err() == nil {
		if c, err = h.dial(ctx); err != nil {
			return 0, nil, err
		}
		status, body, keep, err = h.exchange(c, req)
	}
	if err != nil {
		return 0, nil, err
	}
	if !keep {
		return status, body, nil
	}
	select {
	case h.conns <- c:
	default:
		c.c.Close()
	}
	return status, body, nil
}

// Close closes the idle connections.
func (h *HTTP1) Close() {
	for {
		select {
		case c := <-h.conns:
			c.c.Close()
		default:
			return
		}
	}
}

func (h *HTTP1) get(ctx context.Context) (*conn1, bool, error) {
	select {
	case c := <-h.conns:
		return c, true, nil
	default:
	}
	c, err := h.dial(ctx)
	return c, false, err
}

func (h *HTTP1) dial(ctx context.Context) (*conn1, error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: h.wait}, Config: h.tls}
	nc, err := d.DialContext(ctx, "tcp", h.addr)
	if err != nil {
		return nil, err
	}
	tc := nc.(*tls.Conn)
	if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != "http/1.1" {
		tc.Close()
		return nil, fmt.Errorf("loadgen: server chose %q, not HTTP/1.1", p)
	}
	return &conn1{c: tc, r: bufio.NewReaderSize(tc, 16<<10)}, nil
}

var errBodyTooLarge = errors.New("loadgen: answer body over 4 MiB")

// exchange sends one request and reads its answer; keep says whether the
// connection may serve another.
func (h *HTTP1) exchange(c *conn1, req []byte) (status int, body []byte, keep bool, err error) {
	fail := func(err error) (int, []byte, bool, error) {
		c.c.Close()
		return 0, nil, false, err
	}
	if err := c.c.SetDeadline(time.Now().Add(h.wait)); err != nil {
		return fail(err)
	}
	if _, err := c.c.Write(req); err != nil {
		return fail(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return fail(err)
	}
	if n := resp.ContentLength; n >= 0 {
		if n > 4<<20 {
			return fail(errBodyTooLarge)
		}
		if int64(cap(c.buf)) < n {
			c.buf = make([]byte, n)
		}
		c.buf = c.buf[:n]
		_, err = io.ReadFull(resp.Body, c.buf)
	} else {
		c.buf, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20+1))
		if err == nil && len(c.buf) > 4<<20 {
			err = errBodyTooLarge
		}
	}
	if err != nil {
		return fail(err)
	}
	if resp.Close {
		c.c.Close() // the server closes it; the answer still counts
		return resp.StatusCode, c.buf, false, nil
	}
	return resp.StatusCode, c.buf, true, nil
}
