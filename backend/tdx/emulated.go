package tdx

import (
	"fmt"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/evidence/emulated"
)

// EmulatedName is the tdx-emulated backend's identifier.
const EmulatedName = "tdx-emulated"

// Emulated is the tdx-emulated backend (see backend.Emulated).
var Emulated = backend.Emulated{
	ID: EmulatedName, Hardware: "Intel TDX",
	Provider: func() (attest.EvidenceProvider, error) { return EmulatedProvider() },
}

func init() { backend.Register(Emulated) }

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
