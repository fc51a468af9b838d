package server

import (
	"context"
	"time"

	"github.com/mtlsid/mtlsid"
)

// CRLLease names the lease of the CRL job.
const CRLLease = "crl"

// Timing of the CRL job.
const (
	// crlInterval is how often the lease holder signs a fresh CRL when
	// nothing is revoked (the CRL is valid for 7 days by default; a third
	// of a shorter validity is used instead).
	crlInterval = 24 * time.Hour
	// crlGrace is how long the lease holder lets the node that revoked a
	// certificate publish the CRL listing it before doing so itself (in
	// case that node died in between).
	crlGrace = 2 * time.Second
	// crlReload is how often a node that does not hold the lease reloads
	// the stored CRL without being told to, in case it missed an event.
	crlReload = 5 * time.Minute
)

// runCRL runs the CRL job until ctx ends. Every node serves the CRL stored
// in the database, reloading it when any node saves a new one (EventCRL).
// The node that revokes a certificate signs the new CRL at once
// (RevocationHook). The one node holding the CRL lease also signs one
// daily, and one listing any revocation whose CRL has not appeared within
// crlGrace.
func (s *Server) runCRL(ctx context.Context) {
	l := &lease{
		store: s.cfg.Store, name: CRLLease, holder: s.node, ttl: s.leaseTTL, now: s.now, log: s.log,
		gauge: s.metrics.leases.WithLabelValues(CRLLease),
	}
	defer l.release(ctx)
	events, cancel := s.cfg.Authority.Subscribe()
	defer func() { cancel() }()
	tick := time.NewTicker(s.leaseTTL / 3)
	defer tick.Stop()
	pending := map[string]time.Time{} // revoked serials, and when they were
	lastLoad := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				// Events may have been missed: start over.
				cancel()
				events, cancel = s.cfg.Authority.Subscribe()
				s.loadCRL(ctx)
				continue
			}
			switch ev.Kind {
			case mtlsid.EventCRL:
				s.loadCRL(ctx)
			case mtlsid.EventRevoked:
				pending[ev.Serial] = s.now()
			}
			continue
		case <-tick.C:
		}
		now := s.now()
		if !l.hold(ctx) {
			clear(pending)
			if now.Sub(lastLoad) >= crlReload {
				s.loadCRL(ctx)
				lastLoad = now
			}
			continue
		}
		refresh := s.crlStale()
		for serial, at := range pending {
			if now.Sub(at) < crlGrace {
				continue
			}
			if !s.crl.Lists(serial) {
				refresh = true
			}
			delete(pending, serial)
		}
		if refresh {
			if err := s.crl.Refresh(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("CRL refresh failed; retrying", "err", err)
			}
		}
	}
}

// crlStale reports whether the CRL served is missing or due to be signed
// anew.
func (s *Server) crlStale() bool {
	return s.crl.Current() == nil || s.now().Sub(s.crl.ThisUpdate()) >= s.crlEvery
}

// loadCRL serves the stored CRL if it is newer than this node's.
func (s *Server) loadCRL(ctx context.Context) {
	if _, err := s.crl.Load(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("stored CRL not loaded", "err", err)
	}
}
