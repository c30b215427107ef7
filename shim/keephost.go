package shim

import (
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/hostio"
	"github.com/enarx-go/enarx/keep"
)

// KeepHostArg is the hidden argument that makes the shim binary a keep
// host: the per-task process that launches one Keep.
const KeepHostArg = "__enarx-keep-host"

// IsKeepHost reports whether this process was started as a keep host.
func IsKeepHost() bool { return len(os.Args) > 1 && os.Args[1] == KeepHostArg }

// launchFD is the keep host's descriptor of its launch message.
const launchFD = 3

// moduleFD is the keep host's descriptor of the image's module, when the
// launch message says it has one (launchMsg.HasModule).
const moduleFD = 4

// maxLaunch bounds the launch message the keep host decodes: a package's
// bundle (maxModule; the image's module comes on moduleFD), Enarx.toml
// and a little more.
const maxLaunch = maxModule + maxConfig + 1<<20

// launchMsg is what the shim tells a keep host: everything it needs to run
// the Keep as `enarx run` would. The shim has read and checked the image;
// the keep host parses the config again only to know what to open.
type launchMsg struct {
	// module is the image's module (workload.module), which the keep host
	// gets as moduleFD and reads itself; not encoded (an unexported
	// field). HasModule says it was sent.
	module    *os.File
	HasModule bool
	// Wasm is the module once the keep host has read it (the shim sends
	// none).
	Wasm []byte
	// Bundle is a Drawbridge package's bundle (PackageEnv), verified by
	// the Keep; Wasm is then nil and Config the host's unverified copy of
	// the package's Enarx.toml, used only to open host resources.
	Bundle []byte
	// Config is the image's Enarx.toml, unchanged (its digest is the one
	// the Keep's certificate binds); nil is the default fd table.
	Config []byte
	// HasConfig says Config is present, empty or not: gob sends an empty
	// slice as nothing, and an empty Enarx.toml (no fds at all) is not
	// the default one. writeLaunch sets it.
	HasConfig  bool
	ConfigName string
	// Args follow main.wasm and the config's args (the OCI args after the
	// entrypoint).
	Args []string
	// Env is the OCI spec's env, added after Enarx.toml's [env]
	// (keep.Options.Env; Enarx.toml's value wins a clash).
	Env []string
	// Backend names the Keep backend; "" is the most protective available
	// and configured (backend.Select).
	Backend     string
	Engine      string
	MemoryLimit uint64
	CacheDir    string
	NoCache     bool
	// CacheScope is keep.Options.CacheScope: the pod's Kubernetes
	// namespace (cacheScope).
	CacheScope string
	// LoopbackUp asks the keep host to bring up the loopback interface of
	// the new network namespace it was started in (as runc does for a
	// container whose spec asks for a new one).
	LoopbackUp bool
	// LogLevel is the level of the keep host's diagnostics on the task's
	// stderr.
	LogLevel slog.Level
	// RequireIsolation is the launch policy's (backend.Policy).
	RequireIsolation bool
	// Pause makes the keep host a Kubernetes pod sandbox's process instead
	// of a Keep's (see podSandbox): it holds the pod's network namespace
	// until it is signalled.
	Pause bool
}

// KeepHostMain runs the keep host and returns its exit status: the
// workload's, or 1 with the reason on stderr (the task's stderr) when the
// launch fails, as `enarx run` does. The cmd/containerd-shim-enarx-v1 main
// calls it when IsKeepHost.
func KeepHostMain() int {
	f := os.NewFile(launchFD, "launch")
	if f == nil {
		fmt.Fprintln(os.Stderr, "Error: the keep host was started without its launch message (fd 3); it is started by containerd-shim-enarx-v1 only")
		return 1
	}
	m, err := readLaunch(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: reading the launch message from the shim: %v\n", err)
		return 1
	}
	if m.HasModule {
		if m.Wasm, err = readModule(os.NewFile(moduleFD, "module")); err != nil {
			fmt.Fprintf(os.Stderr, "Error: reading the module the shim opened: %v\n", err)
			return 1
		}
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: m.LogLevel}))
	code, err := m.run(context.Background(), logger)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
	}
	return code
}

// close closes the module the shim opened for the keep host (nil-safe).
func (m *launchMsg) close() {
	if m != nil && m.module != nil {
		m.module.Close()
	}
}

