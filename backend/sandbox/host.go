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

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep"
)

// hostOptions are the host's own settings for one Keep process, beside
// the launch description. Production runs (Backend.Run) use the zero
// value; tests set them.
type hostOptions struct {
	// stderr receives the Keep process's own diagnostics (its logs); nil
	// means os.Stderr.
	stderr io.Writer
	// socketPayload sends the payloads over the control socket instead of
	// a memfd (tests of the fallback).
	socketPayload bool
	// env is added to the Keep process's environment (tests: see
	// testseam.go).
	env []string
}

// ErrTimeout is returned when the launch policy's Timeout expired and the
// Keep was killed.
var ErrTimeout = errors.New("the workload exceeded its --timeout and the Keep was killed")

// nsFlags are the namespaces a Keep gets when the kernel allows them.
const nsFlags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID | syscall.CLONE_NEWNS |
	syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS

// run starts a Keep process for l, waits for it and returns the workload's
// exit code and the confinement layers the Keep reported. A non-nil error
// with code 1 is how the workload failed (trap, bad module, …) exactly as
// the in-process runtime reports it.
func run(ctx context.Context, l *backend.Launch, h hostOptions) (int, []Layer, error) {
	if t := l.Policy.Timeout; t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, t, ErrTimeout)
		defer cancel()
	}
	// The Keep checks the env again; refusing it here says what is wrong
	// before a Keep starts (an oversized one would not fit the header).
	if err := keep.ValidateEnv(l.Options.Env); err != nil {
		return 1, nil, err
	}
	warnUnwritableDirs(l, l.Options.Logger)
	hdr := newLaunch(ctx, l)
	k, err := openKeepFDs(ctx, l, hdr, h.socketPayload)
	if err != nil {
		return 1, nil, err
	}
	defer k.close()
	cmd, err := k.start(hdr, h)
	if err != nil {
		return 1, nil, err
	}
	defer cmd.release()
	log := l.Options.Logger
	if log != nil {
		log.Debug("sandbox Keep started", "pid", cmd.proc.Pid, "namespaces", fmt.Sprintf("%#x", hdr.CloneFlags))
	}
	sent, reply := k.send(l, hdr), k.receive()
	// The Keep's result message is its last act (it then waits to be
	// ended: keepReply); waiting for its process to exit after it adds
	// the kernel's tear-down of the process (its address space, its pid,
	// mount and network namespaces: 4 ms for a Keep that ran nothing, on
	// the VM we measure on) to every run. Unless debug logging wants the
	// exited process's usage, the host returns on the result and ends the
	// Keep (endKeep), so that none outlives its run; the goroutine that
	// started it reaps it (startKeepWith). A Keep whose diagnostics go to
	// a writer that is not a file is waited for: the exec package copies
	// them through a pipe until the process is gone, and the caller's
	// writer must have them all, and be left alone, once run returns.
	// A Keep passed a sealed volume's directory holds its lock
	// (internal/hostio) until its process is gone: it is waited for too,
	// so that a run that follows this one finds the volume free.
	_, direct := h.stderr.(*os.File)
	early := (h.stderr == nil || direct) && (log == nil || !log.Enabled(ctx, slog.LevelDebug)) && !holdsVolumeLock(l)
	res, werr, exited, err := awaitKeep(ctx, cmd, reply, early)
	// On every path: what the Keep may have changed on the host is put
	// back or checked once none of its threads can run (endKeep).
	// A package bundle holds its module (and the launch has none of its
	// own): its cache's budget is the bundle's size.
	k.endKeep(cmd, len(l.Workload.Wasm)+len(l.Workload.Bundle), log)
	if err != nil {
		return 1, nil, err
	}
	if exited {
		logUsage(log, cmd)
	}
	return outcome(res, sent, werr)
}

// holdsVolumeLock reports whether the Keep gets a sealed volume's host
// directory, whose flock(2) lock its copy of the descriptor holds.
func holdsVolumeLock(l *backend.Launch) bool {
	if l.Config == nil {
		return false
	}
	for _, f := range l.Config.Files {
		if f.Kind == config.KindDir && f.Dir != nil && f.Dir.Source == config.SourceSealed {
			return true
		}
	}
	return false
}

