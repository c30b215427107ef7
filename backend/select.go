package backend

import (
	"fmt"
	"strings"
	"time"
)

// Select picks the backend to run a Keep on. An explicit name (--backend or
// ENARX_BACKEND) must exist, be available and be configured, with
// upstream's error messages. Without a name it is the most protective
// backend that is both available and configured; upstream checks only
// availability, which picks a backend that then fails (e.g. SGX without its
// caches) instead of falling through to one that works.
func Select(name string) (Backend, error) {
	if name != "" {
		b, err := Lookup(name)
		if err != nil {
			return nil, unknownBackend(name)
		}
		if !b.Available() {
			if r, ok := b.(Reasoner); ok {
				if err := r.Unavailable(); err != nil {
					return nil, fmt.Errorf("Keep backend %q is not available on this platform (%v). Please check with `enarx platform info`.", name, err)
				}
			}
			return nil, fmt.Errorf("Keep backend %q is not available on this platform.", name)
		}
		if err := b.Configured(); err != nil {
			return nil, fmt.Errorf("Keep backend %q is available on this platform, but the machine is misconfigured (%v). Please check with `enarx platform info`.", name, err)
		}
		return b, nil
	}
	for _, b := range All() {
		if e, ok := b.(ExplicitOnly); ok && e.ExplicitOnly() {
			continue
		}
		if b.Available() && b.Configured() == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("no Keep backend is available and configured on this platform. Please check with `enarx platform info`.")
}

// Reasoner is implemented by backends that can say why they are not
// available (what the machine lacks, and what to do).
type Reasoner interface {
	Unavailable() error
}

// ExplicitOnly is implemented by backends that may be used only when named
// right now (e.g. kvm under software emulation, which isolates nothing by
// hardware): Select never picks them by itself.
type ExplicitOnly interface {
	ExplicitOnly() bool
}

// Policy is host-side launch policy that applies to every backend that can
// honour it; it travels in Launch.Policy.
type Policy struct {
	// Timeout, if positive, is how long the workload may run before the
	// host kills its Keep (backends that run the Keep in another process
	// or VM).
	Timeout time.Duration
	// RequireIsolation makes a backend refuse to run a Keep that lacks
	// any of its isolation layers instead of warning and running.
	RequireIsolation bool
}

// unknownBackend is upstream's sentence, then the names this build knows
// and where to see which of them this machine can run.
func unknownBackend(name string) error {
	var names []string
	for _, b := range All() {
		names = append(names, b.Name())
	}
	msg := fmt.Sprintf("Keep backend identifier %q is unknown. This build's backends are %s (most protective first); "+
		"`enarx platform info` shows which of them this machine can run.", name, strings.Join(names, ", "))
	if name == "sgx" {
		// platform info reports SGX hardware, as upstream's does.
		msg += " It lists SGX as upstream does, but this build has no SGX Keeps."
	}
	return fmt.Errorf("%s", msg)
}
