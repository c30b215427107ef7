package memo

import (
	"errors"
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
}

func TestSingleFlight(t *testing.T) {
	c := New[int](4)
	var calls atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
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
	for c.Len() == 0 {
		// wait for the first caller to register
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("computed %d times", n)
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
		defer func() { recover() }()
		c.Get(KeyOf("k"), func() (*int, error) { panic("x") })
	}()
	if c.Len() != 0 {
		t.Fatal("panicked computation left in the cache")
	}
}

func TestBounded(t *testing.T) {
	c := New[int](3)
	for i := range 10 {
		c.Get(KeyOf("k", []byte{byte(i)}), func() (int, error) { return i, nil })
	}
	if c.Len() != 3 {
		t.Fatalf("%d entries, limit 3", c.Len())
	}
	var calls int
	c.Get(KeyOf("k", []byte{9}), func() (int, error) { calls++; return 0, nil })
	if calls != 0 {
		t.Fatal("most recent entry was evicted")
	}
}
