package tdxbackend

import (
	"context"
	"fmt"
	"time"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/evidence/emulated"
	"github.com/enarx-go/enarx/keep"
)

// EmulatedName is the tdx-emulated backend's identifier.
const EmulatedName = "tdx-emulated"

// Emulated is the tdx-emulated backend: real-format quotes signed by a
// local test root. It protects nothing; it exercises the attestation path.
type Emulated struct{}

func init() { backend.Register(Emulated{}) }

// Name implements backend.Backend.
func (Emulated) Name() string { return EmulatedName }

// Protection implements backend.Backend: below nil, never chosen implicitly.
func (Emulated) Protection() backend.Protection { return backend.ProtectionNone - 1 }

// Available implements backend.Backend: anywhere.
func (Emulated) Available() bool { return true }

// Configured implements backend.Backend.
func (Emulated) Configured() error {
	_, err := emulated.DefaultDir()
	return err
}

// Run implements backend.Backend.
func (Emulated) Run(ctx context.Context, l *backend.Launch) (int, error) {
	p, err := EmulatedProvider()
	if err != nil {
		return 1, err
	}
	o := l.Options
	o.Files = l.Files
	o.Evidence = p
	if o.Logger != nil {
		o.Logger.Warn("tdx-emulated backend: evidence is signed by a local test root, not Intel hardware; the workload is NOT protected from this host")
	}
	return keep.Run(ctx, l.Workload, o)
}

// EmulatedMeasurements returns what the emulated TD reports: MRTD is the
// SHA-384 of the enarx executable (the code that runs the Keep), RTMRs are
// zero.
func EmulatedMeasurements() (emulated.TDXOptions, error) {
	m, err := emulated.Measurement()
	if err != nil {
		return emulated.TDXOptions{}, err
	}
	var o emulated.TDXOptions
	o.MRTD = m
	return o, nil
}

// EmulatedProvider loads (or creates on first use) the emulated root.
func EmulatedProvider() (*emulated.TDXProvider, error) {
	dir, err := emulated.DefaultDir()
	if err != nil {
		return nil, err
	}
	root, err := emulated.LoadOrCreateTDXRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("tdx-emulated: %w", err)
	}
	o, err := EmulatedMeasurements()
	if err != nil {
		return nil, fmt.Errorf("tdx-emulated: %w", err)
	}
	return &emulated.TDXProvider{Root: root, Options: o, Now: time.Now}, nil
}
