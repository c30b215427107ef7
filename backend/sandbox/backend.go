package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/keep"
)

// Name is the backend identifier.
const Name = "sandbox"

// Backend runs each Keep in a confined child process.
type Backend struct{}

func init() { backend.Register(Backend{}) }

// Name implements backend.Backend.
func (Backend) Name() string { return Name }

// Protection implements backend.Backend.
func (Backend) Protection() backend.Protection { return backend.ProtectionSandbox }

// Available implements backend.Backend: Linux with seccomp filters, the
// one layer the sandbox cannot do without, on an architecture it has a
// filter for (amd64).
func (Backend) Available() bool {
	if runtime.GOOS != "linux" || !servesKeeps {
		return false
	}
	return seccompSupported() && haveSeccompProgram()
}

// servesKeeps records that this binary runs Keeps when re-executed. The
// enarx binary declares it in its main (EnableServing: its hidden command
// runs the Keep); a test binary does only if its TestMain calls ServeKeeps
// — otherwise the re-executed "Keep" would run the tests again. Any other
// binary that merely links this package cannot use the sandbox backend.
var servesKeeps bool

// EnableServing declares that this binary runs a sandbox Keep when it is
// re-executed (the enarx binary, through its hidden Keep command). Call it
// from main, before anything selects a backend.
func EnableServing() { servesKeeps = true }

// ServeKeeps must be called at the start of TestMain in any test binary
// that runs sandbox Keeps: if this process is a Keep it runs it with run
// and exits, otherwise it marks the binary as able to serve Keeps.
func ServeKeeps(run RunFunc) {
	if isKeepProcess() {
		os.Exit(KeepMain(run))
	}
	servesKeeps = true
}

// Configured implements backend.Backend: the enarx executable must be
// re-executable through /proc/self/exe. Missing namespaces or Landlock do
// not make the machine misconfigured: the Keep starts with the layers it
// can have and says which are missing (see --require-isolation).
func (Backend) Configured() error {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		return fmt.Errorf("cannot re-execute enarx through /proc/self/exe (is /proc mounted?): %w", err)
	}
	f.Close()
	return nil
}

// Run implements backend.Backend: the Keep runs in a confined child
// process (host.go), which receives l as its launch message (launch.go).
func (Backend) Run(ctx context.Context, l *backend.Launch) (int, error) {
	if l.Options.Evidence != nil {
		return 1, errors.New("the sandbox backend has no TEE evidence to offer")
	}
	code, _, err := run(ctx, l, hostOptions{})
	return code, err
}

// rootSandboxCache is the sandbox cache root when enarx runs as root: the
// Keep then runs as "nobody", which cannot search root's home directory.
const rootSandboxCache = "/var/cache/enarx/sandbox"

// searchable reports whether every directory from / down to dir lets
// others search it, as the Keep user ("nobody") must when enarx runs as
// root.
func searchable(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for p := abs; ; p = filepath.Dir(p) {
		st, err := os.Stat(p)
		if err == nil && st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// moduleCacheDir creates the compilation cache directory of one module,
// <base>/sandbox/<sum> (sum: the module's hex SHA-256, or for a package
// bundle, which holds its module, the bundle's), or for a non-empty
// scope (keep.Options.CacheScope) <base>/sandbox/<sum>-<scope tag> (backend.CacheDirName),
// owned by the user the Keep runs as, and returns its absolute path. The
// Keep compiles into it and reuses it on later runs. A Keep that escaped
// wasm could plant machine code there for the later runs of the same
// module in the same scope: one user's, which it already controls, when
// enarx runs Keeps for one user (scope ""); the Keeps of the same
// Kubernetes namespace under the containerd shim, which runs every
// tenant's Keeps as one user with one cache root. No Keep of another
// module or scope reads it, and the host never compiles the untrusted
// module itself.
func moduleCacheDir(base, sum, scope string) (string, error) {
	var root string
	switch {
	case base != "" && (os.Geteuid() != 0 || searchable(base)):
		root = filepath.Join(base, "sandbox")
	case os.Geteuid() == 0:
		root = rootSandboxCache
	default:
		d, err := keep.DefaultCacheDir()
		if err != nil {
			return "", err
		}
		root = filepath.Join(d, "sandbox")
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	// Searchable (not listable) by the Keep user, who owns only its own
	// module's directory.
	if err := os.MkdirAll(root, 0o711); err != nil {
		return "", fmt.Errorf("creating the sandbox compilation cache %s: %w", root, err)
	}
	dir := filepath.Join(root, backend.CacheDirName(sum, scope))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("creating the module's compilation cache %s: %w", dir, err)
	}
	uid, gid := keepHostID(os.Geteuid()), keepHostID(os.Getegid())
	if uid != os.Geteuid() {
		if err := os.Lchown(dir, uid, gid); err != nil {
			return "", fmt.Errorf("handing the module's compilation cache to the Keep user: %w", err)
		}
	}
	return dir, nil
}
