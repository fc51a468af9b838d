package ttlcache

import (
	"sync"
	"testing"
	"time"
)

func TestExpiryAndBounds(t *testing.T) {
	now := time.Unix(0, 0)
	c := New[string, int](time.Second, 128, func() time.Time { return now })
	c.Put("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get = %v %v", v, ok)
	}
	now = now.Add(799 * time.Millisecond)
	if _, ok := c.Get("a"); !ok {
		t.Fatal("entry expired before four fifths of its TTL")
	}
	now = now.Add(201 * time.Millisecond)
	if _, ok := c.Get("a"); ok {
		t.Fatal("entry outlived its TTL")
	}
	c.Put("b", 2)
	c.Delete("b")
	if _, ok := c.Get("b"); ok {
		t.Fatal("deleted entry still there")
	}
	for i := range 10000 {
		c.Put(string(rune(i)), i)
	}
	n := 0
	for i := range c.shards {
		n += len(c.shards[i].m)
	}
	if n > 128+shards {
		t.Fatalf("cache holds %d entries, bound about 128", n)
	}
	c.Clear()
	if _, ok := c.Get(string(rune(9999))); ok {
		t.Fatal("Clear kept an entry")
	}
}

// TestSweep: expired entries do not stay in memory until the bound pushes
// them out.
func TestSweep(t *testing.T) {
	now := time.Unix(0, 0)
	c := New[int, int](time.Second, 1_000_000, func() time.Time { return now })
	for i := range 100_000 {
		c.Put(i, i)
	}
	size := func() int {
		n := 0
		for i := range c.shards {
			n += len(c.shards[i].m)
		}
		return n
	}
	if n := size(); n != 100_000 {
		t.Fatalf("%d entries before any expired; want 100000", n)
	}
	now = now.Add(time.Second)
	for i := range 100_000 {
		c.Put(-1-i, i) // other keys, as a load asking about new serials
	}
	if n := size(); n > 110_000 {
		t.Fatalf("%d entries after the first 100,000 expired and 100,000 new came: the expired stayed", n)
	}
	for i := range 100_000 {
		if _, ok := c.Get(-1 - i); !ok {
			t.Fatalf("a live entry (%d) was swept", -1-i)
		}
	}
}

func TestConcurrent(t *testing.T) {
	c := New[int, int](time.Minute, 1000, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				c.Put(i, g)
				c.Get(i)
				if i%7 == 0 {
					c.Delete(i)
				}
			}
		})
	}
	wg.Wait()
}