// keepFDs are the host's ends of a Keep process's channels and the
// descriptors the Keep gets, in the order it expects them (see
// launch.exeFD): the control socket, the [[files]], the dial broker, the
// payload memfd and the executable.
type keepFDs struct {
	host    *net.UnixConn // the control socket's host end
	keepEnd *os.File      // its Keep end, closed once the Keep started
	extra   []*os.File    // the Keep's descriptors from fd 3 on
	// payload is the payload memfd (nil: the payloads follow the header
	// on the socket). send closes it once filled, start if the Keep does
	// not start.
	payload *os.File
	closers []io.Closer
	// shared are the host's open file descriptions the Keep shares
	// (stdio_linux.go): their status flags are put back once it has
	// ended.
	shared []sharedFlags
	// cacheDir delivers the module's compilation cache directory the
	// launch names ("" for none) once send has prepared the launch.
	cacheDir chan string
	// relays relay a terminal stdin to the Keep (ttyrelay_linux.go):
	// started once the Keep has started, stopped by close.
	relays []*ttyRelay
	// stderr copies the Keep process's stderr pipe to the host's stderr
	// (keepstderr_linux.go), or is nil; stderrW is the pipe's write end,
	// the Keep's, closed once the Keep has started.
	stderr  *stderrCopy
	stderrW *os.File
}

// openKeepFDs opens what the Keep process gets besides its launch message
// and sets hdr.PayloadFD if the payloads travel in a memfd.
func openKeepFDs(ctx context.Context, l *backend.Launch, hdr *launch, socketPayload bool) (_ *keepFDs, err error) {
	k := &keepFDs{cacheDir: make(chan string, 1)}
	defer func() {
		if err != nil {
			k.close()
		}
	}()
	// Open the binary now, so the Keep's exec does not depend on the
	// (possibly unprivileged) Keep user being able to traverse its path.
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("sandbox: opening the enarx executable: %w", err)
	}
	k.closers = append(k.closers, exe)
	if k.host, k.keepEnd, err = socketPair("keep-control"); err != nil {
		return nil, fmt.Errorf("sandbox: creating the control channel: %w", err)
	}
	k.closers = append(k.closers, k.host, k.keepEnd)
	k.extra = append(k.extra, k.keepEnd)
	for i, f := range l.Files {
		if f == nil { // null entries get no fd (newLaunch)
			continue
		}
		access := stdioAccess(l, i)
		if access == unix.O_RDONLY && isTerminal(f) {
			// A terminal stdin: through a pipe the host relays it to
			// (ttyrelay_linux.go).
			r, keepEnd, err := newTTYRelay(f, l.Options.Logger)
			if err != nil {
				return nil, fmt.Errorf("sandbox: relaying the terminal to the Keep's stdin (are file descriptors exhausted?): %w", err)
			}
			k.relays = append(k.relays, r)
			k.closers = append(k.closers, keepEnd)
			k.extra = append(k.extra, keepEnd)
			continue
		}
		k.extra = append(k.extra, k.keepFile(f, access))
	}
	if addr := l.StewardAddr(); addr != "" {
		hostEnd, keepEnd, err := socketPair("broker")
		if err != nil {
			return nil, fmt.Errorf("sandbox: creating the dial broker: %w", err)
		}
		k.closers = append(k.closers, hostEnd, keepEnd)
		go serveBroker(ctx, hostEnd, addr, l.Options.Logger)
		k.extra = append(k.extra, keepEnd)
	}
	// The payloads go in a sealed memfd (payload_linux.go), filled once
	// the Keep is starting; if the host cannot make one they follow the
	// header on the socket.
	if !socketPayload {
		if f, perr := newPayloadFile(); perr == nil {
			k.payload, hdr.PayloadFD = f, true
			k.extra = append(k.extra, f)
		} else if l.Options.Logger != nil {
			l.Options.Logger.Debug("sandbox: sending the module over the control socket", "err", perr)
		}
	}
	k.extra = append(k.extra, exe)
	return k, nil
}

// stdioAccess is the access mode the Keep uses [[files]] entry i with: a
// stdin entry it only reads, stdout and stderr it only writes (the WASI
// layer's fd.NewStdio uses them one way), anything else as the host
// opened it.
func stdioAccess(l *backend.Launch, i int) int {
	if l.Config == nil || i >= len(l.Config.Files) {
		return asHost
	}
	switch l.Config.Files[i].Kind {
	case config.KindStdin:
		return unix.O_RDONLY
	case config.KindStdout, config.KindStderr:
		return unix.O_WRONLY
	}
	return asHost
}

