// Package tdx provides the "tdx" backend — the Keep runs in this
// process inside an Intel TDX trust domain, whose memory the CPU encrypts and
// whose launch the TDX module measured (MRTD, RTMRs) — and the clearly
// labelled "tdx-emulated" backend, which produces real-format TDX quotes
// signed by a locally generated test root on machines without TDX.
//
// The trust domain is the Keep: the host cannot read or alter its memory,
// but the guest kernel and everything in the TD image are inside the trust
// boundary and covered by MRTD/RTMRs. See the README ("Keeps in
// confidential VMs").
package tdx

import (
	"context"
	"fmt"
	"io/fs"
	"os"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/evidence/tdx"
	"github.com/enarx-go/enarx/evidence/tsm"
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
// configfs-tsm tdx_guest provider or the tdx-guest device (GuestCheck).
func (b Backend) Available() bool { return b.Unavailable() == nil }

// Unavailable implements backend.Reasoner: GuestCheck on this machine (on
// Root, where configfs-tsm's provider cannot be read).
func (b Backend) Unavailable() error {
	if b.Root == "" {
		return GuestCheck(os.DirFS("/"), (&tsm.Source{}).ProviderName)
	}
	return GuestCheck(os.DirFS(b.Root), nil)
}

// GuestDevice is the TDX guest driver's device (Linux before 6.7).
const GuestDevice = "/dev/tdx_guest"

// GuestCheck returns nil when fsys (a machine's root directory) is a TDX
// guest the tdx backend can get quotes in: GuestDevice exists, or
// configfs-tsm's report provider, as providerName reads it (normally
// (&tsm.Source{}).ProviderName), is tdx_guest. An SEV-SNP guest's
// configfs-tsm does not count. `enarx platform info` shows this check's
// error.
func GuestCheck(fsys fs.FS, providerName func() (string, error)) error {
	if err := tsm.CheckGuest(fsys, GuestDevice, tsm.ProviderTDX, providerName); err != nil {
		return fmt.Errorf("not a TDX guest: %w; run enarx inside a TDX trust domain (Linux 6.7+ offers %s, older guests %s)", err, tsm.ReportDir, GuestDevice)
	}
	return nil
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
	return backend.RunInProcess(ctx, l, o)
}
