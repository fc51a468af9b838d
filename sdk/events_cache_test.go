package sdk

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCacheStale: a role change drops an answer that identified the
// holder, keeps a refusal (roles do not change it), and keeps a positive
// answer fetched across the change out of the cache.
func TestCacheStale(t *testing.T) {
	c := newCache(10, time.Hour, time.Hour, time.Now)
	ctx := context.Background()
	calls := 0
	fetch := func(res *result) func(context.Context) (*result, error) {
		return func(context.Context) (*result, error) { calls++; return res, nil }
	}
	ok := &result{cert: &Profile{Serial: "1"}}
	pb := &result{err: errors.New("PB 0003")}

	if _, err := c.lookup(ctx, "1", nil, fetch(ok)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.lookup(ctx, "2", nil, fetch(pb)); err != nil {
		t.Fatal(err)
	}
	c.stale("1")
	c.stale("2")
	calls = 0
	c.lookup(ctx, "1", nil, fetch(ok))
	c.lookup(ctx, "2", nil, fetch(pb))
	if calls != 1 {
		t.Errorf("after stale: %d fetches; want 1 (the identified answer only)", calls)
	}

	// A role change while the answer is being fetched.
	c.stale("3") // nothing cached, nothing in flight: no effect
	slow := func(context.Context) (*result, error) { c.stale("4"); return ok, nil }
	c.lookup(ctx, "4", nil, slow)
	calls = 0
	c.lookup(ctx, "4", nil, fetch(ok))
	if calls != 1 {
		t.Errorf("an answer fetched across a role change was cached")
	}
}
