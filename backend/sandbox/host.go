package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Request is a workload to run in a sandbox Keep, as the host has it.
type Request struct {
	Wasm []byte
	// Config is the raw Enarx.toml; nil means the default stdio config.
	Config     []byte
	ConfigName string
	Package    string
	// Bundle is a package bundle the Keep unpacks and verifies itself.
	Bundle []byte
	// Files are the host resources opened for the config's [[files]]
	// (hostio.Open; nil for null entries); they are passed to the Keep
	// process and not closed.
	Files       []*os.File
	Args        []string
	MemoryLimit uint64
	// Engine names the Keep's wasm engine ("" = its default).
	Engine string
	// CacheDir is the module's own compilation cache directory (see
	// ModuleCacheDir), mounted read-write at /cache in the Keep; ""
	// compiles without a cache.
	CacheDir string
	LogLevel string
	// RequireIsolation refuses to run unless every layer is in force.
	RequireIsolation bool
	// Timeout, if positive, kills the Keep process after this long.
	Timeout time.Duration
	// Stderr receives the Keep process's own diagnostics (logs); nil
	// means os.Stderr.
	Stderr io.Writer
	// Executable is the binary to re-execute; "" means this one.
	Executable string
	// Logger, if set, receives the Keep's resource usage at debug level.
	Logger *slog.Logger
	// StewardAddr ("host:port"), if set, is the only place the Keep may
	// have the host connect to for it (see serveBroker).
	StewardAddr string

	// wasmSHA256 is the module's hex digest if the caller already has it.
	wasmSHA256 string
	// moduleCache asks for the module's own cache directory under
	// cacheBase (ModuleCacheDir), made while the Keep starts; it
	// overrides CacheDir.
	moduleCache bool
	cacheBase   string
	// socketPayload sends the payloads over the control socket (tests of
	// the fallback).
	socketPayload bool

	hook     string
	testSkip []string
}

// Result is what came back from the Keep.
type Result struct {
	ExitCode int
	// Layers are the confinement layers the Keep reported.
	Layers []Layer
	hook   string
}

// ErrTimeout is returned when Request.Timeout expired and the Keep was
// killed.
var ErrTimeout = errors.New("the workload exceeded its --timeout and the Keep was killed")

// nsFlags are the namespaces a Keep gets when the kernel allows them.
const nsFlags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS |
	syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

// Run starts a Keep process for req, waits for it and returns the
// workload's exit code. A non-nil error with code 1 is how the workload
// failed (trap, bad module, …) exactly as the in-process runtime reports it.
func Run(ctx context.Context, req *Request) (int, error) {
	r, err := run(ctx, req)
	if r == nil {
		return 1, err
	}
	return r.ExitCode, err
}