// readModule reads the image's module from f (moduleFD), in the keep
// host, so in the task's cgroup: at most maxModule bytes, as the shim
// checked.
func readModule(f *os.File) ([]byte, error) {
	if f == nil {
		return nil, errors.New("the keep host was started without the module's descriptor")
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxModule+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxModule {
		return nil, fmt.Errorf("the module grew past the %d bytes allowed since the shim checked it", maxModule)
	}
	return b, nil
}

// writeLaunch sends m to a keep host (startKeepHost); m.module goes
// separately, as the keep host's moduleFD.
func writeLaunch(w io.Writer, m *launchMsg) error {
	msg := *m
	msg.HasConfig = m.Config != nil
	msg.HasModule = m.module != nil
	if err := gob.NewEncoder(w).Encode(&msg); err != nil {
		return fmt.Errorf("encoding the launch message: %w", err)
	}
	return nil
}

// readLaunch decodes what writeLaunch sent (KeepHostMain), at most
// maxLaunch bytes.
func readLaunch(r io.Reader) (*launchMsg, error) {
	var m launchMsg
	if err := gob.NewDecoder(io.LimitReader(r, maxLaunch)).Decode(&m); err != nil {
		return nil, err
	}
	if m.HasConfig && m.Config == nil {
		m.Config = []byte{}
	}
	return &m, nil
}

// run launches the Keep and returns the exit status, as internal/cli's
// launchKeep does for enarx run: the workload's status, or 1 (or the
// workload's own non-zero status) with an error.
func (m *launchMsg) run(ctx context.Context, logger *slog.Logger) (int, error) {
	if m.LoopbackUp {
		if err := loopbackUp(); err != nil {
			return 1, fmt.Errorf("bringing up the loopback interface of the task's new network namespace: %w", err)
		}
	}
	if m.Pause {
		// What the pause container's /pause does: wait for SIGTERM or
		// SIGINT and exit 0.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, unix.SIGTERM, unix.SIGINT)
		<-sig
		return 0, nil
	}
	cfg := config.Default()
	if m.Config != nil {
		var err error
		if cfg, err = config.Parse(m.ConfigName, m.Config); err != nil {
			return 1, err
		}
	}
	b, err := selectBackend(m.Backend)
	if err != nil {
		return 1, err
	}
	logger.Info("Keep backend: " + b.Name())
	keys, err := hostio.VolumeKeys(cfg, logger)
	if err != nil {
		return 1, err
	}
	files, err := hostio.Open(ctx, cfg)
	if err != nil {
		return 1, err
	}
	defer hostio.Close(files)
	wl := keep.Workload{Wasm: m.Wasm, Config: m.Config, ConfigName: m.ConfigName}
	if m.Bundle != nil {
		wl = keep.Workload{Bundle: m.Bundle}
	}
	code, err := b.Run(ctx, &backend.Launch{
		Workload: wl,
		Config:   cfg,
		Files:    files,
		Policy:   backend.Policy{RequireIsolation: m.RequireIsolation},
		// A nil Keep runs in this process, which a signal to the task
		// kills: the engine need not stop a computing guest itself.
		Options: m.options(keys, logger, b.Name() == backend.NilName),
	})
	switch {
	case err != nil && code == 0:
		return 1, err
	case err != nil:
		return code, err
	case code < 0 || code > 255:
		return 1, fmt.Errorf("the Keep exited with a non-portable exit code %d", code)
	}
	return code, nil
}

// options are the keep.Options of the Keep m launches, with the volume
// keys and logger of the keep host.
func (m *launchMsg) options(keys map[string][]byte, logger *slog.Logger, killed bool) keep.Options {
	return keep.Options{
		Args:        m.Args,
		Env:         m.Env,
		VolumeKeys:  keys,
		Logger:      logger,
		CacheDir:    m.CacheDir,
		NoCache:     m.NoCache,
		CacheScope:  m.CacheScope,
		MemoryLimit: m.MemoryLimit,
		Engine:      m.Engine,
		Killed:      killed,
	}
}

// loopbackUp sets IFF_UP on "lo" in this process's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// selectBackend is backend.Select, except that nil is never chosen for
// the node by itself (refuseImplicitNil).
func selectBackend(name string) (backend.Backend, error) {
	b, err := backend.Select(name)
	if err != nil {
		return nil, err
	}
	if err := refuseImplicitNil(name, b); err != nil {
		return nil, err
	}
	return b, nil
}

// refuseImplicitNil refuses b when it is nil and was not named: nil runs
// the pod's workload inside this keep host, as root in the node's
// namespaces, which only a node whose operator named it (runtime options
// backend = "nil", or the shim's ENARX_BACKEND) may do.
func refuseImplicitNil(name string, b backend.Backend) error {
	if name == "" && b.Name() == backend.NilName {
		return errors.New("no Keep backend but nil is available and configured on this node, and nil (the workload in " +
			"the keep host itself, as root) is used only when named: set backend in the RuntimeClass's runtime options " +
			"(e.g. \"sandbox\"; check `enarx platform info` on the node), or backend = \"nil\" to accept it")
	}
	return nil
}
