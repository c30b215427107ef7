package store

import (
	"context"
	"fmt"
	"runtime"
)

// parseSlots bounds the directory parses running at once in the process,
// whatever the number of registries: parsing a directory of
// MaxDirectorySize bytes costs up to about 1 s of CPU (types.ParseDirectory;
// see docs/drawbridge.md, "Performance") and, at its peak, a few hundred
// MiB of memory, and a repository owner can send many such
// uploads (to many tags) in parallel. A parse waits for a slot (or for its
// context to end); it holds the slot only while it parses, never while it
// reads a body or waits for anything else, so a slow client cannot keep a
// slot. One slot per CPU: more would not parse faster, only use more
// memory at once.
var parseSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

// MaxParallelParses is the number of directory parses that may run at
// once (GOMAXPROCS at start-up).
func MaxParallelParses() int { return cap(parseSlots) }

// ParseHook, if not nil, is called by every bounded directory parse: with
// false when it asks for a slot, and with true once it holds one, just
// before parsing (it may block, holding the slot). For tests; set it
// while no parse runs.
var ParseHook func(holding bool)

// parseSlot waits for a parse slot (or for ctx to end, which is then the
// error) and returns its release; the caller parses, then releases.
func parseSlot(ctx context.Context) (release func(), err error) {
	if ParseHook != nil {
		ParseHook(false)
	}
	if err := ctx.Err(); err != nil { // a request that is gone
		return nil, fmt.Errorf("waiting to parse a directory: %w", context.Cause(ctx))
	}
	select {
	case parseSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to parse a directory: %w", context.Cause(ctx))
	}
	if ParseHook != nil {
		ParseHook(true)
	}
	return func() { <-parseSlots }, nil
}
