// Package snp provides the "snp" backend — the Keep runs in this
// process inside an AMD SEV-SNP confidential VM, whose memory the hardware
// encrypts and whose launch the firmware measured — and the clearly labelled
// "snp-emulated" backend, which produces real-format evidence signed by a
// locally generated test root on machines without SEV-SNP.
//
// The confidential VM is the Keep: the host (hypervisor, cloud operator)
// cannot read or alter its memory, but the guest kernel and everything in the
// VM image are inside the trust boundary and covered by the launch
// measurement. See the README ("Keeps in confidential VMs").
//
// This package runs on the host side of keep.Run; evidence is produced by
// package evidence/snp inside the VM.
package snp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/evidence/emulated"
	"github.com/enarx-go/enarx/evidence/snp"
	"github.com/enarx-go/enarx/evidence/tsm"
)

// Names of the backends.
const (
	Name         = "snp"
	EmulatedName = "snp-emulated"
)

// CacheDir is the collateral cache: $ENARX_SNP_CACHE, else upstream's
// /var/cache/amd-sev.
func CacheDir() string {
	if d := os.Getenv("ENARX_SNP_CACHE"); d != "" {
		return d
	}
	return snp.DefaultCacheDir
}

// Backend is the real SEV-SNP guest backend.
type Backend struct {
	// Root is the file-system root for probes ("" = "/"); tests fake it.
	Root string
}

// Emulated is the snp-emulated backend (see backend.Emulated).
var Emulated = backend.Emulated{
	ID: EmulatedName, Hardware: "AMD SEV-SNP",
	Provider: func() (attest.EvidenceProvider, error) { return EmulatedProvider() },
}

func init() {
	backend.Register(Backend{})
	backend.Register(Emulated)
}

// Name implements backend.Backend.
func (Backend) Name() string { return Name }

// Protection implements backend.Backend.
func (Backend) Protection() backend.Protection { return backend.ProtectionTEE }

// Available implements backend.Backend: this is an SEV-SNP guest, with a
// configfs-tsm sev_guest provider or the sev-guest device (GuestCheck).
func (b Backend) Available() bool { return b.Unavailable() == nil }

// Unavailable implements backend.Reasoner: GuestCheck on this machine (on
// Root, where configfs-tsm's provider cannot be read).
func (b Backend) Unavailable() error {
	if b.Root == "" {
		return GuestCheck(os.DirFS("/"), (&tsm.Source{}).ProviderName)
	}
	return GuestCheck(os.DirFS(b.Root), nil)
}

// GuestDevice is the SEV-SNP guest driver's device (Linux before 6.7).
const GuestDevice = "/dev/sev-guest"

// GuestCheck returns nil when fsys (a machine's root directory) is an
// SEV-SNP guest the snp backend can get reports in: GuestDevice exists, or
// configfs-tsm's report provider, as providerName reads it (normally
// (&tsm.Source{}).ProviderName), is sev_guest. A TDX guest's configfs-tsm
// does not count. `enarx platform info` shows this check's error.
func GuestCheck(fsys fs.FS, providerName func() (string, error)) error {
	if err := tsm.CheckGuest(fsys, GuestDevice, tsm.ProviderSNP, providerName); err != nil {
		return fmt.Errorf("not an SEV-SNP guest: %w; run enarx inside an SEV-SNP confidential VM (Linux 6.7+ offers %s, older guests %s)", err, tsm.ReportDir, GuestDevice)
	}
	return nil
}

func (b Backend) path(p string) string {
	if b.Root == "" {
		return p
	}
	return b.Root + p
}

// Configured implements backend.Backend: the AMD CRLs must be cached (the
// VCEK normally comes with the extended report).
func (b Backend) Configured() error {
	c := &snp.Cache{Dir: b.path(CacheDir())}
	l, err := c.CRLs()
	if err != nil {
		return err
	}
	if len(l) == 0 {
		return errors.New("the AMD CRL cache is empty; run `enarx platform snp fetch`")
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
	o.Evidence = &snp.Provider{Cache: &snp.Cache{Dir: CacheDir()}, Logger: o.Logger}
	return backend.RunInProcess(ctx, l, o)
}

// EmulatedProvider loads (or creates on first use) the emulated root and
// returns an evidence provider whose measurement is the enarx executable's
// digest (see emulated.Measurement).
func EmulatedProvider() (*emulated.SNPProvider, error) {
	dir, err := emulated.DefaultDir()
	if err != nil {
		return nil, err
	}
	root, err := emulated.LoadOrCreateSNPRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("snp-emulated: %w", err)
	}
	m, err := emulated.Measurement()
	if err != nil {
		return nil, fmt.Errorf("snp-emulated: %w", err)
	}
	return &emulated.SNPProvider{Root: root, Options: emulated.SNPOptions{Measurement: m}, Now: time.Now}, nil
}
