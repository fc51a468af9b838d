package agent

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid/internal/atomicfile"
)

// Agent renews a set of identities for as long as it runs. Create it with
// its fields set; Run is not safe to call twice at once.
type Agent struct {
	Engine     *Engine
	Identities []Identity
	// StatusFile, if set, receives the state of every identity as JSON
	// after each attempt (written atomically).
	StatusFile string
	// MinBackoff and MaxBackoff bound the wait after a failed attempt,
	// which doubles from one to the next. Zero: 30 s and 1 h.
	MinBackoff, MaxBackoff time.Duration

	mu     sync.Mutex
	status map[string]*Status
}

// Status is one identity's state, as the status file shows it.
type Status struct {
	Name        string    `json:"name"`
	Serial      string    `json:"serial,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	NextAttempt time.Time `json:"next_attempt"`
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	Failures    int       `json:"consecutive_failures"`
}

// Snapshot returns the current status of every identity.
func (a *Agent) Snapshot() []Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Status
	for _, id := range a.Identities {
		if s, ok := a.status[id.Name]; ok {
			out = append(out, *s)
		}
	}
	return out
}

// Once renews every identity that is due now, as cron would, and returns
// the first error (after trying them all).
func (a *Agent) Once(ctx context.Context) error {
	var first error
	for _, id := range a.Identities {
		if a.Engine.now().Before(a.Engine.Next(id)) {
			continue
		}
		if _, err := a.Engine.Renew(ctx, id, false); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Run renews each identity when due until ctx ends. After a failure it
// retries with backoff and says so in its log and status; it never gives
// up while ctx lives.
func (a *Agent) Run(ctx context.Context) error {
	minB, maxB := a.MinBackoff, a.MaxBackoff
	if minB <= 0 {
		minB = 30 * time.Second
	}
	if maxB <= 0 {
		maxB = time.Hour
	}
	a.mu.Lock()
	a.status = map[string]*Status{}
	for _, id := range a.Identities {
		s := &Status{Name: id.Name, NextAttempt: a.Engine.Next(id)}
		if cert, err := id.Files.Certificate(); err == nil {
			s.Serial, s.NotAfter = cert.SerialNumber.String(), cert.NotAfter
		}
		a.status[id.Name] = s
	}
	a.mu.Unlock()
	a.writeStatus()
	for {
		next, id := a.earliest()
		if id == nil {
			return nil
		}
		a.Engine.log().Info("next renewal check", "identity", id.Name, "at", next)
		if !sleepUntil(ctx, a.Engine, next) {
			return ctx.Err()
		}
		out, err := a.Engine.Renew(ctx, *id, false)
		now := a.Engine.now()
		a.mu.Lock()
		s := a.status[id.Name]
		s.LastAttempt = now
		switch {
		case err != nil && out == nil:
			s.Failures++
			s.LastError = err.Error()
			wait := min(maxB, minB<<min(s.Failures-1, 20))
			wait = wait/2 + time.Duration(rand.Int64N(int64(wait/2)+1))
			s.NextAttempt = now.Add(wait)
			a.Engine.log().Warn("renewal failed; will retry", "identity", id.Name, "retry_in", wait.Round(time.Second), "failures", s.Failures, "err", err)
		default:
			s.Failures, s.LastError = 0, ""
			if err != nil { // renewed, but the reload hook failed
				s.LastError = err.Error()
				a.Engine.log().Error("reload hook failed", "identity", id.Name, "err", err)
			}
			s.Serial, s.NotAfter = out.Serial, out.NotAfter
			if out.Renewed {
				s.LastRenewal = now
			}
			s.NextAttempt = a.Engine.Next(*id)
			if !out.Renewed && !out.Due.IsZero() && out.Due.After(s.NextAttempt) {
				s.NextAttempt = out.Due
			}
			if !s.NextAttempt.After(now) { // the authority disagrees: do not spin
				s.NextAttempt = now.Add(minB)
			}
		}
		a.mu.Unlock()
		a.writeStatus()
	}
}

func (a *Agent) earliest() (time.Time, *Identity) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var best *Identity
	var at time.Time
	for i := range a.Identities {
		s := a.status[a.Identities[i].Name]
		if best == nil || s.NextAttempt.Before(at) {
			best, at = &a.Identities[i], s.NextAttempt
		}
	}
	return at, best
}

func (a *Agent) writeStatus() {
	if a.StatusFile == "" {
		return
	}
	b, err := json.MarshalIndent(a.Snapshot(), "", "  ")
	if err == nil {
		err = atomicfile.Write(a.StatusFile, append(b, '\n'), 0o644)
	}
	if err != nil {
		a.Engine.log().Error("write status file", "file", a.StatusFile, "err", err)
	}
}

// sleepUntil waits for the engine's clock to reach t, checking at least
// every minute so that a clock jump (suspend, NTP) is noticed.
func sleepUntil(ctx context.Context, e *Engine, t time.Time) bool {
	for {
		d := t.Sub(e.now())
		if d <= 0 {
			return true
		}
		timer := time.NewTimer(min(d, time.Minute))
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}
