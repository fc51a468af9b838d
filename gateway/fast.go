package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid/sdk"
)

// The fast path serves the common request of an HTTP perimeter without
// net/http: a GET or HEAD over HTTP/1.1, with a verified client
// certificate, on a path whose rule enforces roles the person holds, to a
// plain-HTTP upstream. It reads the request's head in place, writes the
// upstream's request from it (the stripped and hop-by-hop headers left
// out, the forwarded identity added), and writes the answer back, on the
// connection's own goroutine.
//
// It exists for speed: net/http's server and httputil.ReverseProxy cost
// the gateway about twice nginx's CPU per proxied request (a goroutine
// and a read per request for the background read, a context, the header
// maps in and out), which held it to about 0.6 of nginx's keep-alive rate
// on two cores.
//
// Every other request, and anything unusual in one (a body, an upgrade,
// a header it does not parse, a path the rules read otherwise, a person
// not identified or without the role, an upstream that fails), goes to
// net/http with the connection (handoff.go): the slow path then decides
// and answers exactly as it does for every connection, pages included.
// The fast path never answers a request it does not forward.

const (
	handshakeTimeout  = 10 * time.Second  // as net/http's, from ReadHeaderTimeout
	readHeaderTimeout = 10 * time.Second  // from a request's first byte to its head's end
	idleTimeout       = 120 * time.Second // between requests
	fastHeadMax       = 8 << 10           // larger heads go to net/http (MaxHeaderBytes 64 KiB)
	fastInlineBody    = 16 << 10          // bodies up to this are written with the head
)

// acceptFast accepts l's connections and serves each on the fast path
// until the listener is closed.
func (g *Gateway) acceptFast(l *listener) error {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// As net/http: a failed accept (out of files) is retried after
			// a growing pause, not fatal.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			g.log.Warn("accept failed", "listen", l.ln.Addr().String(), "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		go g.serveConn(l, c)
	}
}

// fastConn is a connection on the fast path.
type fastConn struct {
	g        *Gateway
	l        *listener
	raw      net.Conn
	tc       *tls.Conn
	cs       tls.ConnectionState
	chain    []*x509.Certificate // the verified chain
	br       *bufio.Reader
	ctx      context.Context
	remote   string // the client's address
	clientIP string
	idle     atomic.Bool // waiting for a request: shutdown may close it

	out, wbuf []byte
	resReq    http.Request // the request http.ReadResponse reads the answer to (its method)
	// The forwarded identity's header lines, kept for the next request
	// of the same person under the same perimeter.
	identOf  *sdk.Profile
	identPer *perimeter
	ident    []byte
}