func run(ctx context.Context, req *Request) (*Result, error) {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, req.Timeout, ErrTimeout)
		defer cancel()
	}
	exe := req.Executable
	if exe == "" {
		exe = "/proc/self/exe"
	}
	// Open the binary now, so the Keep's exec does not depend on the
	// (possibly unprivileged) Keep user being able to traverse its path.
	exeFile, err := os.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("sandbox: opening the enarx executable: %w", err)
	}
	defer exeFile.Close()

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: creating the control channel: %w", err)
	}
	hostFile := os.NewFile(uintptr(fds[0]), "keep-control")
	keepEnd := os.NewFile(uintptr(fds[1]), "keep-control-child")
	c, err := net.FileConn(hostFile)
	hostFile.Close()
	if err != nil {
		keepEnd.Close()
		return nil, fmt.Errorf("sandbox: control channel: %w", err)
	}
	hostEnd := c.(*net.UnixConn)
	defer hostEnd.Close()

	stderr := req.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	// Null entries are nil: they get no fd (the Keep learns which from
	// the launch message), so the passed fds stay dense.
	extra := []*os.File{keepEnd}
	var null []int
	for i, f := range req.Files {
		if f == nil {
			null = append(null, i)
			continue
		}
		extra = append(extra, f)
	}
	if req.StewardAddr != "" {
		bfds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			keepEnd.Close()
			return nil, fmt.Errorf("sandbox: creating the dial broker: %w", err)
		}
		hf := os.NewFile(uintptr(bfds[0]), "broker")
		kf := os.NewFile(uintptr(bfds[1]), "broker-child")
		defer kf.Close()
		bc, err := net.FileConn(hf)
		hf.Close()
		if err != nil {
			keepEnd.Close()
			return nil, fmt.Errorf("sandbox: dial broker: %w", err)
		}
		defer bc.Close()
		go serveBroker(ctx, bc.(*net.UnixConn), req.StewardAddr, req.Logger)
		extra = append(extra, kf)
	}
	l := &launch{
		HasConfig: req.Config != nil, ConfigName: req.ConfigName, Package: req.Package,
		Args: req.Args, NFiles: len(req.Files), Null: null, MemoryLimit: req.MemoryLimit, Engine: req.Engine, CacheDir: req.CacheDir, Broker: req.StewardAddr != "",
		LogLevel: req.LogLevel, RequireIsolation: req.RequireIsolation, Hook: req.hook, TestSkip: req.testSkip,
		WasmSHA256: req.wasmSHA256, GoMaxProcs: runtime.GOMAXPROCS(0),
		wasm: req.Wasm, config: req.Config, bundle: req.Bundle,
	}
	// The payloads go in a sealed memfd (payload_linux.go), filled once
	// the Keep is starting; if the host cannot make one they follow the
	// header on the socket.
	var payload *os.File
	if !req.socketPayload {
		if payload, err = newPayloadFile(); err == nil {
			// Closed by the sending goroutine once filled, or below if
			// the Keep does not start.
			l.PayloadFD = true
			extra = append(extra, payload)
		} else if req.Logger != nil {
			req.Logger.Debug("sandbox: sending the module over the control socket", "err", err)
		}
	}
	exeFD := 3 + len(extra)
	extra = append(extra, exeFile)

	cmd, flags, err := startKeep(fmt.Sprintf("/proc/self/fd/%d", exeFD), extra, stderr)
	keepEnd.Close()
	if err != nil {
		if payload != nil {
			payload.Close()
		}
		return nil, err
	}
	l.CloneFlags = flags
	if req.Logger != nil {
		req.Logger.Debug("sandbox Keep started", "pid", cmd.cmd.Process.Pid, "namespaces", fmt.Sprintf("%#x", flags))
	}

	// The launch message is prepared and sent while the Keep process
	// starts (exec and Go runtime start-up take longer than hashing the
	// module and filling the memfd), and concurrently with waiting: a
	// module larger than the socket buffer must not block us from
	// noticing the Keep's death.
	sendErr := make(chan error, 1)
	go func() {
		err := prepareLaunch(req, l, payload)
		if payload != nil {
			payload.Close() // the Keep has its own descriptor
		}
		if err == nil {
			err = l.encode(hostEnd)
		}
		if err == nil {
			err = hostEnd.CloseWrite()
		}
		sendErr <- err
	}()
	resCh := make(chan *result, 1)
	go func() {
		var res result
		if readHeader(hostEnd, resultMagic, &res) == nil {
			resCh <- &res
		}
		close(resCh)
	}()

	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.wait() }()
	var werr error
	select {
	case werr = <-waitErr:
	case <-ctx.Done():
		cmd.kill()
		<-waitErr
		if errors.Is(context.Cause(ctx), ErrTimeout) {
			return &Result{ExitCode: 1}, ErrTimeout
		}
		return &Result{ExitCode: 1}, fmt.Errorf("sandbox Keep stopped: %w", context.Cause(ctx))
	}
	if req.Logger != nil && cmd.cmd.ProcessState != nil {
		if ru, ok := cmd.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			// The host's own peak too: its exit status's max RSS is the
			// larger of its own and its waited-for children's.
			var self syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
			req.Logger.Debug("sandbox Keep exited", "max_rss_kib", ru.Maxrss, "host_max_rss_kib", self.Maxrss,
				"user", cmd.cmd.ProcessState.UserTime(), "sys", cmd.cmd.ProcessState.SystemTime())
		}
	}
	// The Keep has exited: its end is closed, so the reader finishes.
	res, ok := <-resCh
	if !ok {
		if err := <-sendErr; err != nil && werr == nil {
			return &Result{ExitCode: 1}, fmt.Errorf("sandbox: sending the workload to the Keep: %w", err)
		}
		return &Result{ExitCode: 1}, fmt.Errorf("sandbox Keep process died without reporting a result: %v", werr)
	}
	out := &Result{ExitCode: res.ExitCode, Layers: res.Layers, hook: res.Hook}
	if res.Error != "" {
		return out, errors.New(res.Error)
	}
	return out, nil
}

