package sdk

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	idwire "github.com/mtlsid/mtlsid/identityapi/wire"
)

// EventsPath is where the authority streams events (Server-Sent Events,
// the serial as data).
const EventsPath = idwire.Path + "/events"

// The kinds of event the authority streams. Each names a certificate whose
// cached answer is stale.
const (
	// EventRevoked: the certificate was revoked. Every stream carries
	// every revocation.
	EventRevoked = "revoked"
	// EventRoles: a role of the certificate's holder at the caller's
	// service was granted or taken away.
	EventRoles = "roles"
)

// Event is one event of the authority's stream.
type Event struct {
	Kind   string // EventRevoked or EventRoles
	Serial string // decimal
}

// WatchEvents follows the authority's event stream until ctx ends,
// calling fn for every event, and connected each time the stream
// (re)connects: events sent while it was down were missed, so a cache
// should start over. The authority sends the events of every node of a
// fleet, and ends the stream when it may itself have missed some. It
// reconnects with backoff (up to 30 s) and returns ctx's error. Either
// callback may be nil; they run on the watching goroutine. Events of kinds
// this package does not know are skipped.
func (c *IdentityClient) WatchEvents(ctx context.Context, fn func(Event), connected func()) error {
	// The stream outlives any client timeout: use the transport alone.
	hc := &http.Client{Transport: c.HTTP.Transport}
	wait := time.Duration(0)
	for {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
		}
		start := time.Now()
		err := c.stream(ctx, hc, fn, connected)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log().Warn("event stream ended; reconnecting", "err", err)
		if time.Since(start) > time.Minute {
			wait = 0
		}
		wait = min(max(2*wait, 250*time.Millisecond), 30*time.Second)
	}
}

// WatchRevocations is WatchEvents for revocations alone: revoked gets the
// decimal serial of every certificate revoked.
func (c *IdentityClient) WatchRevocations(ctx context.Context, revoked func(serial string), connected func()) error {
	return c.WatchEvents(ctx, func(ev Event) {
		if ev.Kind == EventRevoked && revoked != nil {
			revoked(ev.Serial)
		}
	}, connected)
}

// watchCache keeps cache in step with the event stream: a revoked
// certificate is dropped and answers "revoked" at once; one whose roles
// changed is dropped, and asked about again at its next use.
func (c *IdentityClient) watchCache(ctx context.Context, cache *cache, connected func()) error {
	return c.WatchEvents(ctx, func(ev Event) {
		switch ev.Kind {
		case EventRevoked:
			cache.revoke(ev.Serial)
		case EventRoles:
			cache.stale(ev.Serial)
		}
	}, connected)
}

// stale drops the answer about serial if it identified the holder: its
// roles changed. A refusal (PB 0003: not shared yet) stays, since roles do
// not change it. A positive answer in flight may predate the change, so it
// is not cached.
func (c *cache) stale(serial string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.bySerial[serial]; e != nil && e.res.err == nil {
		c.remove(e)
	}
	if f := c.flights[serial]; f != nil {
		f.stale = true
	}
}

func (c *IdentityClient) stream(ctx context.Context, hc *http.Client, fn func(Event), connected func()) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.URL, "/")+EventsPath, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return fmt.Errorf("sdk: event stream answered %s", resp.Status)
	}
	if connected != nil {
		connected()
	}
	return ReadEvents(resp.Body, func(event, data string) {
		switch event {
		case EventRevoked, EventRoles:
			if fn != nil {
				fn(Event{Kind: event, Serial: data})
			}
		}
	})
}

// ReadEvents parses a Server-Sent Events stream (the subset the authority
// sends: event, data, comments, retry), calling fn for every event until
// r ends. Lines are limited to 4 KiB.
func ReadEvents(r io.Reader, fn func(event, data string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096)
	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data.Len() > 0 || event != "" {
				if event == "" {
					event = "message"
				}
				fn(event, strings.TrimSuffix(data.String(), "\n"))
			}
			event = ""
			data.Reset()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			if data.Len()+len(value) > 4096 {
				return fmt.Errorf("sdk: event too large")
			}
			data.WriteString(value)
			data.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}
