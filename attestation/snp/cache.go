package snp

import (
	"container/list"
	"sync"

	"golang.org/x/sync/singleflight"
)

// lru is a bounded, concurrency-safe least-recently-used map from a digest of
// input bytes to a value computed from them, with single-flight: concurrent
// misses for one key run the computation once. Only successes are stored,
// so a failure is recomputed (and reported) every time.
type lru[V any] struct {
	max   int
	group singleflight.Group

	mu    sync.Mutex
	order *list.List // front = most recent; elements hold *lruEntry[V]
	items map[string]*list.Element
}

type lruEntry[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) *lru[V] {
	if max <= 0 {
		max = 1
	}
	return &lru[V]{max: max, order: list.New(), items: make(map[string]*list.Element)}
}

func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		return el.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

func (c *lru[V]) put(key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*lruEntry[V]).val = v
		c.order.MoveToFront(el)
		return
	}
	c.items[key] = c.order.PushFront(&lruEntry[V]{key: key, val: v})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*lruEntry[V]).key)
	}
}

func (c *lru[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// do returns the cached value for key or computes, stores and returns it.
// Concurrent misses with the same flight key share one computation; use a
// flight key that covers every input compute reads (which may be more than
// key), so that no caller gets a result computed from another's inputs.
func (c *lru[V]) do(key, flight string, compute func() (V, error)) (V, error) {
	if v, ok := c.get(key); ok {
		return v, nil
	}
	r, err, _ := c.group.Do(flight, func() (any, error) {
		if v, ok := c.get(key); ok {
			return v, nil
		}
		v, err := compute()
		if err != nil {
			return v, err
		}
		c.put(key, v)
		return v, nil
	})
	if err != nil {
		var zero V
		return zero, err
	}
	return r.(V), nil
}
