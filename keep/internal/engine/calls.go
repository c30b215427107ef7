package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrClosed is the cause of a call that Engine.Close interrupted, and
// the error of a call made after Close.
var ErrClosed = errors.New("engine closed")

// closeWait bounds how long Close waits for an interrupted call to return
// when its context has no deadline of its own.
const closeWait = 10 * time.Second

// calls is an engine's record of its call into the guest (Instantiate
// or Call; an engine runs one at a time), so that Close, which may run
// on another goroutine, never frees a store or memory that a running
// call uses: it interrupts the call, through the call's own context, and
// waits for it to return.
type calls struct {
	mu     sync.Mutex
	closed bool
	// cancel cancels the running call's context (nil when none runs);
	// done is closed when that call has returned.
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// begin registers a call. It returns the context the call runs under
// (ctx, also cancelled by Close with the cause ErrClosed) and the
// function that ends the call. It refuses a call after Close, and one
// made while another runs (a host function calling back into the guest:
// the interruption of the outer call would be lost).
func (c *calls) begin(ctx context.Context) (context.Context, func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, fmt.Errorf("calling into the guest: %w", ErrClosed)
	}
	if c.cancel != nil {
		return nil, nil, errors.New("calling into the guest while another call runs: an engine runs one call at a time, " +
			"and host functions must not call back into the guest")
	}
	cctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	c.cancel, c.done = cancel, done
	return cctx, func() {
		c.mu.Lock()
		c.cancel, c.done = nil, nil
		c.mu.Unlock()
		cancel(nil)
		close(done)
	}, nil
}

// close marks the engine closed, so that no call begins, and interrupts
// the running call, if any, waiting for it to return until ctx ends (or
// closeWait, if ctx has no deadline). A nil error means nothing runs: the
// engine may free everything. An error means a call still runs (a guest
// computing without interruption checks, Config.NoInterrupt, or a host
// function that does not return): the engine must free nothing; Close
// may be called again.
func (c *calls) close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel(ErrClosed)
	if _, ok := ctx.Deadline(); !ok {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, closeWait)
		defer stop()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing the engine: a call into the guest is still running after it was interrupted "+
			"(a guest run without interruption, or a host function that does not return); "+
			"its memory stays allocated until it returns and Close is called again: %w", context.Cause(ctx))
	}
}

// interrupted is the error of a call stopped because ctx ended.
func interrupted(ctx context.Context) error {
	return fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
}
