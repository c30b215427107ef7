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

	"github.com/enarx-go/enarx/keep"
)

// KeepArg is the hidden argument that makes the enarx binary (or a test
// binary, via TestMain) run as a sandbox Keep process.
const KeepArg = "__sandbox-keep"

// isKeepProcess reports whether this process was started as a Keep.
func isKeepProcess() bool { return len(os.Args) > 1 && os.Args[1] == KeepArg }

// IsKeepProcess reports whether this process was started as a sandbox
// Keep: ServeKeeps will run it and exit.
func IsKeepProcess() bool { return isKeepProcess() }

// controlFD is the Keep end of the host's socketpair; host resources follow.
const controlFD = 3

// RunFunc runs a workload inside the confined Keep process: keep.Run in
// enarx, a stand-in for it in tests.
type RunFunc func(ctx context.Context, w keep.Workload, o keep.Options) (exitCode int, err error)

// KeepMain is the Keep process: it reads the launch header from fd 3,
// confines itself (the namespace, empty root, no_new_privs, Landlock and
// capability layers, the last three on every thread; see
// threads_linux.go), reads the workload and checks the config's and the
// bundle's digests, adds rlimits and seccomp, runs the workload with run
// (with the arguments the launch message describes: launch.keepArgs, which
// hands keep.Run the module's digest to check) and reports the result
// back.
// It returns the process exit status.
func KeepMain(run RunFunc) int {
	start := time.Now()
	// Without TZ the Go runtime would try to open /etc/localtime lazily,
	// after confinement; the Keep logs in UTC.
	time.Local = time.UTC
	ctl := os.NewFile(controlFD, "control")
	if ctl == nil {
		fmt.Fprintln(os.Stderr, "Error: sandbox Keep: no control channel on fd 3")
		return 1
	}
	l, err := readLaunchHeader(ctl)
	if err != nil {
		return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: bad launch message: %w", err))
	}
	logger := newKeepLogger(l.LogLevel)
	if err := closeInherited(l.exeFD()); err != nil {
		return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: %w", err))
	}
	o := confineOptions{cloneFlags: l.CloneFlags, cacheDir: l.CacheDir, nfiles: l.NFiles, linearMemory: keep.ReservedAddressSpace(l.Engine, l.MemoryLimit), threads: keepThreads(l.GoMaxProcs), dirs: l.passedDirs(), fileFDs: l.passedFileFDs(), skip: testSkip()}
	layers, cacheOK := confineProcess(o)
	if missing := missingLayers(layers); missing != "" && l.RequireIsolation {
		return keepFail(ctl, layers, requireIsolationError(missing))
	}
	confined := time.Since(start)
	err = l.readPayloads(ctl, func(l *launch, size int64) ([]byte, error) { return mapPayload(l.payloadFD(), size) })
	if err != nil {
		return keepFail(ctl, layers, fmt.Errorf("sandbox Keep: bad launch message: %w", err))
	}
	files, dial, err := l.hostFiles()
	if err != nil {
		return keepFail(ctl, layers, err)
	}
	logger.Debug("sandbox Keep received its workload", "after", time.Since(start), "process_confined_after", confined)
	if testBinary {
		preConfinePPID = os.Getppid()
	}
	layers, err = l.confineLimits(o, layers, cacheOK, logger, start)
	if err != nil {
		return keepFail(ctl, layers, err)
	}
	if l.GoMaxProcs > 0 {
		// Confined with GOMAXPROCS=1 (fewer threads for allThreads to
		// reach); the workload runs with the host's setting.
		runtime.GOMAXPROCS(min(l.GoMaxProcs, 1024))
	}
	cacheDir := ""
	if cacheOK {
		cacheDir = keepCacheDir
	}
	w, opts := l.keepArgs(files, dial, cacheDir, logger)
	code, err := run(context.Background(), w, opts)
	r := &result{ExitCode: code, Layers: layers}
	if err != nil {
		r.Error = err.Error()
	}
	return keepReply(ctl, r)
}

