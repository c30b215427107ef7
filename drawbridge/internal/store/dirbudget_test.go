package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDirBudget: the budget refuses (ErrBusy) once its wait runs out, ends
// a wait with the request's context (not ErrBusy), lets a body larger than
// the whole budget take all of it, and counts what is held.
func TestDirBudget(t *testing.T) {
	r := &Registry{MaxDirectoryBuffers: 100, DirectoryBufferWait: 10 * time.Millisecond}
	b := r.dirBuffers()
	ctx := t.Context()
	rel1, err := b.acquire(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.acquire(ctx, 50); !errors.Is(err, ErrBusy) {
		t.Fatalf("over the budget after the wait: %v, want ErrBusy", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.acquire(cctx, 50); err == nil || errors.Is(err, ErrBusy) || !errors.Is(err, context.Canceled) {
		t.Fatalf("request gone while waiting: %v, want context.Canceled", err)
	}
	rel2, err := b.acquire(ctx, 40)
	if err != nil {
		t.Fatal(err)
	}
	if n := r.DirectoryBuffersInUse(); n != 100 {
		t.Fatalf("in use: %d, want 100", n)
	}
	rel1()
	rel1() // once only
	rel2()
	if n := r.DirectoryBuffersInUse(); n != 0 {
		t.Fatalf("in use after release: %d, want 0", n)
	}
	relAll, err := b.acquire(ctx, 1000) // larger than the budget: all of it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.acquire(ctx, 0); !errors.Is(err, ErrBusy) {
		t.Fatalf("with the whole budget taken: %v, want ErrBusy", err)
	}
	relAll()
	if n := r.DirectoryBuffersInUse(); n != 0 {
		t.Fatalf("in use after release: %d, want 0", n)
	}
	// No wait: refused at once.
	r2 := &Registry{MaxDirectoryBuffers: 10, DirectoryBufferWait: -1}
	rel, err := r2.dirBuffers().acquire(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.dirBuffers().acquire(ctx, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("no wait: %v, want ErrBusy", err)
	}
	rel()
}
