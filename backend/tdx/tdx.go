// Package tdxbackend provides the "tdx" backend — the Keep runs in this
// process inside an Intel TDX trust domain, whose memory the CPU encrypts and
// whose launch the TDX module measured (MRTD, RTMRs) — and the clearly
// labelled "tdx-emulated" backend, which produces real-format TDX quotes
// signed by a locally generated test root on machines without TDX.
//
// The trust domain is the Keep: the host cannot read or alter its memory,
// but the guest kernel and everything in the TD image are inside the trust
// boundary and covered by MRTD/RTMRs. See the README ("Keeps in
// confidential VMs").
package tdxbackend

import (
	"context"
	"fmt"
	"os"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/evidence/tdx"
	"github.com/enarx-go/enarx/evidence/tsm"
	"github.com/enarx-go/enarx/keep"
)

// Name of the backend.
const Name = "tdx"

// CacheDir is the collateral cache: $ENARX_TDX_CACHE, else
// /var/cache/intel-tdx.
func CacheDir() string {
	if d := os.Getenv("ENARX_TDX_CACHE"); d != "" {
		return d
	}
	return tdx.DefaultCacheDir
}

// Backend is the real TDX guest backend.
type Backend struct {
	// Root is the file-system root for probes ("" = "/"); tests fake it.
	Root string
}

func init() { backend.Register(Backend{}) }

func (b Backend) path(p string) string { return b.Root + p }

// Name implements backend.Backend.
func (Backend) Name() string { return Name }

// Protection implements backend.Backend.
func (Backend) Protection() backend.Protection { return backend.ProtectionTEE }

// Available implements backend.Backend: this is a TDX guest with a
// configfs-tsm tdx_guest provider or the tdx-guest device.
func (b Backend) Available() bool {
	if _, err := os.Stat(b.path("/dev/tdx_guest")); err == nil {
		return true
	}
	if _, err := os.Stat(b.path("/sys/kernel/config/tsm/report")); err != nil || b.Root != "" {
		return false
	}
	p, err := (&tsm.Source{}).ProviderName()
	return err == nil && p == tsm.ProviderTDX
}

// Configured implements backend.Backend: the collateral must be cached.
func (b Backend) Configured() error {
	if _, err := (&tdx.Cache{Dir: b.path(CacheDir())}).Collateral(); err != nil {
		return fmt.Errorf("TDX collateral: %w", err)
	}
	return nil
}

// Run implements backend.Backend.
func (Backend) Run(ctx context.Context, l *backend.Launch) (int, error) {
	o := l.Options
	o.Files = l.Files
	// The compilation cache is machine code on a disk the hypervisor can
	// write: inside a confidential VM the Keep compiles every run.
	o.NoCache = true
	o.Evidence = &tdx.Provider{Cache: &tdx.Cache{Dir: CacheDir()}, Logger: o.Logger}
	return keep.Run(ctx, l.Workload, o)
}
