package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/enarx-go/enarx/microvm/vmm"
)

// Launcher starts VMs with QEMU. The zero value finds QEMU itself.
type Launcher struct {
	// Binary is the QEMU system emulator; "" finds it with LookPath.
	Binary string
	// Logger receives QEMU's command line, pid and stderr lines at debug
	// level; nil discards them.
	Logger *slog.Logger
	// Root is the host file system the KVM check reads; nil is the real
	// root (vmm.HostFS). Tests fake it.
	Root fs.FS
}

var _ vmm.Launcher = Launcher{}

// Name returns "qemu".
func (Launcher) Name() string { return "qemu" }

// Bounds on what is kept of QEMU's output.
const (
	// stderrTail is how much of QEMU's stderr is kept for errors.
	stderrTail = 8 << 10
	// errorTail is how much of that an error quotes.
	errorTail = 2 << 10
	// maxLine splits longer console and stderr lines.
	maxLine = 4 << 10
)

// minimalEnv is QEMU's whole environment: nothing of enarx's own
// environment (tokens, credentials) reaches it.
func minimalEnv() []string {
	return []string{"LC_ALL=C", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
}

// Start validates s, checks that this QEMU and host can run it, and starts
// QEMU. It takes ownership of each Channel.File and closes it before it
// returns (QEMU keeps its own copy). Cancelling ctx kills QEMU; so does the
// end of the enarx process, even by SIGKILL (the parent-death signal).
// QEMU runs in its own process group, so a terminal's Ctrl-C reaches enarx
// alone, which then stops the VM.
func (l Launcher) Start(ctx context.Context, s vmm.Spec) (vmm.VM, error) {
	defer closeChannels(s.Channels)
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := validateQEMU(s); err != nil {
		return nil, err
	}
	for _, c := range s.Channels {
		st, err := c.File.Stat()
		if err != nil {
			return nil, fmt.Errorf("channel %q: %w", c.Name, err)
		}
		if st.Mode()&fs.ModeSocket == 0 {
			return nil, fmt.Errorf("channel %q: the host file is not a socket (use a connected unix stream socket)", c.Name)
		}
	}

	bin := l.Binary
	if bin == "" {
		p, err := LookPath(nil)
		if err != nil {
			return nil, err
		}
		bin = p
	} else if abs, err := exec.LookPath(bin); err != nil {
		return nil, fmt.Errorf("QEMU binary %s: %w; %s", bin, err, installHint)
	} else if bin, err = filepath.Abs(abs); err != nil {
		return nil, err
	}
	info, err := cachedProbe(ctx, bin)
	if err != nil {
		return nil, err
	}
	if err := gate(info, s.TEE); err != nil {
		return nil, err
	}
	if s.Accel == vmm.AccelKVM {
		root := l.Root
		if root == nil {
			root = vmm.HostFS()
		}
		if err := vmm.KVMAvailable(root); err != nil {
			return nil, fmt.Errorf("KVM acceleration: %w", err)
		}
	}
	args, err := ArgsWith(s, Options{Sandbox: info.Sandbox})
	if err != nil {
		return nil, err
	}
	if !info.Sandbox {
		// QEMU parses the guest's device I/O: a guest that takes it over
		// gets every privilege QEMU has. That is a host-side risk the
		// operator must know of, so it is said at every launch.
		log.Warn("qemu: this QEMU has no seccomp sandbox (it refuses -sandbox: built without libseccomp), "+
			"so a guest that took QEMU over would act with all of QEMU's privileges; "+
			"use a QEMU built with libseccomp (Debian's qemu-system-x86 is)", "qemu", bin)
	}

	name := filepath.Base(bin)
	v := &vm{name: name, done: make(chan struct{})}
	console := s.Console
	if console == nil {
		console = io.Discard
	}
	v.console = newLineWriter(func(line []byte) {
		// A failing console must not stall QEMU: its lines are dropped.
		if v.consoleErr == nil {
			_, v.consoleErr = console.Write(append(line, '\n'))
		}
	})
	v.stderr = newLineWriter(func(line []byte) {
		v.tail.add(line)
		log.Debug("qemu stderr", "line", string(line))
	})
	files := make([]*os.File, len(s.Channels))
	for i, c := range s.Channels {
		files[i] = c.File
	}
	cmd := &exec.Cmd{
		Path:       bin,
		Args:       append([]string{bin}, args...),
		Env:        minimalEnv(),
		Stdout:     v.console,
		Stderr:     v.stderr,
		ExtraFiles: files,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
		// Only QEMU holds the pipes' write ends; this bounds Wait should
		// anything else ever inherit them.
		WaitDelay: 5 * time.Second,
	}
	log.Debug("qemu: starting", "version", info.Version.String(), "sandbox", info.Sandbox, "argv", cmd.Args)
	// Pdeathsig fires when the *thread* that forked QEMU exits, and Go
	// ends a thread whenever a goroutine that locked it (LockOSThread)
	// returns locked, which any goroutine of the process may do on any
	// thread the scheduler gives it. So fork from a goroutine that locks
	// its thread and keeps it until QEMU is reaped: no other goroutine
	// runs there meanwhile, and the thread outlives QEMU.
	v.cmd = cmd
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		v.pid = cmd.Process.Pid
		started <- nil
		v.wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	log.Debug("qemu: started", "pid", v.pid)
	go func() {
		select {
		case <-ctx.Done():
			v.kill(ctx.Err())
		case <-v.done:
		}
	}()
	return v, nil
}

// gate refuses a TEE the QEMU release cannot start.
func gate(info *Info, tee vmm.TEE) error {
	switch {
	case tee == vmm.TEESNP && !info.SupportsSNP():
		return fmt.Errorf("SEV-SNP VMs need QEMU %d.%d or newer; %s is QEMU %s", MinSNP.Major, MinSNP.Minor, info.Path, info.Version)
	case tee == vmm.TEETDX && !info.SupportsTDX():
		return fmt.Errorf("TDX VMs need QEMU %d.%d or newer; %s is QEMU %s", MinTDX.Major, MinTDX.Minor, info.Path, info.Version)
	}
	return nil
}

func closeChannels(cs []vmm.Channel) {
	for _, c := range cs {
		if c.File != nil {
			c.File.Close()
		}
	}
}

// vm is a running QEMU.
type vm struct {
	name string
	cmd  *exec.Cmd
	pid  int

	console, stderr *lineWriter
	consoleErr      error // under console's lock
	tail            tail

	mu     sync.Mutex
	reason error // why enarx stopped it: vmm.ErrKilled or the context's error

	done chan struct{}
	err  error
}

func (v *vm) Pid() int { return v.pid }

func (v *vm) Wait() error {
	<-v.done
	return v.err
}

func (v *vm) Kill() error { return v.kill(vmm.ErrKilled) }

func (v *vm) kill(reason error) error {
	v.mu.Lock()
	if v.reason == nil {
		v.reason = reason
	}
	v.mu.Unlock()
	// os.Process signals through a pidfd: no risk of hitting a reused pid.
	if err := v.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s (pid %d): %w", v.name, v.pid, err)
	}
	return nil
}

