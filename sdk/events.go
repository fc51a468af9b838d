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

// EventsPath is where the authority streams revocations (Server-Sent
// Events, one "revoked" event per certificate, the serial as data).
const EventsPath = idwire.Path + "/events"

// WatchRevocations follows the authority's revocation stream until ctx
// ends, calling revoked with the decimal serial of every certificate
// revoked, and connected each time the stream (re)connects: revocations
// made while it was down were missed, so a cache should start over. It
// reconnects with backoff (up to 30 s) and returns ctx's error. Either
// callback may be nil; they run on the watching goroutine.
//
// Each authority node streams only its own revocations until fleet mode
// lands: behind a load balancer, keep the cache's TTL short.
func (c *IdentityClient) WatchRevocations(ctx context.Context, revoked func(serial string), connected func()) error {
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
		err := c.stream(ctx, hc, revoked, connected)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log().Warn("revocation stream ended; reconnecting", "err", err)
		if time.Since(start) > time.Minute {
			wait = 0
		}
		wait = min(max(2*wait, 250*time.Millisecond), 30*time.Second)
	}
}

func (c *IdentityClient) stream(ctx context.Context, hc *http.Client, revoked func(string), connected func()) error {
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
		if event == "revoked" && revoked != nil {
			revoked(data)
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
