package authority

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/mtlsid/mtlsid"
)

// committer gathers issuances that arrive while a store transaction is in
// flight and writes them together in the next one (group commit). A caller
// is answered only after its item's transaction has committed, so nothing
// acknowledged can be lost, and each item still succeeds or fails whole.
type committer struct {
	store    mtlsid.Store
	maxBatch int
	log      *slog.Logger
	queue    chan *pending
	done     chan struct{}
	stopOnce sync.Once
	stopped  chan struct{}
}

type pending struct {
	item   mtlsid.Issuance
	result chan error
}

// errClosed is returned for issuances submitted after Close.
var errClosed = mtlsid.Errorf(mtlsid.KindUnavailable, "authority is shutting down")

// batchTimeout bounds one store transaction. A caller that gives up earlier
// may still see its certificate committed; it was never acknowledged, so
// nothing is lost either way.
const batchTimeout = 30 * time.Second

func newCommitter(store mtlsid.Store, maxBatch int, log *slog.Logger) *committer {
	c := &committer{
		store:    store,
		maxBatch: maxBatch,
		log:      log,
		queue:    make(chan *pending, 4*maxBatch),
		done:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	go c.run()
	return c
}

func (c *committer) submit(ctx context.Context, it mtlsid.Issuance) error {
	p := &pending{item: it, result: make(chan error, 1)}
	select {
	case c.queue <- p:
	case <-c.done:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-p.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *committer) close() {
	c.stopOnce.Do(func() { close(c.done) })
	<-c.stopped
}

func (c *committer) run() {
	defer close(c.stopped)
	batch := make([]*pending, 0, c.maxBatch)
	for {
		select {
		case p := <-c.queue:
			batch = append(batch[:0], p)
		case <-c.done:
			c.drainClosed()
			return
		}
	fill:
		for len(batch) < c.maxBatch {
			select {
			case p := <-c.queue:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		c.write(batch)
	}
}

func (c *committer) write(batch []*pending) {
	items := make([]mtlsid.Issuance, len(batch))
	for i, p := range batch {
		items[i] = p.item
	}
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	errs, err := c.store.Issue(ctx, items)
	cancel()
	if err != nil {
		c.log.Error("issuance batch failed", "size", len(batch), "err", err)
	}
	for i, p := range batch {
		switch {
		case err != nil:
			p.result <- err
		case i < len(errs):
			p.result <- errs[i]
		default:
			p.result <- nil
		}
	}
}

// drainClosed fails whatever is still queued at Close.
func (c *committer) drainClosed() {
	for {
		select {
		case p := <-c.queue:
			p.result <- errClosed
		default:
			return
		}
	}
}
