package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errIdle ends a relay on which no byte moved either way for the idle
// timeout.
var errIdle = errors.New("idle timeout")

// relay copies bytes both ways between client and upstream until both
// directions have ended, one fails, or no byte moved either way for idle.
// When one side ends its writing (EOF), the other side's write half is
// closed (TLS close_notify or TCP FIN) and the other direction goes on:
// protocols that half-close keep working. It closes neither connection;
// it returns the bytes sent each way and the first error other than EOF.
func relay(client, upstream net.Conn, idle time.Duration) (up, down int64, err error) {
	st := &relayState{idle: idle}
	st.last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	var upErr error
	wg.Go(func() {
		if up, upErr = st.pipe(upstream, client); upErr != nil {
			st.abort(client, upstream)
		}
	})
	down, downErr := st.pipe(client, upstream)
	if downErr != nil {
		st.abort(client, upstream)
	}
	wg.Wait()
	// The first cause, not the deadline abort set to stop the other side.
	for _, e := range []error{upErr, downErr} {
		if e != nil && !errors.Is(e, errAborted) {
			return up, down, e
		}
	}
	return up, down, nil
}

// errAborted ends the direction stopped because the other one failed.
var errAborted = errors.New("relay aborted")

// relayState is shared by the two directions of a relay.
type relayState struct {
	idle    time.Duration
	last    atomic.Int64 // unix nanoseconds of the last byte moved
	stopped atomic.Bool
}

// abort stops both directions: a deadline in the past unblocks reads.
func (st *relayState) abort(a, b net.Conn) {
	if st.stopped.Swap(true) {
		return
	}
	past := time.Unix(1, 0)
	a.SetDeadline(past)
	b.SetDeadline(past)
}

// pipe copies src to dst, then closes dst's write half.
func (st *relayState) pipe(dst, src net.Conn) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		if err := src.SetReadDeadline(time.Unix(0, st.last.Load()).Add(st.idle)); err != nil {
			return n, err
		}
		// Checked after the deadline is set: abort sets stopped before its
		// deadline in the past, so that one always wins.
		if st.stopped.Load() {
			return n, errAborted
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			st.last.Store(time.Now().UnixNano())
			if err := dst.SetWriteDeadline(time.Now().Add(st.idle)); err != nil {
				return n, err
			}
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				if st.stopped.Load() {
					return n, errAborted
				}
				return n, werr
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
			return n, nil
		case st.stopped.Load():
			return n, errAborted
		case errors.Is(rerr, os.ErrDeadlineExceeded):
			// The other direction may have moved bytes meanwhile: then
			// the loop sets a later deadline.
			if time.Since(time.Unix(0, st.last.Load())) >= st.idle {
				return n, errIdle
			}
		default:
			return n, rerr
		}
	}
}
