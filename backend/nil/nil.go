// Package nilbackend is the "nil" backend: the Keep runtime runs in the
// enarx process itself, with no isolation from the host and no hardware
// evidence. It is always available; it exists for development, tests and
// CI, as upstream's nil backend.
package nilbackend

import (
	"context"
	"errors"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/keep"
)

// Name is the backend identifier.
const Name = "nil"

// ErrTimeout is returned when the workload ran longer than the launch
// policy's Timeout (--timeout) and was stopped.
var ErrTimeout = errors.New("the workload exceeded its --timeout and was stopped")

// Backend runs keep.Run in-process.
type Backend struct{}

func init() { backend.Register(Backend{}) }

// Name implements backend.Backend.
func (Backend) Name() string { return Name }

// Protection implements backend.Backend.
func (Backend) Protection() backend.Protection { return backend.ProtectionNone }

// Available implements backend.Backend: always.
func (Backend) Available() bool { return true }

// Configured implements backend.Backend: nothing to configure.
func (Backend) Configured() error { return nil }

// Run implements backend.Backend. A policy Timeout stops the workload
// when it expires, whether it computes or waits (both engines interrupt
// a computing guest when the run's context ends).
func (Backend) Run(ctx context.Context, l *backend.Launch) (int, error) {
	o := l.Options
	o.Files = l.Files
	if t := backend.PolicyFrom(ctx).Timeout; t > 0 {
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
