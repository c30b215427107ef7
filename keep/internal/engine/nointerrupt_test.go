package engine

import (
	"context"
	"errors"
	"testing"
)

// cancelThenCount imports env.cancel and exports a _start that calls it,
// then counts down from 10⁸ in a loop without calling anything.
const cancelThenCount = "\x00\x61\x73\x6d\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x02\x0e\x01\x03\x65\x6e\x76\x06\x63\x61\x6e\x63\x65\x6c\x00\x00\x03\x02\x01\x00\x07\x0a\x01\x06\x5f\x73\x74\x61\x72\x74\x00\x01\x0a\x1b\x01\x19\x01\x01\x7f\x10\x00\x41\x80\xc2\xd7\x2f\x21\x00\x03\x40\x20\x00\x41\x01\x6b\x22\x00\x0d\x00\x0b\x0b"

// TestNoInterrupt: the guest cancels its own run's context through a host
// function, then computes. An engine with interruption stops it
// (ErrInterrupted); with Config.NoInterrupt (wasmtime without epoch
// checks, wazero without the inserted checks) the computation runs to its
// end. Both with and without a compilation cache, so that each setting
// gets cache entries of its own.
func TestNoInterrupt(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		wd := watchdog(t)
		cache := t.TempDir()
		for _, noInterrupt := range []bool{false, true, false, true} {
			ctx, cancel := context.WithCancel(context.Background())
			e, err := New(ctx, Config{Engine: eng, CacheDir: cache, NoInterrupt: noInterrupt})
			if err != nil {
				t.Fatal(err)
			}
			m, err := e.Compile(ctx, []byte(cancelThenCount))
			if err != nil {
				t.Fatal(err)
			}
			// With interruption the guest stops when the host function
			// returns into the ended run, without waiting for the
			// interruption, which acts from a goroutine of its own.
			in, err := m.Instantiate(ctx, []HostFunc{{Module: "env", Name: "cancel",
				Fn: func(context.Context, Caller, []uint64) error {
					cancel()
					return nil
				}}})
			if err != nil {
				t.Fatal(err)
			}
			err = within(t, wd, "Call", func() error { return in.Call(ctx, "_start") })
			if cerr := e.Close(context.Background()); cerr != nil {
				t.Fatal(cerr)
			}
			cancel()
			if noInterrupt && err != nil {
				t.Fatalf("NoInterrupt: %v; want the computation to run to its end", err)
			}
			if !noInterrupt && !errors.Is(err, ErrInterrupted) {
				t.Fatalf("with interruption: %v; want ErrInterrupted", err)
			}
		}
	})
}
