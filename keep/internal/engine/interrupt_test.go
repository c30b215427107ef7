package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// hookModule imports env.hook and exports:
//
//	(func (export "hook") call $hook)
//	(func (export "forever") call $hook (loop br 0))
//	(func (export "count") (local i32)    ;; 10⁶ iterations of a loop
//	  i32.const 1000000 local.set 0
//	  (loop local.get 0 i32.const 1 i32.sub local.tee 0 br_if 0))
//
// "hook" returns right after the host function, with no check (function
// entry, loop header) after it: a context the host function cancels has
// ended when the call returns, before AfterFunc's stop runs.
const hookModule = "\x00\x61\x73\x6d\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x02\x0c\x01\x03\x65\x6e\x76\x04\x68\x6f\x6f\x6b\x00\x00\x03\x04\x03\x00\x00\x00\x07\x1a\x03\x04\x68\x6f\x6f\x6b\x00\x01\x07\x66\x6f\x72\x65\x76\x65\x72\x00\x02\x05\x63\x6f\x75\x6e\x74\x00\x03\x0a\x27\x03\x04\x00\x10\x00\x0b\x09\x00\x10\x00\x03\x40\x0c\x00\x0b\x0b\x16\x01\x01\x7f\x41\xc0\x84\x3d\x21\x00\x03\x40\x20\x00\x41\x01\x6b\x22\x00\x0d\x00\x0b\x0b"

// hangAfter is when a call that should have been interrupted counts as
// hung (an interrupted guest returns within microseconds; this only
// bounds a broken run, it measures nothing).
const hangAfter = time.Minute

// watchdog is a test's deadline: hangAfter, or less if go test's
// -timeout ends sooner, so that a hang fails the test with the
// goroutines' stacks instead of killing the whole binary.
func watchdog(t *testing.T) context.Context {
	t.Helper()
	d := time.Now().Add(hangAfter)
	if td, ok := t.Deadline(); ok && td.Add(-10*time.Second).Before(d) {
		d = td.Add(-10 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// within runs f and returns its error; if f has not returned when wd
// ends, it fails the test with every goroutine's stack (f's goroutine is
// left running: the engine's Close, in the cleanup, then refuses to free
// what it uses rather than hang).
func within(t *testing.T, wd context.Context, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-wd.Done():
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("%s did not return within the test's deadline (the guest was not interrupted?); goroutines:\n%s", what, buf)
		return nil
	}
}

// newTestEngine makes an engine that the test's cleanup closes, within a
// bound: a Close that must refuse (a call still runs) is reported, not
// waited for.
func newTestEngine(t *testing.T, c Config) Engine {
	t.Helper()
	c.NoCache = c.CacheDir == ""
	e, err := New(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// hookInstance instantiates hookModule with hook as env.hook.
func hookInstance(t *testing.T, e Engine, hook func(context.Context) error) Instance {
	t.Helper()
	ctx := context.Background()
	m, err := e.Compile(ctx, []byte(hookModule))
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Instantiate(ctx, []HostFunc{{Module: "env", Name: "hook",
		Fn: func(ctx context.Context, _ Caller, _ []uint64) error { return hook(ctx) }}})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// sink keeps TestInterruptRace's spinning from being optimised away.
var sink atomic.Int64

// TestInterruptRace: a context cancelled at any moment around the start
// of a call (before it, while the call arms its interruption, in the host
// function, once the guest computes) stops the call, every time, with
// garbage collections running meanwhile. (Before the wazero checks let
// the Go scheduler in, a collection's stop-the-world waited for the
// computing guest while the goroutine that would interrupt it was
// stopped: this test hung the process every run.)
func TestInterruptRace(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		wd := watchdog(t)
		e := newTestEngine(t, Config{Engine: eng})
		in := hookInstance(t, e, func(context.Context) error { return nil })
		for i := range 300 {
			ctx, cancel := context.WithCancel(context.Background())
			spin := rand.IntN(20000) // a few tens of microseconds at most
			go func() {
				for j := 0; j < spin; j++ {
					sink.Add(1)
				}
				cancel()
			}()
			err := within(t, wd, "Call", func() error { return in.Call(ctx, "forever") })
			if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.Canceled) {
				t.Fatalf("iteration %d (cancelled after %d spins): %v; want ErrInterrupted wrapping context.Canceled", i, spin, err)
			}
		}
	})
}

// TestInterruptStale: a context that ends just as its call returns
// (here: in the host function the call ends with, so AfterFunc's stop
// finds it started) does not interrupt the next call, and does not act
// on the engine after Close. Before the interruption's AfterFunc was
// waited for, its increment of wasmtime's epoch landed in the next call
// now and then (a trap "interrupt" for nothing) or after Close (a panic
// on the closed engine), and wazero's flag stayed set for every later
// call.
func TestInterruptStale(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		wd := watchdog(t)
		var cancel atomic.Pointer[context.CancelFunc]
		hook := func(context.Context) error {
			if c := cancel.Load(); c != nil {
				(*c)()
			}
			return nil
		}
		e := newTestEngine(t, Config{Engine: eng})
		in := hookInstance(t, e, hook)
		for i := range 200 {
			ctx, c := context.WithCancel(context.Background())
			cancel.Store(&c)
			// Interrupted at the host function's return, or not at all:
			// both are right for a context that ended as the call did.
			if err := within(t, wd, "Call", func() error { return in.Call(ctx, "hook") }); err != nil && !errors.Is(err, ErrInterrupted) {
				t.Fatalf("iteration %d: the call that cancels: %v", i, err)
			}
			cancel.Store(nil)
			if err := within(t, wd, "Call", func() error { return in.Call(context.Background(), "count") }); err != nil {
				t.Fatalf("iteration %d: the next call, whose context never ends: %v", i, err)
			}
		}
		// Close right after such a call. The race detector also sees an
		// increment that would read the engine while Close frees it.
		for i := range 30 {
			e, err := New(context.Background(), Config{Engine: eng, NoCache: true})
			if err != nil {
				t.Fatal(err)
			}
			in := hookInstance(t, e, hook)
			ctx, c := context.WithCancel(context.Background())
			cancel.Store(&c)
			if err := within(t, wd, "Call", func() error { return in.Call(ctx, "hook") }); err != nil && !errors.Is(err, ErrInterrupted) {
				t.Fatalf("iteration %d: %v", i, err)
			}
			if err := e.Close(context.Background()); err != nil {
				t.Fatalf("iteration %d: Close: %v", i, err)
			}
		}
		// Give a stray interruption, which would run on a goroutine of its
		// own, the chance to run (and crash) while the test still runs.
		time.Sleep(10 * time.Millisecond)
	})
}

