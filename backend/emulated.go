package backend

import (
	"context"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/evidence/emulated"
)

// Emulated is a labelled test backend (snp-emulated, tdx-emulated): the
// Keep runs in this process, like nil, with real-format evidence signed by
// a local test root (package evidence/emulated). It protects nothing; it
// exercises the attestation path where there is no TEE. It ranks below nil,
// so it is never chosen implicitly, and says so in the log on every run.
type Emulated struct {
	// ID is the backend identifier, e.g. "snp-emulated".
	ID string
	// Hardware names what is emulated, for the warning ("AMD SEV-SNP").
	Hardware string
	// Provider loads (or creates on first use) the emulated root.
	Provider func() (attest.EvidenceProvider, error)
}

// Name implements Backend.
func (e Emulated) Name() string { return e.ID }

// Protection implements Backend: below nil.
func (Emulated) Protection() Protection { return ProtectionNone - 1 }

// Available implements Backend: anywhere.
func (Emulated) Available() bool { return true }

// Configured implements Backend: the emulated roots need a user config
// directory to live in.
func (Emulated) Configured() error {
	_, err := emulated.DefaultDir()
	return err
}

// Run implements Backend.
func (e Emulated) Run(ctx context.Context, l *Launch) (int, error) {
	p, err := e.Provider()
	if err != nil {
		return 1, err
	}
	o := l.Options
	o.Files = l.Files
	o.Evidence = p
	if o.Logger != nil {
		o.Logger.Warn(e.ID + " backend: evidence is signed by a local test root, not " + e.Hardware +
			" hardware; the workload is NOT protected from this host")
	}
	return RunInProcess(ctx, l, o)
}
