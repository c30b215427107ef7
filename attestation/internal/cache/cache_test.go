package cache

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func TestKeyOfFraming(t *testing.T) {
	if KeyOf("d", []byte("ab"), []byte("c")) == KeyOf("d", []byte("a"), []byte("bc")) {
		t.Fatal("part boundaries do not affect the key")
	}
	if KeyOf("x", []byte("a")) == KeyOf("y", []byte("a")) {
		t.Fatal("domain does not affect the key")
	}
	if KeyOf("d", []byte("a")) != KeyOf("d", []byte("a")) {
		t.Fatal("the key is not a function of its inputs")
	}
}

// running reports whether a computation for k is running.
func (c *Cache[V]) running(k Key) bool { return c.waiting(k) >= 0 }

// waiting is how many callers wait for the computation for k; -1 if none
// runs.
func (c *Cache[V]) waiting(k Key) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl, ok := c.inFlight[k]; ok {
		return fl.waiters
	}
	return -1
}

func TestConcurrentMissesComputeOnce(t *testing.T) {
	c := New[int](4)
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	start := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Get(KeyOf("k"), func() (int, error) {
				calls.Add(1)
				<-release
				return 42, nil
			})
			if v != 42 || err != nil {
				t.Errorf("got %d, %v", v, err)
			}
		}()
	}
	start()
	for !c.running(KeyOf("k")) {
		runtime.Gosched() // the first caller registers its computation
	}
	for range 7 {
		start()
	}
	for c.waiting(KeyOf("k")) < 7 {
		runtime.Gosched()
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("computed %d times, want 1", n)
	}
	if c.Len() != 1 {
		t.Fatalf("%d results stored, want 1", c.Len())
	}
}

// TestFailureNotShared: a caller that waited for a computation that failed
// computes its own result; the failure is neither cached nor handed on.
func TestFailureNotShared(t *testing.T) {
	c := New[int](4)
	boom := errors.New("boom")
	release := make(chan struct{})
	first := make(chan error)
	go func() {
		_, err := c.Get(KeyOf("k"), func() (int, error) { <-release; return 0, boom })
		first <- err
	}()
	for !c.running(KeyOf("k")) {
		runtime.Gosched()
	}
	second := make(chan int)
	go func() {
		v, err := c.Get(KeyOf("k"), func() (int, error) { return 7, nil })
		if err != nil {
			t.Error(err)
		}
		second <- v
	}()
	for c.waiting(KeyOf("k")) < 1 {
		runtime.Gosched() // the second caller waits for the first
	}
	close(release)
	if err := <-first; !errors.Is(err, boom) {
		t.Fatalf("failing caller got %v", err)
	}
	if v := <-second; v != 7 {
		t.Fatalf("waiting caller got %d, want its own result 7", v)
	}
	if v, err := c.Get(KeyOf("k"), func() (int, error) { return 0, boom }); v != 7 || err != nil {
		t.Fatalf("success not cached: %d %v", v, err)
	}
}

func TestFailuresNotCached(t *testing.T) {
	c := New[int](4)
	boom := errors.New("boom")
	if _, err := c.Get(KeyOf("k"), func() (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if c.Len() != 0 {
		t.Fatal("failure cached")
	}
	v, err := c.Get(KeyOf("k"), func() (int, error) { return 7, nil })
	if v != 7 || err != nil {
		t.Fatal(v, err)
	}
}

func TestPanicNotCached(t *testing.T) {
	c := New[*int](4)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach its caller")
			}
		}()
		c.Get(KeyOf("k"), func() (*int, error) { panic("x") })
	}()
	if c.Len() != 0 || c.running(KeyOf("k")) {
		t.Fatal("panicked computation left in the cache")
	}
	one := 1
	if v, err := c.Get(KeyOf("k"), func() (*int, error) { return &one, nil }); err != nil || v != &one {
		t.Fatal(v, err)
	}
}

// TestLeastRecentlyUsedEvicted: the bound holds, and a result used since
// survives the eviction of an older one.
func TestLeastRecentlyUsedEvicted(t *testing.T) {
	c := New[int](3)
	key := func(i int) Key { return KeyOf("k", []byte{byte(i)}) }
	for i := range 3 {
		c.Get(key(i), func() (int, error) { return i, nil })
	}
	c.Get(key(0), func() (int, error) { t.Fatal("stored result recomputed"); return 0, nil })
	c.Get(key(3), func() (int, error) { return 3, nil }) // evicts 1, the least recently used
	if c.Len() != 3 {
		t.Fatalf("%d results, limit 3", c.Len())
	}
	calls := 0
	for _, i := range []int{0, 2, 3} {
		c.Get(key(i), func() (int, error) { calls++; return i, nil })
	}
	if calls != 0 {
		t.Fatalf("%d recently used results were evicted", calls)
	}
	c.Get(key(1), func() (int, error) { calls++; return 1, nil })
	if calls != 1 {
		t.Fatal("the least recently used result was kept")
	}
}

func TestZeroLimitHoldsOne(t *testing.T) {
	c := New[int](0)
	c.Get(KeyOf("a"), func() (int, error) { return 1, nil })
	c.Get(KeyOf("b"), func() (int, error) { return 2, nil })
	if c.Len() != 1 {
		t.Fatalf("%d results, want 1", c.Len())
	}
}
