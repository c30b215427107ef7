package backend

import (
	"context"
	"errors"

	"github.com/enarx-go/enarx/keep"
)

// NilName is the nil backend's identifier.
const NilName = "nil"

// ErrTimeout is returned when the workload ran longer than the launch
// policy's Timeout (--timeout) and was stopped.
var ErrTimeout = errors.New("the workload exceeded its --timeout and was stopped")

// Nil is the "nil" backend: the Keep runtime runs in the enarx process
// itself, with no isolation from the host and no hardware evidence. It is
// always available and every build has it; it exists for development,
// tests and CI, as upstream's nil backend.
type Nil struct{}

func init() { Register(Nil{}) }

// Name implements Backend.
func (Nil) Name() string { return NilName }

// Protection implements Backend.
func (Nil) Protection() Protection { return ProtectionNone }

// Available implements Backend: always.
func (Nil) Available() bool { return true }

// Configured implements Backend: nothing to configure.
func (Nil) Configured() error { return nil }

// Run implements Backend.
func (Nil) Run(ctx context.Context, l *Launch) (int, error) {
	o := l.Options
	o.Files = l.Files
	return RunInProcess(ctx, l, o)
}

// RunInProcess runs l's workload with keep.Run in this process, with the
// options o (l.Options completed by the backend: files, evidence, cache),
// and applies the launch policy's Timeout: it stops the workload when it
// expires, whether it computes or waits (both engines interrupt a
// computing guest when the run's context ends, unless o.Killed says the
// process's end stops it). The in-process backends (nil, snp, tdx and the
// emulated ones) run through it.
func RunInProcess(ctx context.Context, l *Launch, o keep.Options) (int, error) {
	if t := l.Policy.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t, ErrTimeout)
		defer cancel()
	}
	code, err := keep.Run(ctx, l.Workload, o)
	if err != nil && errors.Is(context.Cause(ctx), ErrTimeout) {
		return 1, ErrTimeout
	}
	return code, err
}
