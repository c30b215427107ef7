package store

import (
	"container/list"
	"sync"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// dirCache keeps recently parsed directory nodes. Stored objects are
// immutable, so an entry never goes stale. Without it, uploading the k
// children of a directory would re-read and re-parse that directory k
// times (quadratic in its size).
type dirCache struct {
	mu    sync.Mutex
	max   int // total directory bytes kept
	size  int
	order *list.List // of *dirCacheEntry, most recent first
	m     map[string]*list.Element
}

type dirCacheEntry struct {
	key  string
	dir  types.Directory
	size int
}

func newDirCache(maxBytes int) *dirCache {
	return &dirCache{max: maxBytes, order: list.New(), m: map[string]*list.Element{}}
}

func (c *dirCache) get(key string) (types.Directory, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*dirCacheEntry).dir, true
}

func (c *dirCache) put(key string, d types.Directory, size int) {
	if size > c.max/4 {
		return // one huge directory must not flush everything else
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; ok {
		return
	}
	c.m[key] = c.order.PushFront(&dirCacheEntry{key: key, dir: d, size: size})
	c.size += size
	for c.size > c.max {
		el := c.order.Back()
		e := el.Value.(*dirCacheEntry)
		c.order.Remove(el)
		delete(c.m, e.key)
		c.size -= e.size
	}
}
