package sandbox

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
)

// TestAwaitKeepClosedWithoutResult: a Keep whose control socket ends
// without a result message (it closed the socket, as a Keep whose workload
// escaped the wasm runtime may, or it crashed: the kernel closes a dying
// process's descriptors before its parent can reap it) and that then
// exits is reported as dead without a result. The host's reader closes
// the reply channel first; awaitKeep must not then wait for a result on
// the channel it has let go of: before, it waited on a nil channel for
// ever, past --timeout and interrupt, and never checked the Keep's cache
// nor put back the flags of the descriptions it shared.
func TestAwaitKeepClosedWithoutResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reply := make(chan *result)
		close(reply) // the socket ended without a result
		cmd := &keepCmd{done: make(chan error)}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		returned := make(chan error, 1)
		go func() {
			res, exit, exited, err := awaitKeep(ctx, cmd, reply, false)
			switch {
			case err != nil:
				returned <- err
			case res != nil || !exited || exit == nil:
				returned <- errors.New("not reported as an exit without a result")
			default:
				returned <- nil
			}
		}()
		// awaitKeep has seen the reply channel closed (the only case
		// ready) and waits for the exit, which it takes now.
		synctest.Wait()
		cmd.done <- errors.New("signal: killed")
		synctest.Wait()
		select {
		case err := <-returned:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("awaitKeep did not return after the Keep exited without a result (the host hangs)")
		}
	})
}
