package server

import (
	"context"
	"time"
)

// CleanupLease names the lease of the clean-up job.
const CleanupLease = "cleanup"

// Timing of the clean-up job.
const (
	// cleanupEvery is how often the lease holder cleans up.
	cleanupEvery = time.Hour
	// intentRetention is how long an expired intent is kept: for a day
	// its reference still gets "expired" rather than "unknown".
	intentRetention = 24 * time.Hour
	// purgeBatch bounds the rows one purge transaction deletes.
	purgeBatch = 1000
)

// runCleanup runs the clean-up job until ctx ends: the node holding its
// lease deletes, hourly, the intents that expired more than a day ago.
// Tokens, invites and certificates stay: the audit chain and the pages
// refer to them.
func (s *Server) runCleanup(ctx context.Context) {
	l := &lease{
		store: s.cfg.Store, name: CleanupLease, holder: s.node, ttl: s.leaseTTL, now: s.now, log: s.log,
		gauge: s.metrics.leases.WithLabelValues(CleanupLease),
	}
	defer l.release(ctx)
	tick := time.NewTicker(s.leaseTTL / 3)
	defer tick.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if !l.hold(ctx) || s.now().Sub(last) < cleanupEvery {
			continue
		}
		last = s.now()
		n, err := s.cfg.Store.PurgeIntents(ctx, last.Add(-intentRetention), purgeBatch)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("purge of expired intents failed; retrying in an hour", "purged", n, "err", err)
		case n > 0:
			s.log.Info("expired intents purged", "purged", n)
		}
	}
}