// socketPair is a connected pair of unix stream sockets: the host's end
// as a connection, the Keep's as a file to pass.
func socketPair(name string) (*net.UnixConn, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	hostFile := os.NewFile(uintptr(fds[0]), name)
	keepEnd := os.NewFile(uintptr(fds[1]), name+"-child")
	c, err := net.FileConn(hostFile)
	hostFile.Close()
	if err != nil {
		keepEnd.Close()
		return nil, nil, err
	}
	return c.(*net.UnixConn), keepEnd, nil
}

func (k *keepFDs) close() {
	for _, r := range k.relays {
		r.stop()
	}
	for _, c := range k.closers {
		c.Close()
	}
}

// start starts the Keep process and records in hdr the namespaces it got.
func (k *keepFDs) start(hdr *launch, h hostOptions) (*keepCmd, error) {
	stderr := h.stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	if f, ok := stderr.(*os.File); ok {
		// The Keep only writes its diagnostics there: a description of
		// its own, or a pipe the host copies (keepstderr_linux.go).
		kf, err := k.keepStderr(f)
		if err != nil {
			k.keepEnd.Close()
			if k.payload != nil {
				k.payload.Close()
			}
			return nil, err
		}
		stderr = kf
	}
	exe := fmt.Sprintf("/proc/self/fd/%d", controlFD+len(k.extra)-1) // the last one
	cmd, flags, err := startKeep(exe, k.extra, stderr, h.env)
	// Without our copy of its end, the control socket ends when the Keep
	// does; so does its stderr pipe.
	k.keepEnd.Close()
	if k.stderrW != nil {
		k.stderrW.Close()
	}
	if err != nil {
		if k.payload != nil {
			k.payload.Close()
		}
		return nil, err
	}
	hdr.CloneFlags = flags
	for _, r := range k.relays {
		r.start()
		if relayHook != nil {
			relayHook(r)
		}
	}
	return cmd, nil
}

// send prepares and sends the launch message while the Keep process
// starts (exec and Go runtime start-up take longer than hashing the module
// and filling the memfd), and concurrently with waiting: a module larger
// than the socket buffer must not block us from noticing the Keep's death.
func (k *keepFDs) send(l *backend.Launch, hdr *launch) <-chan error {
	sent := make(chan error, 1)
	go func() {
		err := prepareLaunch(l, hdr, k.payload)
		k.cacheDir <- hdr.CacheDir
		if k.payload != nil {
			k.payload.Close() // the Keep has its own descriptor
		}
		if err == nil {
			err = hdr.encode(k.host)
		}
		if err == nil {
			err = k.host.CloseWrite()
		}
		sent <- err
	}()
	return sent
}

// receive reads the Keep's result message; the channel closes without
// one if the Keep ends without answering.
func (k *keepFDs) receive() <-chan *result {
	reply := make(chan *result, 1)
	go func() {
		var res result
		if readHeader(k.host, resultMagic, &res) == nil {
			reply <- &res
		}
		close(reply)
	}()
	return reply
}

// prepareLaunch fills and seals the payload memfd, if any, hashes the
// module once (for the cache directory and the digest the Keep checks) and
// creates the module's cache directory unless the launch asks for none
// (named after the package bundle for a bundle's launch).
//
// With a memfd the digest is of the sealed copy the Keep will map, read
// back through a small buffer (fileDigest): the bytes the host announces
// are then exactly those the Keep gets, and hashing them costs no page
// faults. Hashing w.Wasm instead, a fresh mapping of the module file in
// enarx run, faults its pages in while the Keep process starts on the
// other CPU, and on the VM we measure on the host's work during that start
// slows it (bench/RESULTS.md, "Warm starts faster everywhere").
func prepareLaunch(l *backend.Launch, hdr *launch, payload *os.File) error {
	w := l.Workload
	if payload != nil {
		if err := fillPayloadFile(payload, w.Wasm, w.Config, w.Bundle); err != nil {
			return err
		}
		sum, err := fileDigest(payload, int64(len(w.Wasm)))
		if err != nil {
			return fmt.Errorf("hashing the payload memfd: %w", err)
		}
		hdr.WasmSHA256 = sum
	} else {
		hdr.WasmSHA256 = digest(w.Wasm)
	}
	if !l.Options.NoCache {
		name := hdr.WasmSHA256
		if len(w.Bundle) > 0 {
			// A package bundle: the Keep takes the module out of it
			// (keep.Run refuses a module beside a bundle, so the
			// launch's own is empty), and the bundle names the cache.
			// Named after the empty module, every package would share
			// one directory, in which a Keep whose workload escaped wasm
			// could plant machine code for another package's module. A
			// bundle starts with its own magic, not a module's, so its
			// digest names no module's directory.
			hdr.BundleSHA256 = digest(w.Bundle)
			name = hdr.BundleSHA256
		}
		dir, err := moduleCacheDir(l.Options.CacheDir, name, l.Options.CacheScope)
		if err != nil {
			// Not fatal: the Keep compiles without a cache.
			if l.Options.Logger != nil {
				l.Options.Logger.Warn("sandbox: no compilation cache; the Keep compiles the module itself", "err", err)
			}
			dir = ""
		}
		hdr.CacheDir = dir
	}
	return nil
}

