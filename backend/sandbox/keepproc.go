package sandbox

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// KeepArg is the hidden argument that makes the enarx binary (or a test
// binary, via TestMain) run as a sandbox Keep process.
const KeepArg = "__sandbox-keep"

// IsKeepProcess reports whether this process was started as a Keep.
func IsKeepProcess() bool { return len(os.Args) > 1 && os.Args[1] == KeepArg }

// controlFD is the Keep end of the host's socketpair; host resources follow.
const controlFD = 3

// Job is a workload as the Keep process received it, ready to run.
type Job struct {
	Wasm []byte
	// Config is the raw Enarx.toml (nil: default stdio).
	Config     []byte
	ConfigName string
	Package    string
	Bundle     []byte
	// Files are the host resources, index-aligned with the config's
	// [[files]].
	Files       []*os.File
	Args        []string
	MemoryLimit uint64
	// CacheDir is the module's compilation cache ("" = none).
	CacheDir string
	// StewardDial, if set, returns a connection to the configured Steward
	// (made by the host: the Keep cannot create sockets).
	StewardDial func(context.Context) (net.Conn, error)
	Logger      *slog.Logger
}

// RunFunc runs a Job inside the confined process; the enarx binary passes
// an adapter to keep.Run.
type RunFunc func(ctx context.Context, j *Job) (exitCode int, err error)

// preConfinePPID is the parent pid as the Keep saw it before confinement
// (tests only: 0 shows the Keep is in its own pid namespace).
var preConfinePPID int

// testHooks are actions a test binary can ask the confined process to
// attempt instead of running a workload; nil outside tests.
var testHooks map[string]func(arg string) string

// KeepMain is the Keep process: it reads the launch message from fd 3,
// checks it, confines itself, runs the workload with run and reports the
// result back. It returns the process exit status.
func KeepMain(run RunFunc) int {
	// Without TZ the Go runtime would try to open /etc/localtime lazily,
	// after confinement; the Keep logs in UTC.
	time.Local = time.UTC
	start := time.Now()
	// First the part of the capability drop that needs no launch
	// message and leaves mount rights: the host is meanwhile hashing the
	// module and filling the payload memfd.
	boundingErr := dropBoundingSet()
	bounded := time.Since(start)
	ctl := os.NewFile(controlFD, "control")
	if ctl == nil {
		fmt.Fprintln(os.Stderr, "Error: sandbox Keep: no control channel on fd 3")
		return 1
	}
	l, err := decodeLaunchWith(ctl, func(l *launch, size int64) ([]byte, error) {
		// The payload memfd follows the files' fds and the broker's.
		fd := controlFD + 1 + l.NFiles - len(l.Null)
		if l.Broker {
			fd++
		}
		return mapPayload(fd, size)
	})
	if err != nil {
		return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: bad launch message: %w", err))
	}
	files := make([]*os.File, l.NFiles)
	next := controlFD + 1
	for i := range files {
		if slices.Contains(l.Null, i) {
			continue
		}
		files[i] = os.NewFile(uintptr(next), fmt.Sprintf("fd%d", i))
		next++
		if files[i] == nil {
			return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: host fd for files[%d] missing", i))
		}
	}
	var steward func(context.Context) (net.Conn, error)
	if l.Broker {
		b, err := newBrokerDialer(os.NewFile(uintptr(next), "broker"))
		if err != nil {
			return keepFail(ctl, nil, err)
		}
		steward = b.Dial
		next++
	}
	if l.PayloadFD {
		next++ // mapped and closed by decodeLaunchWith
	}
	// The executable's fd comes last; it was only needed to exec.
	_ = unix.Close(next)
	logger := newKeepLogger(l.LogLevel)
	logger.Debug("sandbox Keep received its workload", "after", time.Since(start), "bounding_set_dropped_after", bounded)

	opts := confineOptions{cloneFlags: l.CloneFlags, nfiles: l.NFiles, memoryLimit: l.MemoryLimit, cacheDir: l.CacheDir, boundingErr: boundingErr}
	if testHooks != nil {
		opts.skip = map[string]bool{}
		for _, s := range l.TestSkip {
			opts.skip[s] = true
		}
		preConfinePPID = os.Getppid()
	}
	layers, cacheDir := confine(opts)
	if l.GoMaxProcs > 0 {
		runtime.GOMAXPROCS(min(l.GoMaxProcs, 1024))
	}
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		var took []string
		for _, ly := range layers {
			took = append(took, fmt.Sprintf("%s=%dµs", strings.SplitN(ly.Name, " ", 2)[0], ly.Micros))
		}
		logger.Debug("sandbox Keep confined", "after", time.Since(start), "layers", strings.Join(took, " "))
	}
	var missing []string
	for _, ly := range layers {
		if !ly.Enabled {
			missing = append(missing, ly.Name+" ("+ly.Detail+")")
		}
	}
	if len(missing) > 0 {
		if l.RequireIsolation {
			return keepFail(ctl, layers, fmt.Errorf("--require-isolation: the sandbox Keep is missing confinement layers: %s", strings.Join(missing, "; ")))
		}
		logger.Warn("sandbox Keep runs without some confinement layers", "missing", strings.Join(missing, "; "))
	}

	if l.Hook != "" {
		// Hooks are ';'-separated "name[:arg]"; results come back the same way.
		var out []string
		for _, hk := range strings.Split(l.Hook, ";") {
			name, arg, _ := strings.Cut(hk, ":")
			h, ok := testHooks[name]
			if !ok {
				return keepFail(ctl, layers, fmt.Errorf("unknown test hook %q", hk))
			}
			out = append(out, h(arg))
		}
		return keepReply(ctl, &result{Layers: layers, Hook: strings.Join(out, ";")})
	}

	ctx := context.Background()
	code, err := run(ctx, &Job{
		Wasm: l.wasm, Config: l.config, ConfigName: l.ConfigName, Package: l.Package, Bundle: l.bundle,
		Files: files, Args: l.Args, MemoryLimit: l.MemoryLimit, CacheDir: cacheDir, StewardDial: steward, Logger: logger,
	})
	r := &result{ExitCode: code, Layers: layers}
	if err != nil {
		r.Error = err.Error()
	}
	return keepReply(ctl, r)
}

func keepFail(ctl io.Writer, layers []Layer, err error) int {
	return keepReply(ctl, &result{ExitCode: 1, Error: err.Error(), Layers: layers})
}

func keepReply(ctl io.Writer, r *result) int {
	if err := writeMsg(ctl, resultMagic, r); err != nil {
		fmt.Fprintf(os.Stderr, "Error: sandbox Keep: reporting result: %v\n", err)
		return 1
	}
	return r.ExitCode
}

func newKeepLogger(level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("keep", "sandbox")
}
