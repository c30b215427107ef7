//go:build cgo && wasmtime

package engine

import (
	"context"
	"errors"
	"testing"
)

// TestEpochArmingOrder pins what armEpoch's order relies on: wasmtime's
// epoch deadline is relative to the engine's epoch when it is set, so an
// increment made before SetEpochDeadline is absorbed (the guest runs to
// its end), and one made after it stops the guest. armEpoch sets the
// deadline first and registers the increment after, so a context that
// has already ended when a call arms still stops it.
func TestEpochArmingOrder(t *testing.T) {
	wd := watchdog(t)
	e := newTestEngine(t, Config{Engine: "wasmtime"}).(*wasmtimeEngine)
	in := hookInstance(t, e, func(context.Context) error { return nil }).(*wasmtimeInstance)
	fn := in.inst.GetFunc(e.store, "count")
	count := func() error {
		_, err := fn.Call(e.store)
		return err
	}

	// Increment, then set the deadline: absorbed.
	e.eng.IncrementEpoch()
	e.store.SetEpochDeadline(1)
	if err := within(t, wd, "count", count); err != nil {
		t.Fatalf("an increment before the deadline was set stopped the guest: %v", err)
	}
	// Set the deadline, then increment: the guest stops.
	e.store.SetEpochDeadline(1)
	e.eng.IncrementEpoch()
	if err := within(t, wd, "count", count); err == nil {
		t.Fatal("an increment after the deadline was set did not stop the guest")
	}
	// armEpoch with a context that has already ended: the guest stops.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	disarm := e.armEpoch(ctx)
	err := within(t, wd, "count", count)
	disarm()
	if err == nil {
		t.Fatal("armEpoch under an ended context did not stop the guest")
	}
	// And through Call, which does not even enter the guest then.
	if err := in.Call(ctx, "count"); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Call under an ended context: %v; want ErrInterrupted", err)
	}
}