// awaitKeep waits for the Keep's result message (nil if it ended without
// one) and, unless early, for its process to exit (exited then reports
// true, exit how it exited; a Keep that answered waits to be ended, and is
// killed); it kills the Keep when ctx ends (--timeout, interrupt). With
// early it returns as soon as the result is in, and leaves the Keep, which
// has nothing left to do, to endKeep.
func awaitKeep(ctx context.Context, cmd *keepCmd, reply <-chan *result, early bool) (res *result, exit error, exited bool, err error) {
	for {
		select {
		case r, ok := <-reply:
			if !ok {
				// No result: the Keep is ending; how is its exit's to say.
				reply = nil
				continue
			}
			if early {
				return r, nil, false, nil
			}
			cmd.kill()
			return r, <-cmd.done, true, nil
		case exit = <-cmd.done:
			if reply == nil {
				// The socket ended without a result, as it does
				// when the Keep closes it or dies: a receive on
				// the nil channel would wait for ever.
				return nil, exit, true, nil
			}
			// Its end of the socket is closed: the reader finishes.
			return <-reply, exit, true, nil
		case <-ctx.Done():
			return nil, nil, false, stopKeep(ctx, cmd)
		}
	}
}

// stopKeep kills the Keep when ctx ended (--timeout, interrupt), waits
// for its exit and says why it was stopped.
func stopKeep(ctx context.Context, cmd *keepCmd) error {
	cmd.kill()
	<-cmd.done
	if errors.Is(context.Cause(ctx), ErrTimeout) {
		return ErrTimeout
	}
	return fmt.Errorf("sandbox Keep stopped: %w", context.Cause(ctx))
}

// logUsage logs the exited Keep's resource usage at debug level.
func logUsage(log *slog.Logger, cmd *keepCmd) {
	if log == nil || cmd.state == nil {
		return
	}
	if ru, ok := cmd.state.SysUsage().(*syscall.Rusage); ok {
		// The host's own peak too: its exit status's max RSS is the
		// larger of its own and its waited-for children's.
		var self syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
		log.Debug("sandbox Keep exited", "max_rss_kib", ru.Maxrss, "host_max_rss_kib", self.Maxrss,
			"user", cmd.state.UserTime(), "sys", cmd.state.SystemTime())
	}
}

// outcome is the run's result: the Keep's result message res, or, when
// there is none, why (exit is how its process exited).
func outcome(res *result, sent <-chan error, exit error) (int, []Layer, error) {
	if res == nil {
		if err := <-sent; err != nil && exit == nil {
			return 1, nil, fmt.Errorf("sandbox: sending the workload to the Keep: %w", err)
		}
		return 1, nil, fmt.Errorf("sandbox Keep process died without reporting a result: %v", exit)
	}
	if res.Error != "" {
		return res.ExitCode, res.Layers, errors.New(res.Error)
	}
	return res.ExitCode, res.Layers, nil
}

// keepCmd is a started Keep process. Its thread stays locked for the
// child's lifetime: Pdeathsig fires when the *thread* that forked the child
// exits, not the process.
type keepCmd struct {
	proc *os.Process
	// state is the ended process's, once done has reported.
	state *os.ProcessState
	done  chan error
	// exited is closed once the process has been reaped: nothing of it
	// runs any more, not even a system call it was in when killed.
	exited chan struct{}
	// pidfd refers to the process, or is -1 where the kernel has no
	// pidfd_open (endKeep then waits for exited). It stays open until
	// run returns (release).
	pidfd int
}

// release closes the pidfd once nothing waits on it any more.
func (k *keepCmd) release() {
	if k.pidfd >= 0 {
		unix.Close(k.pidfd)
		k.pidfd = -1
	}
}

