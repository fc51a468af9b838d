package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/mtlsid/mtlsid/authority"
	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// Event stream limits.
const (
	// maxEventStreams bounds the open /v1/events streams of one node; one
	// more is answered 503 with ER 1106 and Retry-After.
	maxEventStreams = 512
	// eventKeepAlive is how often an idle stream carries a comment, so
	// that proxies and clients notice a dead connection.
	eventKeepAlive = 15 * time.Second
)

// eventStreams serves GET /v1/events: changes that make a cached answer
// stale, as Server-Sent Events, to services authenticated by an API
// certificate. The events come from every node sharing the database (see
// authority.Subscribe).
//
// A revocation is
//
//	event: revoked
//	data: <decimal serial>
//
// and goes to every stream: serials of revoked certificates are public
// (the CRL lists them). A role granted to or taken from an identity at
// the caller's service goes to that service's streams only, once per
// certificate of the identity that is neither revoked nor expired:
//
//	event: roles
//	data: <decimal serial>
//
// Other changes of what a service knows of an identity (local user,
// trust, consent) are not streamed: a service's cache TTL bounds them.
//
// The stream ends (and the client reconnects and starts over) when the
// node's own feed of events reconnected and may have missed some.
type eventStreams struct {
	auth *authority.Authority
	open atomic.Int64
	done chan struct{} // closed at Shutdown: every stream ends
	once sync.Once
}

func newEventStreams(auth *authority.Authority) *eventStreams {
	return &eventStreams{auth: auth, done: make(chan struct{})}
}

// shutdown ends every stream, so that http.Server.Shutdown does not wait
// for them until its deadline.
func (e *eventStreams) shutdown() { e.once.Do(func() { close(e.done) }) }

func (e *eventStreams) refuse(w http.ResponseWriter, status int, outcome, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{idwire.ObjSimpleResponse: idwire.SimpleResponse{Outcome: outcome, Message: message}})
}

func (e *eventStreams) serve(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		e.refuse(w, http.StatusUnauthorized, idwire.ER1100, "present your service's API certificate (mTLS)")
		return
	}
	caller, err := e.auth.APICaller(r.Context(), r.TLS.PeerCertificates[0])
	if err != nil {
		switch mtlsid.ErrorKind(err) {
		case mtlsid.KindRevoked:
			e.refuse(w, http.StatusUnauthorized, idwire.ER1103, "")
		case mtlsid.KindExpired:
			e.refuse(w, http.StatusUnauthorized, idwire.ER1102, "")
		case mtlsid.KindForbidden:
			e.refuse(w, http.StatusForbidden, idwire.ER0012, "call with a service's API certificate, not a person's")
		case mtlsid.KindUnavailable:
			e.refuse(w, http.StatusServiceUnavailable, idwire.ER1106, "temporarily unavailable; retry")
		default:
			e.refuse(w, http.StatusUnauthorized, idwire.ER1101, "")
		}
		return
	}
	if e.open.Add(1) > maxEventStreams {
		e.open.Add(-1)
		e.refuse(w, http.StatusServiceUnavailable, idwire.ER1106, "too many event streams; retry")
		return
	}
	defer e.open.Add(-1)
	events, cancel := e.auth.Subscribe()
	defer cancel()

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // the server's WriteTimeout would end the stream
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// retry: how long a client waits before reconnecting, in ms.
	if _, err := io.WriteString(w, "retry: 1000\n: mtlsid events\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(eventKeepAlive)
	defer tick.Stop()
	for {
		var msg string
		select {
		case <-r.Context().Done():
			return
		case <-e.done:
			return
		case ev, ok := <-events:
			if !ok {
				return // fell behind, or events were missed: the client starts over
			}
			msg = eventMessage(ev, caller.Service.ID)
			if msg == "" {
				continue
			}
			if ev.Kind == mtlsid.EventRevoked && ev.Serial == caller.Cert.Serial {
				_, _ = io.WriteString(w, msg)
				_ = rc.Flush()
				return // the caller's own certificate: it may listen no longer
			}
		case <-tick.C:
			msg = ": keep-alive\n\n"
		}
		_ = rc.SetWriteDeadline(time.Now().Add(eventKeepAlive))
		if _, err := io.WriteString(w, msg); err != nil || rc.Flush() != nil {
			return
		}
		_ = rc.SetWriteDeadline(time.Time{})
	}
}

// eventMessage is ev as the stream of a caller of service sends it, or ""
// if that caller is not told of it.
func eventMessage(ev authority.Event, service string) string {
	switch ev.Kind {
	case mtlsid.EventRevoked:
		return "event: revoked\ndata: " + ev.Serial + "\n\n"
	case mtlsid.EventRoles:
		if ev.ServiceID != service {
			return ""
		}
		var b strings.Builder
		for _, serial := range ev.Serials {
			b.WriteString("event: " + string(ev.Kind) + "\ndata: " + serial + "\n\n")
		}
		return b.String()
	}
	return ""
}