// keepThreads is the most CPUs a Keep runs on: the host's GOMAXPROCS,
// which it takes once confined, or the CPUs it may be scheduled on, which
// C code (wasmtime's compilation pool) sizes its threads by.
func keepThreads(goMaxProcs int) int {
	return max(min(goMaxProcs, 1024), runtime.NumCPU())
}

// hostFiles wraps the descriptors the host passed for the [[files]]
// entries (nil for null ones) and, if any, the dial broker.
func (l *launch) hostFiles() ([]*os.File, func(context.Context) (net.Conn, error), error) {
	files := make([]*os.File, l.NFiles)
	next := controlFD + 1
	for i := range files {
		if slices.Contains(l.Null, i) {
			continue
		}
		files[i] = os.NewFile(uintptr(next), fmt.Sprintf("fd%d", i))
		next++
		if files[i] == nil {
			return nil, nil, fmt.Errorf("sandbox Keep: host fd for files[%d] missing", i)
		}
	}
	if !l.Broker {
		return files, nil, nil
	}
	b, err := newBrokerDialer(os.NewFile(uintptr(l.brokerFD()), "broker"))
	if err != nil {
		return nil, nil, err
	}
	return files, b.Dial, nil
}

// passedDirs are the directories the host passed, at their descriptors.
func (l *launch) passedDirs() []passedDir {
	var dirs []passedDir
	for _, d := range l.Dirs {
		dirs = append(dirs, passedDir{index: d.Index, fd: l.fileFD(d.Index), readOnly: d.ReadOnly, path: d.Path})
	}
	return dirs
}

// passedFileFDs are the descriptors of the passed [[files]] entries that
// are not directories the launch lists (Dirs).
func (l *launch) passedFileFDs() []int {
	var fds []int
	for i := range l.NFiles {
		if slices.Contains(l.Null, i) || slices.ContainsFunc(l.Dirs, func(d launchDir) bool { return d.Index == i }) {
			continue
		}
		fds = append(fds, l.fileFD(i))
	}
	return fds
}

// confineLimits adds the rlimits and seccomp layers to layers, logs what
// each layer took, and refuses when a layer is missing and the launch
// requires them all.
func (l *launch) confineLimits(o confineOptions, layers []Layer, cacheOK bool, logger *slog.Logger, start time.Time) ([]Layer, error) {
	layers = confineLimits(o, layers, cacheOK)
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		var took []string
		for _, ly := range layers {
			took = append(took, fmt.Sprintf("%s=%dµs", strings.SplitN(ly.Name, " ", 2)[0], ly.Micros))
		}
		logger.Debug("sandbox Keep confined", "after", time.Since(start), "layers", strings.Join(took, " "))
	}
	if missing := missingLayers(layers); missing != "" {
		if l.RequireIsolation {
			return layers, requireIsolationError(missing)
		}
		logger.Warn("sandbox Keep runs without some confinement layers", "missing", missing)
	}
	return layers, nil
}

// missingLayers lists the layers not in force, with the reason, or "".
func missingLayers(layers []Layer) string {
	var missing []string
	for _, ly := range layers {
		if !ly.Enabled {
			missing = append(missing, ly.Name+" ("+ly.Detail+")")
		}
	}
	return strings.Join(missing, "; ")
}

func requireIsolationError(missing string) error {
	return fmt.Errorf("--require-isolation: the sandbox Keep is missing confinement layers: %s", missing)
}

func keepFail(ctl io.Writer, layers []Layer, err error) int {
	return keepReply(ctl, &result{ExitCode: 1, Error: err.Error(), Layers: layers})
}

// keepReply sends the result message and then waits for the host to end
// the Keep (keepLinger): a Keep that exited by itself would make its host
// wait for the kernel's tear-down of the process before it could check
// what the Keep left (keepend_linux.go).
func keepReply(ctl io.Writer, r *result) int {
	if err := writeMsg(ctl, resultMagic, r); err != nil {
		fmt.Fprintf(os.Stderr, "Error: sandbox Keep: reporting result: %v\n", err)
		return 1
	}
	time.Sleep(keepLinger)
	return r.ExitCode
}

func newKeepLogger(level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("keep", "sandbox")
}