func (v *vm) wait() {
	err := v.cmd.Wait()
	v.console.flush()
	v.stderr.flush()
	v.mu.Lock()
	reason := v.reason
	v.mu.Unlock()
	v.err = v.exitError(err, reason)
	close(v.done)
}

func (v *vm) exitError(err, reason error) error {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case reason != nil:
		return fmt.Errorf("%s (pid %d) stopped: %w", v.name, v.pid, reason)
	case errors.As(err, &ee):
		msg := v.tail.last(errorTail)
		if msg == "" {
			msg = "(nothing on stderr)"
		}
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &exitError{fmt.Sprintf("%s (pid %d) was killed by signal %d (%v): %s", v.name, v.pid, int(ws.Signal()), ws.Signal(), msg), ee}
		}
		return &exitError{fmt.Sprintf("%s exited with status %d: %s", v.name, ee.ExitCode(), msg), ee}
	}
	return fmt.Errorf("%s (pid %d): %w", v.name, v.pid, err)
}

// exitError is QEMU's exit status with its last stderr lines; it unwraps
// to the *exec.ExitError.
type exitError struct {
	msg string
	err error
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) Unwrap() error { return e.err }

// tail keeps the last stderrTail bytes of QEMU's stderr, in lines.
type tail struct {
	mu    sync.Mutex
	lines []string
	size  int
}

func (t *tail) add(line []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, string(line))
	t.size += len(line) + 1
	for t.size > stderrTail && len(t.lines) > 1 {
		t.size -= len(t.lines[0]) + 1
		t.lines = t.lines[1:]
	}
}

// last returns the newest whole lines that fit in n bytes (at least the
// last line, cut to n), oldest first.
func (t *tail) last(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	size := 0
	for i := len(t.lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(t.lines[i])
		if l == "" {
			continue
		}
		if size+len(l)+1 > n {
			if len(out) == 0 {
				out = append(out, l[len(l)-n:])
			}
			break
		}
		out = append(out, l)
		size += len(l) + 1
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return strings.Join(out, "\n")
}

// lineWriter hands each line written to it (without its "\n", or a "\r"
// before it) to emit; lines longer than maxLine are split. It never fails, so
// the process writing to it is never stalled by an error.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	emit func([]byte)
}

func newLineWriter(emit func([]byte)) *lineWriter { return &lineWriter{emit: emit} }

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			w.split()
			break
		}
		w.buf = append(w.buf, p[:i]...)
		p = p[i+1:]
		w.split()
		w.emitLine(w.buf, true)
		w.buf = w.buf[:0]
	}
	return n, nil
}

// split emits maxLine-byte pieces while more than maxLine bytes wait.
func (w *lineWriter) split() {
	for len(w.buf) > maxLine {
		w.emitLine(w.buf[:maxLine], false)
		w.buf = append(w.buf[:0], w.buf[maxLine:]...)
	}
}

// emitLine hands l on; a line that ended with "\n" loses a trailing "\r".
func (w *lineWriter) emitLine(l []byte, ended bool) {
	if ended && len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	w.emit(append([]byte(nil), l...))
}

// flush emits a last line that had no "\n".
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emitLine(w.buf, false)
		w.buf = w.buf[:0]
	}
}
