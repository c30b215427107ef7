package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/crypto/x509roots/fallback/bundle"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/identity"
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
// one layer the sandbox cannot do without.
func (Backend) Available() bool {
	if runtime.GOOS != "linux" || !servesKeeps {
		return false
	}
	return seccomp.Supported()
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
	if IsKeepProcess() {
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

// Run implements backend.Backend.
func (Backend) Run(ctx context.Context, l *backend.Launch) (int, error) {
	if l.Options.Evidence != nil {
		return 1, errors.New("the sandbox backend has no TEE evidence to offer")
	}
	p := backend.LaunchPolicy(ctx, l)
	return Run(ctx, &Request{
		// The module's cache directory is made while the Keep starts.
		moduleCache:      !l.Options.NoCache,
		cacheBase:        l.Options.CacheDir,
		Wasm:             l.Workload.Wasm,
		Config:           l.Workload.Config,
		ConfigName:       l.Workload.ConfigName,
		Package:          l.Workload.Package,
		Bundle:           l.Workload.Bundle,
		Files:            l.Files,
		Args:             l.Options.Args,
		MemoryLimit:      l.Options.MemoryLimit,
		Engine:           l.Options.Engine,
		LogLevel:         logLevel(ctx, l.Options.Logger),
		RequireIsolation: p.RequireIsolation,
		Timeout:          p.Timeout,
		Logger:           l.Options.Logger,
		StewardAddr:      stewardAddr(l),
	})
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

// ModuleCacheDir creates the compilation cache directory of one module,
// <cache>/sandbox/<sha256 of the module>, owned by the user the Keep runs
// as, and returns its absolute path. The Keep compiles into it and reuses
// it on later runs. One directory per module means a Keep that escaped wasm
// could only plant machine code for later runs of the same module, which
// it already controls; no other workload reads it, and the host never
// compiles the untrusted module itself.
func ModuleCacheDir(base string, wasm []byte) (string, error) {
	return moduleCacheDir(base, digest(wasm))
}

// moduleCacheDir is ModuleCacheDir for a module whose hex SHA-256 is sum.
func moduleCacheDir(base, sum string) (string, error) {
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
	dir := filepath.Join(root, sum)
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

// stewardAddr is where the host may connect for the Keep: the host and
// port of Enarx.toml's steward URL (the Keep re-checks the URL itself and
// verifies the Steward's TLS certificate).
func stewardAddr(l *backend.Launch) string {
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

// stewardClient is the Keep's HTTP client for the Steward: every connection
// comes from dial (the host's broker), TLS is verified against caPEM or,
// without it, the Mozilla roots compiled into the binary (as the identity
// package does), and no proxy or redirect is followed.
func stewardClient(caPEM string, dial func(context.Context) (net.Conn, error)) (*http.Client, error) {
	roots := x509.NewCertPool()
	if caPEM != "" {
		if !roots.AppendCertsFromPEM([]byte(caPEM)) {
			return nil, errors.New("keep identity: steward_ca holds no usable PEM certificate")
		}
	} else {
		for r := range bundle.Roots() {
			c, err := x509.ParseCertificate(r.Certificate)
			if err != nil {
				continue
			}
			if r.Constraint != nil {
				roots.AddCertWithConstraint(c, r.Constraint)
			} else {
				roots.AddCert(c)
			}
		}
	}
	tr := &http.Transport{
		DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConns:        1,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

// logLevel finds the most verbose level logger accepts, so the Keep logs
// at the same level.
func logLevel(ctx context.Context, l *slog.Logger) string {
	if l == nil {
		return "error"
	}
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn} {
		if l.Enabled(ctx, lv) {
			return lv.String()
		}
	}
	return "error"
}

// RunKeep is the RunFunc the enarx binary passes to KeepMain: it runs the
// job with the same runtime as the nil backend, with the module's own
// compilation cache if the host provided one (see ModuleCacheDir).
func RunKeep(ctx context.Context, j *Job) (int, error) {
	var establish func(context.Context, identity.Request) (*identity.Identity, error)
	if j.StewardDial != nil {
		establish = func(ctx context.Context, req identity.Request) (*identity.Identity, error) {
			hc, err := stewardClient(req.StewardCA, j.StewardDial)
			if err != nil {
				return nil, err
			}
			req.HTTPClient, req.StewardCA = hc, ""
			return identity.Establish(ctx, req)
		}
	}
	return keep.Run(ctx, keep.Workload{
		Wasm: j.Wasm, Config: j.Config, ConfigName: j.ConfigName, Package: j.Package, Bundle: j.Bundle,
	}, keep.Options{
		Files:       j.Files,
		Args:        j.Args,
		Logger:      j.Logger,
		CacheDir:    j.CacheDir,
		NoCache:     j.CacheDir == "",
		Identity:    establish,
		MemoryLimit: j.MemoryLimit,
		Engine:      j.Engine,
		// The host kills this process on --timeout and interrupt: the
		// engine needs no epoch checks in the guest's loops.
		Killed: true,
	})
}
