// Package connlimit caps how many connections a listener holds open at
// once. Timeouts bound how long a slow or silent client keeps a connection;
// the cap bounds how many it can keep, so that memory and file descriptors
// stay bounded under a flood of them (slowloris).
package connlimit

import (
	"net"
	"sync"
)

// Default is the cap used by serve and the gateway unless configured: well
// under the usual 65,536 open-file limit of a service, far above what two
// cores serve.
const Default = 10_000

// Listener wraps ln so that at most n of its connections are open at once.
// When n are open, Accept waits for one to close (the kernel's backlog
// holds new clients meanwhile), as nginx's worker_connections does. n <= 0
// means no cap.
func Listener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		return ln
	}
	return &listener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type listener struct {
	net.Listener
	sem       chan struct{}
	closeOnce sync.Once
	done      chan struct{}
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &conn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *listener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