func (g *Gateway) serveConn(l *listener, raw net.Conn) {
	c := &fastConn{g: g, l: l, raw: raw}
	c.idle.Store(true)
	if !l.fast.add(c) {
		raw.Close()
		return
	}
	defer l.fast.remove(c)
	// Counted while here; net/http counts a connection handed to it itself.
	l.srv.ConnState(raw, http.StateNew)
	defer l.srv.ConnState(raw, http.StateClosed)
	handed := false
	defer func() {
		if !handed {
			raw.Close()
		}
	}()
	tc := tls.Server(raw, l.srv.TLSConfig)
	c.tc = tc
	tc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := tc.Handshake(); err != nil {
		g.log.Debug("TLS handshake failed", "client", raw.RemoteAddr().String(), "err", err)
		return
	}
	tc.SetDeadline(time.Time{})
	c.cs = tc.ConnectionState()
	if c.cs.NegotiatedProtocol == "h2" {
		handed = l.handoff(tc, nil, &c.cs)
		return
	}
	if len(c.cs.VerifiedChains) > 0 {
		c.chain = c.cs.VerifiedChains[0]
	}
	c.remote = raw.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(c.remote); err == nil {
		c.clientIP = host
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.ctx = ctx
	c.br = bufio.NewReaderSize(tc, fastHeadMax)
	if c.loop() {
		handed = l.handoff(tc, c.br, &c.cs)
	}
}

// loop serves requests until the connection ends (false) or one must go
// to net/http (true).
func (c *fastConn) loop() bool {
	for {
		c.idle.Store(true)
		if c.l.fast.closing.Load() {
			return false
		}
		if c.br.Buffered() == 0 {
			c.tc.SetReadDeadline(time.Now().Add(idleTimeout))
			if _, err := c.br.Peek(1); err != nil {
				return false
			}
		}
		c.idle.Store(false)
		c.tc.SetReadDeadline(time.Now().Add(readHeaderTimeout))
		head, err := c.peekHead()
		if err != nil {
			return false
		}
		if head == nil {
			return true
		}
		c.tc.SetReadDeadline(time.Time{})
		switch c.serve(head) {
		case served:
		case servedClose, broken:
			return false
		case slow:
			return true
		}
	}
}

// peekHead returns the request head at the start of the buffer, through
// its empty line, without consuming it; nil when the buffer fills first.
func (c *fastConn) peekHead() ([]byte, error) {
	searched := 0
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if i := bytes.Index(buf[max(0, searched-3):], crlfcrlf); i >= 0 {
			return buf[:max(0, searched-3)+i+4], nil
		}
		if len(buf) >= fastHeadMax {
			return nil, nil
		}
		searched = len(buf)
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

var crlfcrlf = []byte("\r\n\r\n")

type outcome int

const (
	served      outcome = iota
	servedClose         // served; the client asked to close
	slow                // not taken: net/http serves it, from its first byte
	broken              // failed after the answer began: close
)

// serve proxies the request whose head is head, or reports slow having
// written nothing and consumed nothing.
func (c *fastConn) serve(head []byte) outcome {
	start := time.Now()
	st := c.g.cur.Load()
	gr, _ := st.sites[c.l.key].(*group)
	if gr == nil || st.mw.TrustsProxies() {
		return slow
	}
	p := gr.pick(c.cs.ServerName)
	if p == nil {
		return slow
	}
	hi, out, ok := parseHead(head, p.strip, c.out[:0])
	c.out = out
	if !ok || gr.pick(hostname(hi.host)) != p {
		return slow
	}
	path := string(hi.path)
	r := p.rule(path)
	if !r.fast {
		return slow
	}
	prof, err := st.mw.IdentifyTLS(c.ctx, &c.cs)
	if err != nil || !rolesOK(r.cfg.Roles, prof) {
		return slow
	}
	b := p.up.pick(nil)
	if b.inline == nil || !b.bare {
		return slow
	}
	if prof != c.identOf || p != c.identPer {
		c.ident = p.cfg.Headers.appendIdentity(c.ident[:0], prof, c.chain, &p.certs)
		c.identOf, c.identPer = prof, p
	}
	out = append(out, "X-Forwarded-For: "...)
	out = append(out, c.clientIP...)
	out = append(out, "\r\nX-Forwarded-Host: "...)
	out = append(out, hi.host...)
	out = append(out, "\r\nX-Forwarded-Proto: https\r\n"...)
	out = append(out, c.ident...)
	out = append(out, "\r\n"...)
	c.out = out

	resp, uc, err := b.inline.send(c.ctx, func(uc *upConn) (*http.Response, error) { return c.exchange(uc, hi.method) })
	if err != nil {
		if dialFailed(err) {
			p.up.failed(b, err) // marked down; net/http tries another, or answers the failure
		}
		return slow // net/http sends it once more (GET and HEAD repeat), and answers a failure
	}
	c.br.Discard(len(head))
	n, err := c.respond(resp, hi, uc)
	if err != nil {
		// Closed first: closing the body would otherwise read it to its
		// end, which for a stream may never come.
		uc.c.Close()
		resp.Body.Close()
		c.g.log.Debug("answer not relayed", "perimeter", p.cfg.Name, "upstream", b.raw, "err", err)
		return broken
	}
	resp.Body.Close()
	b.inline.release(uc, noStop, !resp.Close)
	c.g.metrics.fastRequests.Inc()
	c.g.logRequest(c.ctx, p.cfg.Name, hi.method, path, resp.StatusCode, n, time.Since(start), c.remote, DecisionAllowed, &c.cs, prof)
	if hi.close {
		return servedClose
	}
	return served
}

func noStop() bool { return true }

// exchange writes the request on uc and reads the answer's head.
func (c *fastConn) exchange(uc *upConn, method string) (*http.Response, error) {
	if _, err := uc.c.Write(c.out); err != nil {
		uc.c.Close()
		return nil, err
	}
	c.resReq.Method = method
	resp, err := readAnswer(uc.br, &c.resReq)
	if err != nil {
		uc.c.Close()
	}
	return resp, err
}

// hopHeaders are not relayed (RFC 9110 §7.6.1; as httputil.ReverseProxy),
// nor Content-Length, which the fast path writes itself.
var hopHeaders = map[string]bool{
	"Connection": true, "Proxy-Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true,
	"Proxy-Authorization": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Content-Length": true,
}

// respond writes resp to the client: its status and headers (not the
// hop-by-hop ones), and its body with a Content-Length when the upstream
// gave one, else chunked with the upstream's trailers. It returns the
// body's bytes written.
func (c *fastConn) respond(resp *http.Response, hi headInfo, uc *upConn) (int64, error) {
	code := resp.StatusCode
	w := append(c.wbuf[:0], "HTTP/1.1 "...)
	w = strconv.AppendInt(w, int64(code), 10)
	w = append(w, ' ')
	if t := http.StatusText(code); t != "" {
		w = append(w, t...)
	} else {
		w = append(w, "status code"...)
	}
	w = append(w, "\r\n"...)
	listed := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if hopHeaders[k] || len(listed) > 0 && connectionListed(listed, k) {
			continue
		}
		for _, v := range vs {
			w = appendField(w, k, v)
		}
	}
	if _, ok := resp.Header["Date"]; !ok {
		w = append(w, "Date: "...)
		w = time.Now().UTC().AppendFormat(w, http.TimeFormat)
		w = append(w, "\r\n"...)
	}
	bodyless := hi.method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	chunked := false
	switch {
	case code == http.StatusNoContent:
	case resp.ContentLength >= 0:
		w = append(w, "Content-Length: "...)
		w = strconv.AppendInt(w, resp.ContentLength, 10)
		w = append(w, "\r\n"...)
	case bodyless:
	default:
		chunked = true
		w = append(w, "Transfer-Encoding: chunked\r\n"...)
		if len(resp.Trailer) > 0 {
			w = append(w, "Trailer: "...)
			first := true
			for k := range resp.Trailer {
				if !first {
					w = append(w, ", "...)
				}
				w, first = append(w, k...), false
			}
			w = append(w, "\r\n"...)
		}
	}
	if hi.close {
		w = append(w, "Connection: close\r\n"...)
	}
	w = append(w, "\r\n"...)
	defer func() { c.wbuf = w[:0] }()
	if bodyless {
		_, err := c.tc.Write(w)
		return 0, err
	}
	if !chunked {
		n := resp.ContentLength
		if n <= fastInlineBody {
			l := len(w)
			w = slices.Grow(w, int(n))[:l+int(n)]
			if _, err := io.ReadFull(resp.Body, w[l:]); err != nil {
				return 0, err
			}
			_, err := c.tc.Write(w)
			return n, err
		}
		if _, err := c.tc.Write(w); err != nil {
			return 0, err
		}
		defer c.watch(uc)()
		buf := c.l.bufs.Get()
		defer c.l.bufs.Put(buf)
		k, err := io.CopyBuffer(writerOnly{c.tc}, io.LimitReader(resp.Body, n), buf)
		if err == nil && k < n {
			err = io.ErrUnexpectedEOF
		}
		return k, err
	}
	defer c.watch(uc)()
	buf := c.l.bufs.Get()
	defer c.l.bufs.Put(buf)
	var total int64
	for { // the head goes out with the first chunk
		k, err := resp.Body.Read(buf)
		if k > 0 {
			total += int64(k)
			w = strconv.AppendInt(w, int64(k), 16)
			w = append(w, "\r\n"...)
			w = append(w, buf[:k]...)
			w = append(w, "\r\n"...)
			if _, err := c.tc.Write(w); err != nil {
				return total, err
			}
			w = w[:0]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return total, err
		}
	}
	w = append(w, "0\r\n"...)
	for k, vs := range resp.Trailer {
		for _, v := range vs {
			w = appendField(w, k, v)
		}
	}
	w = append(w, "\r\n"...)
	_, err := c.tc.Write(w)
	return total, err
}

// watch closes uc if the client goes away while an answer streams to
// it, which ends the wait for the upstream's next bytes (as net/http's
// background read ends a request's context). The returned func stops the
// watch; it must be called before uc is reused.
func (c *fastConn) watch(uc *upConn) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Bytes from the client (a pipelined request) end the watch too;
		// they stay buffered for the loop.
		if _, err := c.br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			uc.c.Close()
		}
	}()
	return func() {
		c.tc.SetReadDeadline(time.Unix(1, 0)) // a timeout leaves the TLS connection usable
		<-done
		c.tc.SetReadDeadline(time.Time{})
	}
}

// writerOnly hides the TLS connection's ReadFrom, if any, from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// connectionListed reports whether the Connection header values name k.
func connectionListed(values []string, k string) bool {
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(tok)) == k {
				return true
			}
		}
	}
	return false
}

// hostname is host without its port.
func hostname(host []byte) string {
	if len(host) > 0 && host[0] == '[' {
		if i := bytes.IndexByte(host, ']'); i > 0 {
			return string(host[1:i])
		}
		return string(host)
	}
	if i := bytes.LastIndexByte(host, ':'); i >= 0 {
		return string(host[:i])
	}
	return string(host)
}