// prepareLaunch hashes the module once (for the cache directory and the
// digest the Keep checks), creates the module's cache directory if asked
// to, and fills and seals the payload memfd, if any.
func prepareLaunch(req *Request, l *launch, payload *os.File) error {
	if l.WasmSHA256 == "" {
		l.WasmSHA256 = digest(req.Wasm)
	}
	if req.moduleCache {
		dir, err := moduleCacheDir(req.cacheBase, l.WasmSHA256)
		if err != nil {
			// Not fatal: the Keep compiles without a cache.
			if req.Logger != nil {
				req.Logger.Warn("sandbox: no compilation cache; the Keep compiles the module itself", "err", err)
			}
			dir = ""
		}
		l.CacheDir = dir
	}
	if payload != nil {
		if err := fillPayloadFile(payload, req.Wasm, req.Config, req.Bundle); err != nil {
			return err
		}
	}
	return nil
}

// keepCmd is a started Keep process. Its thread stays locked for the
// child's lifetime: Pdeathsig fires when the *thread* that forked the child
// exits, not the process.
type keepCmd struct {
	cmd  *exec.Cmd
	done chan error
	kill func()
}

func (k *keepCmd) wait() error { return <-k.done }

// startKeep starts the Keep process in as many namespaces as the kernel
// grants, falling back step by step.
func startKeep(exe string, extra []*os.File, stderr io.Writer) (*keepCmd, uintptr, error) {
	var lastErr error
	for _, flags := range []uintptr{nsFlags, nsFlags &^ syscall.CLONE_NEWUSER, 0} {
		k, err := startKeepWith(exe, extra, stderr, flags)
		if err == nil {
			return k, flags, nil
		}
		lastErr = err
	}
	return nil, 0, fmt.Errorf("sandbox: starting the Keep process: %w", lastErr)
}

func startKeepWith(exe string, extra []*os.File, stderr io.Writer, flags uintptr) (*keepCmd, error) {
	started := make(chan error, 1)
	k := &keepCmd{done: make(chan error, 1)}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when this goroutine returns the thread exits,
		// which is only after the child is gone.
		cmd := &exec.Cmd{
			Path: exe,
			Args: []string{"enarx-keep", KeepArg},
			// GOMAXPROCS=1 until confined: fewer runtime threads for
			// the per-thread layers to reach (see launch.GoMaxProcs).
			Env:        []string{"TZ=UTC", "GODEBUG=updatemaxprocs=0", "GOMAXPROCS=1"},
			Stderr:     stderr,
			ExtraFiles: extra,
			SysProcAttr: &syscall.SysProcAttr{
				Setsid:     true,
				Pdeathsig:  syscall.SIGKILL,
				Cloneflags: flags,
			},
		}
		if flags&syscall.CLONE_NEWUSER != 0 {
			cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: keepHostID(os.Geteuid()), Size: 1}}
			cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: keepHostID(os.Getegid()), Size: 1}}
			cmd.SysProcAttr.GidMappingsEnableSetgroups = false
			// Become the namespace's root, i.e. the mapped host id:
			// the mapping alone leaves the child's host uid as it was.
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		k.cmd = cmd
		k.kill = func() { _ = cmd.Process.Kill() }
		if startedHook != nil {
			startedHook(cmd.Process.Pid)
		}
		started <- nil
		k.done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return k, nil
}

// startedHook, if set (tests), is called with the Keep's host pid.
var startedHook func(pid int)

// keepHostID is the host uid/gid the Keep's root maps to: an unprivileged
// one ("nobody") when enarx runs as root, so that even a Keep that escaped
// its namespaces holds no host privilege; otherwise the caller's own id
// (the only mapping an unprivileged user may write).
func keepHostID(id int) int {
	if id == 0 {
		return 65534
	}
	return id
}
