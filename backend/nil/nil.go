// Package nilbackend is the "nil" backend: the Keep runtime runs in the
// enarx process itself, with no isolation from the host and no hardware
// evidence. It is always available; it exists for development, tests and
// CI, as upstream's nil backend.
package nilbackend

import (
	"context"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/keep"
)

// Name is the backend identifier.
const Name = "nil"

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

// Run implements backend.Backend.
func (Backend) Run(ctx context.Context, l *backend.Launch) (int, error) {
	o := l.Options
	o.Files = l.Files
	return keep.Run(ctx, l.Workload, o)
}
