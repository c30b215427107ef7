package sandbox

import (
	"errors"
	"log/slog"
	"time"

	"golang.org/x/sys/unix"
)

// Ending a Keep. Once a Keep has answered, or ended, the host copies
// what is left in its stderr pipe (keepstderr_linux.go), puts back the
// status flags of the open file descriptions it shared with it
// (stdio_linux.go) and checks its module's compilation cache
// (cachecheck_linux.go). All must wait until none of the Keep's threads
// can run any more, not even a system call it was in: a write to the
// cache after the check would stay. A reaped (or zombie) process is such
// a state, but the kernel's tear-down of a Keep takes 4 ms (median; 1–12
// ms) on the VM we measure on even when it ran nothing, and enarx ends
// its process as soon as the backend returns, which would end a check
// left to a goroutine. A stopped one is too: SIGSTOP (which the init of a
// pid namespace gets from its parent's namespace like any process) stops
// the Keep's threads as each returns to user mode, and the parent learns
// of the stop only when every one of them has: none is in a system call
// then, and none can start one. So on the early return the host stops
// the Keep, waits until it has stopped (or exited), does its work, and
// only then kills it; the tear-down follows after the host has returned.
// A Keep that does not stop within keepStopWait (one that exited by
// itself, or that keeps sending itself SIGCONT) is killed and waited for.

// keepStopWait bounds the wait for a Keep to stop. A var for tests: on a
// loaded machine a Keep's threads may take longer than this to stop, and
// the host then takes the slower path (kill, wait for the exit) that a
// test of the stop itself must not be left to.
var keepStopWait = 250 * time.Millisecond

// keepLinger is how long a Keep waits, after its result message, for the
// host to end it (keepReply). The host ends every Keep that answered;
// this only bounds one whose host did not (and the host's death kills the
// Keep anyway: PR_SET_PDEATHSIG).
const keepLinger = 10 * time.Second

// Values of si_code for SIGCHLD (include/uapi/asm-generic/siginfo.h).
const (
	cldExited  = 1
	cldKilled  = 2
	cldDumped  = 3
	cldStopped = 5
)

// endKeep runs once awaitKeep has returned, on every path: the Keep has
// exited, been killed, or (early return) answered and waits to be ended.
// It puts back the flags of the descriptions the Keep shared, checks the
// module's compilation cache if the launch gave the Keep one, and kills
// the Keep.
func (k *keepFDs) endKeep(cmd *keepCmd, moduleSize int, log *slog.Logger) {
	dir := <-k.cacheDir
	if dir == "" && len(k.shared) == 0 && k.stderr == nil {
		cmd.kill()
		return
	}
	stopped := cmd.freeze()
	if !stopped {
		cmd.kill()
		<-cmd.exited
	}
	if haltedHook != nil {
		haltedHook(cmd.proc.Pid, stopped)
	}
	k.afterKeep(dir, cmd, moduleSize, log)
	if stopped && !cmd.stillFrozen() {
		// Someone continued it meanwhile: once more, after its end.
		cmd.kill()
		<-cmd.exited
		k.afterKeep(dir, cmd, moduleSize, log)
	}
	cmd.kill()
}

// haltedHook, if set (tests), is called with the Keep's host pid once it
// is stopped (frozen: true) or has exited.
var haltedHook func(pid int, frozen bool)

// afterKeep copies the rest of the Keep's stderr pipe, puts back the
// shared descriptions' flags and checks the cache directory dir ("" for
// none) of a Keep that cannot run.
func (k *keepFDs) afterKeep(dir string, cmd *keepCmd, moduleSize int, log *slog.Logger) {
	if k.stderr != nil {
		// Its diagnostics, all of them, before the host's own.
		k.stderr.flush()
	}
	for _, s := range k.shared {
		s.restore()
	}
	if dir == "" {
		return
	}
	if log == nil {
		log = slog.Default()
	}
	checkModuleCache(dir, moduleSize, cmd.proc.Pid, log)
}

// freeze stops the Keep (SIGSTOP) and reports whether it then is stopped
// or has exited: either way none of its threads is in a system call, and
// none can make one. false: it is not known to be (no pidfd, or it did not
// stop within keepStopWait, and was killed).
func (k *keepCmd) freeze() bool {
	select {
	case <-k.exited:
		return true
	default:
	}
	if k.pidfd < 0 || unix.PidfdSendSignal(k.pidfd, unix.SIGSTOP, nil, 0) != nil {
		return false
	}
	done := make(chan bool, 1)
	go func() { done <- k.waitHalted(0) }()
	t := time.NewTimer(keepStopWait)
	defer t.Stop()
	select {
	case ok := <-done:
		return ok
	case <-t.C:
		k.kill()
		<-done // the wait ends with the process (and must, before release)
		return false
	}
}

// stillFrozen reports whether the Keep freeze stopped is still stopped or
// has exited since.
func (k *keepCmd) stillFrozen() bool {
	select {
	case <-k.exited:
		return true
	default:
	}
	return k.waitHalted(unix.WNOHANG)
}

// waitHalted waits (with flags WNOHANG: looks) until the Keep is stopped or
// has exited, without reaping it, and reports whether it is.
func (k *keepCmd) waitHalted(flags int) bool {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PIDFD, k.pidfd, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT|flags, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			return true // reaped meanwhile
		case err != nil || info.Signo != int32(unix.SIGCHLD):
			return false
		}
		switch info.Code {
		case cldStopped, cldExited, cldKilled, cldDumped:
			return true
		}
		return false
	}
}
