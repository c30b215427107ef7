package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// A directory node upload is read whole into memory before it is parsed
// (up to MaxDirectorySize bytes), and a client can send it as slowly as the
// stall rule allows. Without a bound, one user opening many such uploads at
// once makes the server hold connections × MaxDirectorySize bytes. The
// Registry's directory buffer budget bounds the bytes of directory upload
// bodies held at once, in all: an upload takes its declared length from
// the budget before it reads its body, and gives it back once the node is
// stored or refused.

// Defaults of Registry.MaxDirectoryBuffers and DirectoryBufferWait.
const (
	// DefaultMaxDirectoryBuffers is 8 directories of MaxDirectorySize,
	// thousands of ordinary ones (a few KiB each).
	DefaultMaxDirectoryBuffers = 128 << 20
	// DefaultDirectoryBufferWait is well inside the 2 minutes a client
	// waits for its body to move (see httpapi.StallTimeout).
	DefaultDirectoryBufferWait = 30 * time.Second
)

// ErrBusy is returned (wrapped) when a directory upload found no room in
// the directory buffer budget within Registry.DirectoryBufferWait. Nothing
// was read or stored; the client may retry later.
var ErrBusy = errors.New("registry busy")

// byteBudget is a byte semaphore with the bytes it has given out counted
// (for the metrics): the directory and upload buffer budgets.
type byteBudget struct {
	size  int64
	sem   *semaphore.Weighted
	inUse atomic.Int64
}

// setSize makes b a budget of size bytes (once, before use).
func (b *byteBudget) setSize(size int64) {
	b.size = size
	b.sem = semaphore.NewWeighted(size)
}

// held counts n bytes just acquired from b.sem as in use, and returns
// their release (idempotent).
func (b *byteBudget) held(n int64) func() {
	b.inUse.Add(n)
	var once sync.Once
	return func() {
		once.Do(func() {
			b.inUse.Add(-n)
			b.sem.Release(n)
		})
	}
}

// dirBudget is the directory buffer budget of a Registry: first come,
// first served.
type dirBudget struct {
	byteBudget
	once    sync.Once
	wait    time.Duration
	waiting atomic.Int64
}

// dirBuffers returns r's budget, sized from r's settings at first use.
func (r *Registry) dirBuffers() *dirBudget {
	b := &r.dirBudget
	b.once.Do(func() {
		size := r.MaxDirectoryBuffers
		if size <= 0 {
			size = DefaultMaxDirectoryBuffers
		}
		b.wait = r.DirectoryBufferWait
		if b.wait == 0 {
			b.wait = DefaultDirectoryBufferWait
		}
		b.setSize(size)
	})
	return b
}

// DirectoryBuffersInUse is the number of bytes of the directory buffer
// budget held now (by directory uploads reading, parsing or storing their
// body).
func (r *Registry) DirectoryBuffersInUse() int64 { return r.dirBudget.inUse.Load() }

// DirectoryBufferWaiters is the number of directory uploads waiting for
// room in that budget now.
func (r *Registry) DirectoryBufferWaiters() int64 { return r.dirBudget.waiting.Load() }

// acquire takes n bytes of the budget for a directory body of n bytes, and
// returns their release (call it once). A body larger than the whole budget
// takes the whole budget. It waits at most b.wait (no wait if negative),
// and no longer than ctx lasts: then the error wraps ErrBusy, or is ctx's.
func (b *dirBudget) acquire(ctx context.Context, n int64) (release func(), err error) {
	n = min(max(n, 1), b.size) // even an empty body counts: a slot
	if b.wait < 0 {
		if !b.sem.TryAcquire(n) {
			return nil, b.busy(n)
		}
	} else {
		wctx, cancel := context.WithTimeout(ctx, b.wait)
		b.waiting.Add(1)
		err := b.sem.Acquire(wctx, n)
		b.waiting.Add(-1)
		cancel()
		if err != nil {
			if ctx.Err() != nil { // the request is gone
				return nil, fmt.Errorf("waiting for room to buffer a directory: %w", context.Cause(ctx))
			}
			return nil, b.busy(n)
		}
	}
	return b.held(n), nil
}

func (b *dirBudget) busy(n int64) error {
	return fmt.Errorf("%w: directory uploads hold all %d bytes set aside to buffer them (this one needs %d); retry later",
		ErrBusy, b.size, n)
}
