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
