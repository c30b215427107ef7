// Package backend defines how the host starts a Keep: a Backend takes the
// workload, its parsed config and the host resources opened for it (see
// internal/hostio) and runs the Keep runtime (package keep) somewhere: in
// this process (Nil, and the labelled test backends of type Emulated, both
// here), in a confined child process (backend/sandbox), in a microVM
// (backend/microvm), or in a confidential VM (backend/snp, backend/tdx).
// The registry lists backends most protective first.
//
// This package runs on the untrusted host.
package backend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"sync"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep"
)

// Launch is the one description of a Keep launch: every backend receives
// it whole, and a backend whose Keep runs elsewhere derives its own
// message to the Keep from it in one place (backend/sandbox's wire header,
// backend/microvm's channel messages).
type Launch struct {
	// Workload is the module and raw config bytes (the Keep re-parses them).
	Workload keep.Workload
	// Config is the host's parse of Workload.Config (config.Default() when
	// there is none); backends use it only to know what Files holds.
	Config *config.Config
	// Files are the host resources from hostio.Open, index-aligned with
	// Config.Files (nil for null). The caller closes them after Run.
	Files []*os.File
	// Options are passed to keep.Run (Files is overridden by Launch.Files).
	Options keep.Options
	// Policy is the host-side launch policy (--timeout,
	// --require-isolation).
	Policy Policy
}

// Protection orders backends: higher protects the workload more from the
// host.
type Protection int

// Protection levels.
const (
	// ProtectionNone: the workload runs in the host process (nil).
	ProtectionNone Protection = 0
	// ProtectionSandbox: a confined process, not a TEE.
	ProtectionSandbox Protection = 10
	// ProtectionVM: a virtual machine of its own, not a TEE (the host can
	// still read and change the Keep).
	ProtectionVM Protection = 15
	// ProtectionTEE: hardware-isolated memory with attestation.
	ProtectionTEE Protection = 20
)

// Backend runs Keeps.
type Backend interface {
	// Name is the --backend / ENARX_BACKEND identifier ("nil", ...).
	Name() string
	// Protection is how strongly the backend isolates the workload.
	Protection() Protection
	// Available reports whether this machine has what the backend needs at
	// all (hardware, kernel interfaces). It must be cheap and side-effect
	// free.
	Available() bool
	// Configured returns nil when the backend is ready to use, or an error
	// that says what is missing (shown by `enarx platform info`).
	Configured() error
	// Run runs the Keep to completion and returns the workload's exit
	// status; errors follow keep.Run's convention.
	Run(ctx context.Context, l *Launch) (int, error)
}

var (
	mu       sync.Mutex
	registry []Backend
)

// Register adds b to the registry. It panics on a duplicate name (a
// programming error, at init time).
func Register(b Backend) {
	mu.Lock()
	defer mu.Unlock()
	for _, x := range registry {
		if x.Name() == b.Name() {
			panic("backend: duplicate registration of " + b.Name())
		}
	}
	registry = append(registry, b)
	sort.SliceStable(registry, func(i, j int) bool {
		return registry[i].Protection() > registry[j].Protection()
	})
}

// All returns the registered backends, most protective first.
func All() []Backend {
	mu.Lock()
	defer mu.Unlock()
	return append([]Backend(nil), registry...)
}

// Lookup returns the backend called name.
func Lookup(name string) (Backend, error) {
	for _, b := range All() {
		if b.Name() == name {
			return b, nil
		}
	}
	return nil, fmt.Errorf("Keep backend identifier %q is unknown", name)
}

// StewardAddr is the host:port a host may connect to on the Keep's behalf:
// that of Enarx.toml's steward URL ("" without one). A Keep without a
// network of its own (sandbox, microVM) can reach only this address, and
// re-checks the URL and verifies the Steward's certificate itself.
func (l *Launch) StewardAddr() string {
	if l.Config == nil || l.Config.Steward == "" {
		return ""
	}
	u, err := url.Parse(l.Config.Steward)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// CacheDirName is the name of one module's directory in a compilation
// cache that Keeps write (the sandbox's, the kvm microVM's): sum (the
// module's hex SHA-256) for the empty cache scope, else sum, "-" and the
// first 16 hex digits of the scope's SHA-256 (keep.Options.CacheScope: a
// Kubernetes namespace, host input; hashed, a fixed-length name of safe
// characters). Keeps of different scopes never share such a directory.
func CacheDirName(sum, scope string) string {
	if scope == "" {
		return sum
	}
	h := sha256.Sum256([]byte(scope))
	return sum + "-" + hex.EncodeToString(h[:8])
}
