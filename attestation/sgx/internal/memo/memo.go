// Package memo is a small bounded, single-flight cache of successful results
// keyed by a SHA-256 over the input bytes. The SGX verifier uses it for work
// that depends only on bytes that repeat across requests from one platform:
// PCK chain verification, CRL checks, TCB Info signatures and the QE report
// signature. Failures are never cached.
//
// Trust: the key must cover every input the computation reads, and only
// results that do not depend on the verification clock may be cached; the
// caller applies the clock to the cached result on every request.
package memo

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"sync"
)

// Key is a cache key.
type Key [sha256.Size]byte

// KeyOf hashes parts with length prefixes, so that distinct part lists never
// collide by concatenation.
func KeyOf(domain string, parts ...[]byte) Key {
	h := sha256.New()
	write(h, []byte(domain))
	for _, p := range parts {
		write(h, p)
	}
	var k Key
	h.Sum(k[:0])
	return k
}

func write(h hash.Hash, p []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(p)))
	h.Write(n[:])
	h.Write(p)
}

var errPanicked = errors.New("memo: computation panicked")

type entry[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// Cache holds at most Max successful results. The zero value is not usable;
// use New.
type Cache[V any] struct {
	mu  sync.Mutex
	max int
	m   map[Key]*entry[V]
}

// New returns a cache bounded to max entries (at least 1).
func New[V any](limit int) *Cache[V] {
	return &Cache[V]{max: max(1, limit), m: make(map[Key]*entry[V])}
}

// Get returns the cached value for k, or runs f once for all concurrent
// callers asking for k and caches its result if it succeeded. When the
// cache is full, an arbitrary entry is evicted.
func (c *Cache[V]) Get(k Key, f func() (V, error)) (V, error) {
	c.mu.Lock()
	if e, ok := c.m[k]; ok {
		c.mu.Unlock()
		<-e.done
		return e.v, e.err
	}
	for len(c.m) >= c.max {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	e := &entry[V]{done: make(chan struct{})}
	c.m[k] = e
	c.mu.Unlock()

	finished := false
	defer func() {
		if !finished {
			// f panicked: waiters must not see a zero value as success.
			e.err = errPanicked
		}
		if e.err != nil {
			c.mu.Lock()
			if c.m[k] == e {
				delete(c.m, k)
			}
			c.mu.Unlock()
		}
		close(e.done)
	}()
	e.v, e.err = f()
	finished = true
	return e.v, e.err
}

// Len reports how many entries are cached or in flight.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
