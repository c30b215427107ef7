// Package cache is the verifiers' bounded, single-flight cache of
// successful results, keyed by a SHA-256 over the input bytes. The SGX and
// SEV-SNP verifiers keep in it the work that depends only on bytes that
// repeat across requests from one platform (certificate chains, CRL
// checks, signed collateral), so that a Steward does that work once per
// platform rather than once per request.
//
// Trust: the key must cover every input a successful result depends on,
// and only results that do not depend on the verification clock may be
// cached; the caller applies the clock to the cached result on every
// request. Failures are never cached, nor handed to other callers: a
// caller that waited for a computation that failed runs its own, so one
// request's bad input cannot fail another's.
package cache

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
)

// Key is a cache key: see KeyOf.
type Key [sha256.Size]byte

// KeyOf hashes a domain and parts, each length-prefixed, so that distinct
// part lists never collide by concatenation and the same bytes under two
// domains give two keys.
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

// flight is one computation in progress; done is closed when it ends.
type flight[V any] struct {
	done    chan struct{}
	v       V
	ok      bool // it succeeded (and v is the result)
	waiters int  // callers waiting for it (under Cache.mu; tests read it)
}

// Cache holds at most a fixed number of successful results and evicts the
// least recently used. It is safe for concurrent use; the zero value is
// not usable (use New).
type Cache[V any] struct {
	mu       sync.Mutex
	max      int
	order    *list.List            // front = most recently used; elements hold *entry[V]
	values   map[Key]*list.Element // stored results
	inFlight map[Key]*flight[V]
}

type entry[V any] struct {
	key Key
	val V
}

// New returns a cache bounded to limit results (at least 1).
func New[V any](limit int) *Cache[V] {
	return &Cache[V]{
		max:      max(1, limit),
		order:    list.New(),
		values:   map[Key]*list.Element{},
		inFlight: map[Key]*flight[V]{},
	}
}

// Get returns the cached result for k, or computes it with f and caches it
// if f succeeds. Concurrent callers missing the same key share one call of
// f; if that call fails (or panics), each of them calls f itself, once,
// and gets its own result. A panic in f propagates to its caller.
func (c *Cache[V]) Get(k Key, f func() (V, error)) (V, error) {
	c.mu.Lock()
	if v, ok := c.lookup(k); ok {
		c.mu.Unlock()
		return v, nil
	}
	if fl, ok := c.inFlight[k]; ok {
		fl.waiters++
		c.mu.Unlock()
		<-fl.done
		if fl.ok {
			return fl.v, nil
		}
		return c.compute(k, f)
	}
	fl := &flight[V]{done: make(chan struct{})}
	c.inFlight[k] = fl
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.inFlight, k)
		if fl.ok {
			c.store(k, fl.v)
		}
		c.mu.Unlock()
		close(fl.done)
	}()
	v, err := f()
	if err != nil {
		return v, err
	}
	fl.v, fl.ok = v, true
	return v, nil
}

// compute runs f for a caller whose shared computation failed, and stores
// a success.
func (c *Cache[V]) compute(k Key, f func() (V, error)) (V, error) {
	v, err := f()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	c.store(k, v)
	c.mu.Unlock()
	return v, nil
}

// lookup returns the stored result for k and marks it recently used.
// c.mu must be held.
func (c *Cache[V]) lookup(k Key) (V, bool) {
	el, ok := c.values[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*entry[V]).val, true
}

// store keeps v under k, evicting the least recently used result beyond
// the bound. c.mu must be held.
func (c *Cache[V]) store(k Key, v V) {
	if el, ok := c.values[k]; ok {
		el.Value.(*entry[V]).val = v
		c.order.MoveToFront(el)
		return
	}
	c.values[k] = c.order.PushFront(&entry[V]{key: k, val: v})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.values, old.Value.(*entry[V]).key)
	}
}

// Len reports how many results are stored.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
