package server

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// splitListener divides one listener's connections by their first byte:
// a TLS handshake record (0x16) goes to the TLS side, anything else to the
// plain-HTTP side. This lets one port serve HTTPS and the plain-HTTP
// revocation routes that RFC 5280 relying parties fetch, so certificates
// can name an http:// OCSP and CRL URL on the same port.
type splitListener struct {
	ln        net.Listener
	tls       *chanListener
	plain     *chanListener
	closeOnce sync.Once
	done      chan struct{}
}

// sniffTimeout bounds how long a connection may stay silent before its
// first byte; it keeps idle connections from piling up.
const sniffTimeout = 10 * time.Second

func newSplitListener(ln net.Listener) *splitListener {
	s := &splitListener{ln: ln, done: make(chan struct{})}
	s.tls = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: s.done, close: s.Close}
	s.plain = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: s.done, close: s.Close}
	go s.accept()
	return s
}

func (s *splitListener) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		err = s.ln.Close()
	})
	return err
}

func (s *splitListener) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.Close()
			return
		}
		go s.route(c)
	}
}

func (s *splitListener) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 1)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	target := s.plain
	if first[0] == 0x16 {
		target = s.tls
	}
	select {
	case target.conns <- &peekedConn{Conn: c, r: br}:
	case <-s.done:
		c.Close()
	}
}

// peekedConn is a connection whose first byte sits in r.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// chanListener is one side of a splitListener.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	close func() error
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { return l.close() }
func (l *chanListener) Addr() net.Addr { return l.addr }
