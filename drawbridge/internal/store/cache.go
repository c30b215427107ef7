package store

import (
	"container/list"
	"sync"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// lru keeps recently used values up to a total size. Stored objects are
// never deleted, and the only ones that change (Backend.Replace) are tree
// nodes this registry has not verified, which are not cached (see
// verify.go), so a value read once never goes stale; only what exists is
// cached (an absent object may appear later).
type lru[V any] struct {
	mu    sync.Mutex
	max   int // total size kept
	size  int
	order *list.List // of *lruEntry[V], most recent first
	m     map[string]*list.Element
}

type lruEntry[V any] struct {
	key  string
	v    V
	size int
}

func newLRU[V any](maxSize int) *lru[V] {
	return &lru[V]{max: maxSize, order: list.New(), m: map[string]*list.Element{}}
}

func (c *lru[V]) get(key string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry[V]).v, true
}

// put adds v, whose size is size, unless key is cached; a value larger
// than a quarter of the cache is not kept, so that one huge value cannot
// flush everything else.
func (c *lru[V]) put(key string, v V, size int) { c.store(key, v, size, false) }

// set is put, replacing what is cached for key.
func (c *lru[V]) set(key string, v V, size int) { c.store(key, v, size, true) }

// remove forgets key.
func (c *lru[V]) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeLocked(key)
}

func (c *lru[V]) removeLocked(key string) {
	if el, ok := c.m[key]; ok {
		c.order.Remove(el)
		delete(c.m, key)
		c.size -= el.Value.(*lruEntry[V]).size
	}
}

func (c *lru[V]) store(key string, v V, size int, replace bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		if !replace {
			return
		}
		c.removeLocked(key)
	}
	if size > c.max/4 {
		return
	}
	c.m[key] = c.order.PushFront(&lruEntry[V]{key: key, v: v, size: size})
	c.size += size
	for c.size > c.max {
		el := c.order.Back()
		e := el.Value.(*lruEntry[V])
		c.order.Remove(el)
		delete(c.m, e.key)
		c.size -= e.size
	}
}

// dirCache keeps recently parsed directory nodes, sized by their JSON.
// Without it, uploading the k children of a directory would re-read and
// re-parse that directory k times (quadratic in its size).
// Its sorted entry names are kept too: a directory of k entries would
// otherwise be sorted again at each of the completeness checks that stop
// in it.
type dirCache = lru[cachedDir]

type cachedDir struct {
	d     types.Directory
	names []types.TreeName
}

func newDirCache(maxBytes int) *dirCache { return newLRU[cachedDir](maxBytes) }

// smallRecord is a small object held in memory: a user, a repository config or
// a tag.
type smallRecord struct {
	meta types.Meta
	body []byte
}

// metaCost is what a cached Meta is counted as (its digests, type and
// key).
const metaCost = 512