func (k *keepCmd) kill() { _ = k.proc.Kill() }

// startKeep starts the Keep process in as many namespaces as the kernel
// grants, falling back step by step.
func startKeep(exe string, extra []*os.File, stderr io.Writer, env []string) (*keepCmd, uintptr, error) {
	var lastErr error
	for _, flags := range []uintptr{nsFlags, nsFlags &^ syscall.CLONE_NEWUSER, 0} {
		k, err := startKeepWith(exe, extra, stderr, env, flags)
		if err == nil {
			return k, flags, nil
		}
		lastErr = err
	}
	return nil, 0, fmt.Errorf("sandbox: starting the Keep process: %w", lastErr)
}

func startKeepWith(exe string, extra []*os.File, stderr io.Writer, env []string, flags uintptr) (*keepCmd, error) {
	started := make(chan error, 1)
	k := &keepCmd{done: make(chan error, 1), exited: make(chan struct{}), pidfd: -1}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: when this goroutine returns the thread exits,
		// which is only after the child is gone.
		args := []string{"enarx-keep", KeepArg}
		// GOMAXPROCS=1 until confined: fewer runtime threads for the
		// per-thread layers to reach (see launch.GoMaxProcs).
		// containermaxprocs=0: the Go runtime would otherwise open its
		// cgroup's CPU limit files at start and keep them open for good,
		// descriptors of the host's cgroup file system in the confined
		// Keep; it takes the host's (cgroup-aware) GOMAXPROCS instead.
		env := append([]string{"TZ=UTC", "GODEBUG=updatemaxprocs=0,containermaxprocs=0", "GOMAXPROCS=1"}, env...)
		proc, wait, err := startProcess(exe, args, env, stderr, extra, flags)
		if err != nil {
			started <- err
			return
		}
		k.proc = proc
		// Before wait: the process cannot have been reaped yet.
		if fd, err := unix.PidfdOpen(proc.Pid, 0); err == nil { // close-on-exec
			k.pidfd = fd
		}
		if startedHook != nil {
			startedHook(proc.Pid)
		}
		started <- nil
		st, err := wait()
		k.state = st
		close(k.exited)
		k.done <- err
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return k, nil
}

// startProcess starts the Keep process: in a cgo build without copying
// the host (spawn_cgo_linux.go) when its stderr is a file, otherwise with
// os/exec. wait waits for its end; a status other than 0 is an
// *exec.ExitError.
func startProcess(exe string, args, env []string, stderr io.Writer, extra []*os.File, flags uintptr) (_ *os.Process, wait func() (*os.ProcessState, error), _ error) {
	if f, ok := stderr.(*os.File); ok && sharedSpawn {
		p, err := spawnShared(exe, args, env, f, extra, flags)
		if err != nil {
			return nil, nil, err
		}
		return p, func() (*os.ProcessState, error) {
			st, err := p.Wait()
			if err == nil && !st.Success() {
				err = &exec.ExitError{ProcessState: st}
			}
			return st, err
		}, nil
	}
	cmd := &exec.Cmd{
		Path:       exe,
		Args:       args,
		Env:        env,
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
		// Become the namespace's root, i.e. the mapped host id: the
		// mapping alone leaves the child's host uid as it was. With
		// keepDropsGroups, also without the host's supplementary groups
		// (setgroups(0), which needs setgroups allowed in the namespace).
		drop := keepDropsGroups()
		cmd.SysProcAttr.GidMappingsEnableSetgroups = drop
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: !drop}
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return cmd.Process, func() (*os.ProcessState, error) {
		err := cmd.Wait()
		return cmd.ProcessState, err
	}, nil
}

// startedHook, if set (tests), is called with the Keep's host pid.
var startedHook func(pid int)

// keepDropsGroups reports whether the Keep sheds the host's supplementary
// groups as it starts: when enarx runs as root, whose Keep is the host's
// nobody (keepHostID), and must not keep root's groups (0 at least, in a
// login shell or under sudo), which a user namespace would leave it: they
// would open to it every host file, in a passed directory say, that its
// group may read or change. Root may allow setgroups in the namespace (the
// child calls setgroups(0) there); an unprivileged host may write a gid
// map only with setgroups denied, and its Keep is the caller anyway,
// groups and all.
func keepDropsGroups() bool { return os.Geteuid() == 0 }

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
