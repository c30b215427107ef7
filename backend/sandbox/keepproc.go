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
	// Engine names the wasm engine ("" = this binary's default).
	Engine string
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

// KeepMain is the Keep process. It runs in two stages, both in this
// binary (see confine_linux.go for why): the first reads the launch
// header from fd 3, applies the namespace, no_new_privs, Landlock and
// capability layers to its one locked thread and re-executes the binary
// from that thread; the second reads the workload, checks its digests,
// adds rlimits and seccomp, runs the workload with run and reports the
// result back. It returns the process exit status.
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
	// The host passed fds 4.. for the files, then the broker, the
	// payload memfd and, last, the executable.
	exeFD := controlFD + 1 + l.NFiles - len(l.Null)
	if l.Broker {
		exeFD++
	}
	if l.PayloadFD {
		exeFD++
	}
	if err := closeOnExecAbove(exeFD); err != nil {
		return keepFail(ctl, nil, fmt.Errorf("sandbox Keep: %w", err))
	}
	layers, cacheOK := confineBeforeExec(confineOptions{cloneFlags: l.CloneFlags, cacheDir: l.CacheDir, exeFD: exeFD, skip: testSkip(l)})
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
	err = l.readPayloads(ctl, func(l *launch, size int64) ([]byte, error) {
		// The payload memfd follows the files' fds and the broker's.
		fd := controlFD + 1 + l.NFiles - len(l.Null)
		if l.Broker {
			fd++
		}
		return mapPayload(fd, size)
	})
	if err != nil {
		return keepFail(ctl, h.Layers, fmt.Errorf("sandbox Keep: bad launch message: %w", err))
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
			return keepFail(ctl, h.Layers, fmt.Errorf("sandbox Keep: host fd for files[%d] missing", i))
		}
	}
	var steward func(context.Context) (net.Conn, error)
	if l.Broker {
		b, err := newBrokerDialer(os.NewFile(uintptr(next), "broker"))
		if err != nil {
			return keepFail(ctl, h.Layers, err)
		}
		steward = b.Dial
	}
	logger.Debug("sandbox Keep received its workload", "after", time.Since(start), "second_stage_after", execed)

	if testHooks != nil {
		preConfinePPID = os.Getppid()
	}
	layers := confineAfterExec(confineOptions{nfiles: l.NFiles, memoryLimit: l.MemoryLimit, skip: testSkip(l)}, h.Layers, h.CacheOK)
	if logger.Enabled(context.Background(), slog.LevelDebug) {
		var took []string
		for _, ly := range layers {
			took = append(took, fmt.Sprintf("%s=%dµs", strings.SplitN(ly.Name, " ", 2)[0], ly.Micros))
		}
		logger.Debug("sandbox Keep confined", "after", time.Since(start), "layers", strings.Join(took, " "))
	}
	if missing := missingLayers(layers); missing != "" {
		if l.RequireIsolation {
			return keepFail(ctl, layers, requireIsolationError(missing))
		}
		logger.Warn("sandbox Keep runs without some confinement layers", "missing", missing)
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

	cacheDir := ""
	if h.CacheOK {
		cacheDir = keepCacheDir
	}
	code, err := run(context.Background(), &Job{
		Wasm: l.wasm, Config: l.config, ConfigName: l.ConfigName, Package: l.Package, Bundle: l.bundle,
		Files: files, Args: l.Args, MemoryLimit: l.MemoryLimit, Engine: l.Engine, CacheDir: cacheDir, StewardDial: steward, Logger: logger,
	})
	r := &result{ExitCode: code, Layers: layers}
	if err != nil {
		r.Error = err.Error()
	}
	return keepReply(ctl, r)
}

// testSkip is the set of layers a test binary asked to leave out.
func testSkip(l *launch) map[string]bool {
	if testHooks == nil || len(l.TestSkip) == 0 {
		return nil
	}
	skip := map[string]bool{}
	for _, s := range l.TestSkip {
		skip[s] = true
	}
	return skip
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
