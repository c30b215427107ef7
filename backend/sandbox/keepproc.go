package sandbox

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/enarx-go/enarx/keep"
)

// KeepArg is the hidden argument that makes the enarx binary (or a test
// binary, via TestMain) run as a sandbox Keep process.
const KeepArg = "__sandbox-keep"

// isKeepProcess reports whether this process was started as a Keep.
func isKeepProcess() bool { return len(os.Args) > 1 && os.Args[1] == KeepArg }

// IsKeepProcess reports whether this process was started as a sandbox
// Keep (either stage): ServeKeeps will run it and exit.
func IsKeepProcess() bool { return isKeepProcess() }

// controlFD is the Keep end of the host's socketpair; host resources follow.
const controlFD = 3

// RunFunc runs a workload inside the confined Keep process: keep.Run in
// enarx, a stand-in for it in tests.
type RunFunc func(ctx context.Context, w keep.Workload, o keep.Options) (exitCode int, err error)

// KeepMain is the Keep process. It runs in two stages, both in this
// binary (see confine_linux.go for why): the first reads the launch
// header from fd 3, applies the namespace, no_new_privs, Landlock and
// capability layers to its one locked thread and re-executes the binary
// from that thread; the second reads the workload, checks its digests,
// adds rlimits and seccomp, runs the workload with run (with the arguments
// the launch message describes: launch.keepArgs) and reports the result
// back. It returns the process exit status.
func KeepMain(run RunFunc) int {
	// Without TZ the Go runtime would try to open /etc/localtime lazily,
	// after confinement; the Keep logs in UTC.
	time.Local = time.UTC
	if len(os.Args) > 2 {
		return keepSecondStage(run, os.Args[2])
	}
	return keepFirstStage()
}

func keepFirstStage() int {
	start := time.Now()
	// Never unlocked: this thread is confined and then re-executes the
	// Keep, or the process exits.
	runtime.LockOSThread()
	ctl := rawFD(controlFD)
	l, err := readLaunchHeader(ctl)
	if err != nil {
		return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: bad launch message: %w", err))
	}
	logger := newKeepLogger(l.LogLevel)
	exeFD := l.exeFD()
	if err := closeOnExecAbove(exeFD); err != nil {
		return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: %w", err))
	}
	layers, cacheOK := confineBeforeExec(confineOptions{cloneFlags: l.CloneFlags, cacheDir: l.CacheDir, exeFD: exeFD, dirs: l.passedDirs(), skip: testSkip()})
	if missing := missingLayers(layers); missing != "" && l.RequireIsolation {
		return keepFail(ctl, layers, requireIsolationError(missing))
	}
	h, err := json.Marshal(&handoff{Launch: l, Layers: layers, CacheOK: cacheOK, Started: start.UnixNano()})
	if err != nil {
		return keepFail(ctl, layers, fmt.Errorf("sandbox Keep: %w", err))
	}
	env := []string{"TZ=UTC", "GODEBUG=updatemaxprocs=0"}
	if l.GoMaxProcs > 0 {
		// The host's setting; also spares the runtime reading cgroup
		// files it may no longer open.
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", min(l.GoMaxProcs, 1024)))
	}
	env = append(env, testEnv()...)
	logger.Debug("sandbox Keep first stage confined, re-executing", "after", time.Since(start))
	err = execKeep(exeFD, []string{"enarx-keep", KeepArg, string(h)}, env)
	return keepFail(ctl, layers, fmt.Errorf("sandbox Keep: re-executing itself confined: %w", err))
}

func keepSecondStage(run RunFunc, arg string) int {
	ctl := os.NewFile(controlFD, "control")
	if ctl == nil {
		fmt.Fprintln(os.Stderr, "Error: sandbox Keep: no control channel on fd 3")
		return 1
	}
	h, err := decodeHandoff(arg)
	if err != nil {
		return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: %w", err))
	}
	l, start := h.Launch, time.Unix(0, h.Started)
	logger := newKeepLogger(l.LogLevel)
	execed := time.Since(start)
	err = l.readPayloads(ctl, func(l *launch, size int64) ([]byte, error) { return mapPayload(l.payloadFD(), size) })
	if err != nil {
		return keepFail(ctl, h.Layers, fmt.Errorf("sandbox Keep: bad launch message: %w", err))
	}
	files, dial, err := l.hostFiles()
	if err != nil {
		return keepFail(ctl, h.Layers, err)
	}
	logger.Debug("sandbox Keep received its workload", "after", time.Since(start), "second_stage_after", execed)
	if testBinary {
		preConfinePPID = os.Getppid()
	}
	layers, err := l.confineSecondStage(h, logger, start)
	if err != nil {
		return keepFail(ctl, layers, err)
	}
	cacheDir := ""
	if h.CacheOK {
		cacheDir = keepCacheDir
	}
	w, o := l.keepArgs(files, dial, cacheDir, logger)
	code, err := run(context.Background(), w, o)
	r := &result{ExitCode: code, Layers: layers}
	if err != nil {
		r.Error = err.Error()
	}
	return keepReply(ctl, r)
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

// confineSecondStage adds the second stage's layers to those of the first
// (h), logs what each took, and refuses when a layer is missing and the
// launch requires them all.
func (l *launch) confineSecondStage(h *handoff, logger *slog.Logger, start time.Time) ([]Layer, error) {
	layers := confineAfterExec(confineOptions{nfiles: l.NFiles, memoryLimit: l.MemoryLimit, dirs: l.passedDirs(), skip: testSkip()}, h.Layers, h.CacheOK)
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

// rawFD reads and writes a descriptor without an *os.File, whose
// finalizer could close it before the first stage's exec.
type rawFD int

func (f rawFD) Read(b []byte) (int, error) {
	for {
		n, err := unix.Read(int(f), b)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(b) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f rawFD) Write(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Write(int(f), b[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
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