// TestInterruptClose: Close while a call runs interrupts it and waits for
// it to return before freeing anything (before, it freed the store or the
// memory under the running guest); a call it cannot interrupt (here a
// host function that ignores its context) makes Close refuse, with an
// error, until the call returns. Calls after Close fail with ErrClosed.
func TestInterruptClose(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		wd := watchdog(t)
		for _, blocking := range []bool{false, true} {
			e, err := New(context.Background(), Config{Engine: eng, NoCache: true})
			if err != nil {
				t.Fatal(err)
			}
			running, release := make(chan struct{}), make(chan struct{})
			in := hookInstance(t, e, func(context.Context) error {
				close(running)
				if blocking {
					<-release
				}
				return nil
			})
			done := make(chan error, 1)
			go func() { done <- in.Call(context.Background(), "forever") }()
			select {
			case <-running:
			case <-wd.Done():
				t.Fatal("the call did not start")
			}
			if blocking {
				// A Close whose context has ended does not wait.
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := e.Close(ctx); err == nil || !strings.Contains(err.Error(), "still running") {
					t.Fatalf("Close under a call that cannot be interrupted: %v; want a refusal", err)
				}
				close(release)
			}
			if err := within(t, wd, "Close", func() error { return e.Close(wd) }); err != nil {
				t.Fatalf("Close while a call runs: %v", err)
			}
			callErr := within(t, wd, "the interrupted call", func() error { return <-done })
			if !errors.Is(callErr, ErrInterrupted) || !errors.Is(callErr, ErrClosed) {
				t.Fatalf("the call Close interrupted: %v; want ErrInterrupted wrapping ErrClosed", callErr)
			}
			if err := in.Call(context.Background(), "count"); !errors.Is(err, ErrClosed) {
				t.Fatalf("a call after Close: %v; want ErrClosed", err)
			}
			if err := e.Close(context.Background()); err != nil {
				t.Fatalf("a second Close: %v", err)
			}
		}
	})
}

// TestStartFunctionInterruptible: a module whose start function (start
// section) computes forever is interrupted while it is instantiated, on
// every engine (wazero runs the start function as a call of its own after
// instantiation: package instrument exports it instead), and a start
// function still runs before anything else and fails the instantiation
// when it traps.
func TestStartFunctionInterruptible(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		e := newTestEngine(t, Config{Engine: eng})
		wd := watchdog(t)
		loop := wasmtest.StartSection(0x03, 0x40, 0x0c, 0x00, 0x0b) // (loop br 0)
		m, err := e.Compile(wd, loop)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := m.Functions()["enarx.start"]; ok {
			t.Fatal("the exported start function is listed among the module's functions")
		}
		ctx, cancel := context.WithCancelCause(wd)
		time.AfterFunc(50*time.Millisecond, func() { cancel(errors.New("test cancels")) })
		err = within(t, wd, "Instantiate", func() error {
			_, err := m.Instantiate(ctx, nil)
			return err
		})
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("instantiating a module whose start function loops: %v, want ErrInterrupted", err)
		}

		// i32.const 0 i32.const 42 i32.store: memory[0] = 42.
		in := instantiate(t, e, wasmtest.StartSection(0x41, 0x00, 0x41, 0x2a, 0x36, 0x02, 0x00))
		if mem := in.Memory(); len(mem) == 0 || mem[0] != 42 {
			t.Fatalf("the start function did not run before Instantiate returned")
		}
		m, err = e.Compile(wd, wasmtest.StartSection(0x00)) // unreachable
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Instantiate(wd, nil); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("a trapping start function: %v", err)
		}
	})
}
