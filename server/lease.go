package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/mtlsid/mtlsid"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultLeaseTTL is how long a fleet job's lease lasts unless its holder
// renews it, when Config.LeaseTTL is zero. Holders renew it every third of
// that, so a node that dies without a word passes its jobs on within
// about this long; one that stops cleanly gives them up at once.
const DefaultLeaseTTL = 10 * time.Second

// lease is one job's lease in the store (mtlsid.NoticeStore's lease
// methods, which the notifier uses too): in a fleet, the node holding it
// runs the job. It is used by one goroutine.
type lease struct {
	store  mtlsid.NoticeStore
	name   string
	holder string
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger
	gauge  prometheus.Gauge
	held   bool
}

// hold takes or extends the lease and reports whether this node holds it.
// A store that cannot be reached means "not held": the lease may expire
// meanwhile, and another node take it.
func (l *lease) hold(ctx context.Context) bool {
	ok, err := l.store.AcquireLease(ctx, l.name, l.holder, l.ttl, l.now())
	if err != nil && ctx.Err() == nil {
		l.log.Warn("lease not renewed", "lease", l.name, "err", err)
	}
	ok = ok && err == nil
	if ok != l.held {
		if ok {
			l.log.Info("lease taken: this node runs the job", "lease", l.name, "holder", l.holder)
		} else {
			l.log.Info("lease lost: another node runs the job", "lease", l.name, "holder", l.holder)
		}
	}
	l.held = ok
	if ok {
		l.gauge.Set(1)
	} else {
		l.gauge.Set(0)
	}
	return ok
}

// release gives the lease up, so that another node takes it at its next
// try instead of after the TTL.
func (l *lease) release(ctx context.Context) {
	l.gauge.Set(0)
	if !l.held {
		return
	}
	l.held = false
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := l.store.ReleaseLease(rctx, l.name, l.holder); err != nil {
		l.log.Warn("lease not released; it expires by itself", "lease", l.name, "err", err)
	}
}
