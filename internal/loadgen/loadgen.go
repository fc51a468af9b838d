// Package loadgen drives a bounded load against a server and measures it:
// a fixed number of workers, an optional fixed arrival rate (latency is
// then measured from each request's scheduled time, so a slow server
// cannot hide its queueing), a time limit and a request limit. It is for
// `mtlsid bench`; nothing else imports it.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config bounds a run. Duration and Requests must not both be zero.
type Config struct {
	Workers  int           // zero: 32
	Rate     float64       // requests per second; zero: as fast as the workers go
	Duration time.Duration // zero: until Requests are done
	Requests int           // zero: until Duration has passed
	Warmup   time.Duration // time run but not counted
}

// Result is what a run measured.
type Result struct {
	Requests  int
	Errors    int
	Elapsed   time.Duration
	Latencies []time.Duration // sorted
	Outcomes  map[string]int
	FirstErr  error
}

// Do is one request; it returns a label counted in Result.Outcomes.
type Do func(ctx context.Context, i int) (string, error)

// Run runs the load until its bounds and reports it.
func Run(ctx context.Context, cfg Config, do Do) (*Result, error) {
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		return nil, errors.New("loadgen: set a duration or a request count")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.Warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, cfg.Warmup)
		_, _ = run(wctx, Config{Workers: cfg.Workers, Rate: cfg.Rate, Duration: cfg.Warmup}, do)
		cancel()
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	return run(ctx, cfg, do)
}

// tally is one worker's record. Latencies are kept apart from anything
// holding a pointer: millions of them in a long run are then never
// scanned by the collector, whose work would otherwise be measured as the
// server's latency on a machine the generator shares.
type tally struct {
	lats     []time.Duration
	outcomes map[string]int
	errors   int
	firstErr error
}

func run(ctx context.Context, cfg Config, do Do) (*Result, error) {
	var next atomic.Int64
	tallies := make([]tally, cfg.Workers)
	var sched chan time.Time
	if cfg.Rate > 0 {
		sched = make(chan time.Time, cfg.Workers*4)
		go func() {
			defer close(sched)
			interval := time.Duration(float64(time.Second) / cfg.Rate)
			start := time.Now()
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			for n := 0; cfg.Requests <= 0 || n < cfg.Requests; n++ {
				at := start.Add(time.Duration(n) * interval)
				if d := time.Until(at); d > 0 {
					timer.Reset(d)
					select {
					case <-timer.C:
					case <-ctx.Done():
						return
					}
				}
				select {
				case sched <- at:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		t := &tallies[w]
		t.outcomes = map[string]int{}
		wg.Go(func() {
			for ctx.Err() == nil {
				var at time.Time
				if sched != nil {
					var ok bool
					select {
					case at, ok = <-sched:
						if !ok {
							return
						}
					case <-ctx.Done():
						return
					}
				}
				i := int(next.Add(1) - 1)
				if cfg.Requests > 0 && i >= cfg.Requests {
					return
				}
				if sched == nil {
					at = time.Now()
				}
				label, err := do(ctx, i)
				if ctx.Err() != nil && err != nil {
					return // cut off by the deadline: not a server error
				}
				t.lats = append(t.lats, time.Since(at))
				if err != nil {
					t.errors++
					if t.firstErr == nil {
						t.firstErr = err
					}
					continue
				}
				t.outcomes[label]++
			}
		})
	}
	wg.Wait()
	res := &Result{Elapsed: time.Since(start), Outcomes: map[string]int{}}
	for _, t := range tallies {
		res.Requests += len(t.lats)
		res.Latencies = append(res.Latencies, t.lats...)
		res.Errors += t.errors
		if res.FirstErr == nil {
			res.FirstErr = t.firstErr
		}
		for k, n := range t.outcomes {
			res.Outcomes[k] += n
		}
	}
	slices.Sort(res.Latencies)
	return res, nil
}

// Percentile returns the p-th percentile latency (0 < p <= 100).
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.Latencies))*p/100+0.5) - 1
	return r.Latencies[max(0, min(i, len(r.Latencies)-1))]
}

// Report writes the result in a few lines.
func (r *Result) Report(w io.Writer) {
	rate := float64(r.Requests) / r.Elapsed.Seconds()
	fmt.Fprintf(w, "requests %d in %s: %.0f/s, errors %d\n", r.Requests, r.Elapsed.Round(time.Millisecond), rate, r.Errors)
	fmt.Fprintf(w, "latency p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n",
		r.Percentile(50).Round(time.Microsecond), r.Percentile(90).Round(time.Microsecond), r.Percentile(99).Round(time.Microsecond),
		r.Percentile(99.9).Round(time.Microsecond), r.Percentile(100).Round(time.Microsecond))
	keys := make([]string, 0, len(r.Outcomes))
	for k := range r.Outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %8d  %s\n", r.Outcomes[k], k)
	}
	if r.FirstErr != nil {
		fmt.Fprintf(w, "first error: %v\n", r.FirstErr)
	}
}
