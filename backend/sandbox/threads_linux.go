package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Why every thread, and how. Capabilities, no_new_privs and Landlock are
// per-thread kernel state, and a Go process has several threads before
// main runs (sysmon, idle Ms, a thread blocked in a system call): a layer
// applied to one thread would leave the others, which go on to run the
// workload, unconfined. allThreads makes one system call on every thread
// of the process, through libcap's psx package (the mechanism libcap's own
// Go package and go-landlock use):
//
//   - in a CGO_ENABLED=0 build psx is syscall.AllThreadsSyscall: the Go
//     runtime stops the world and runs the call on each of its threads;
//   - in a cgo build (where the Go runtime refuses AllThreadsSyscall,
//     because C code may have started threads it does not know) psx's C
//     code lists the process's threads in /proc/<pid>/task, signals each
//     and has it make the call. That needs a /proc of the Keep's own pid
//     namespace: ownProcNeeded, and the empty root mounts one (see
//     emptyRoot).
//
// Both compare each thread's result with the calling thread's. The Go
// runtime ends the process on a difference; psx would SIGKILL it, but
// the Keep is its pid namespace's init, which ignores a SIGKILL from
// within, so psx only reports the difference on stderr and the Keep checks
// the outcome itself: after no_new_privs and the capabilities,
// checkAllThreads reads every thread's status in /proc. Landlock comes
// last (it leaves psx the thread list, and closes the status files); its
// result is compared by psx only. psx also "aborts" the same way when it
// cannot list the threads, and would then spin forever: allThreads checks
// that it can first (ownProcReady).
//
// Threads started later are cloned from a confined thread and inherit
// its state. The Keep therefore confines itself in one process, without
// re-executing itself.

// allThreads makes the system call trap on every thread of the process.
// Pointer arguments must be converted to uintptr in the call expression
// (go:uintptrescapes keeps what they point to alive and in place).
//
//go:uintptrescapes
func allThreads(trap, a1, a2, a3 uintptr) error {
	if ownProcNeeded {
		if err := ownProcReady(); err != nil {
			// psx would spin forever (see above).
			return err
		}
	}
	if _, _, e := psx.Syscall6(trap, a1, a2, a3, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// errNoOwnProc: a cgo build cannot reach every thread without /proc.
var errNoOwnProc = errors.New("a cgo build of enarx finds the Keep's threads in /proc, and the Keep has no /proc of its own pid namespace (build enarx with CGO_ENABLED=0, which needs none)")

// ownProcReady checks that /proc/<pid>/task, where psx lists the
// threads, is this process's: the pid psx asks for is getpid(), which in
// the Keep's pid namespace is 1, and a /proc of the host's pid namespace
// would list another process's threads there.
func ownProcReady() error {
	// Opened as psx opens it (Landlock would refuse it, not a stat).
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/task", os.Getpid()), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return errNoOwnProc
	}
	unix.Close(fd)
	// The procfs that "self" resolves in names this process by the pid
	// getpid() returns only if it belongs to this pid namespace.
	self, err := os.Readlink("/proc/self")
	if err != nil || self != fmt.Sprint(os.Getpid()) {
		return errNoOwnProc
	}
	return nil
}

// mountOwnProc mounts, at target, a procfs of this process's pid
// namespace limited to its processes' directories (subset=pid: no
// /proc/sys, kcore, mounts of the host, …), read-only, for psx in a cgo
// build. Landlock grants no access beneath it.
func mountOwnProc(target string) error {
	if err := unix.Mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RDONLY, "subset=pid"); err != nil {
		return fmt.Errorf("mounting a /proc of the Keep's pid namespace: %w", err)
	}
	return nil
}

// threadStatus are the /proc/<pid>/task/<tid>/status fields every thread
// must show after no_new_privs and the capabilities.
var threadStatus = map[string]string{
	"NoNewPrivs": "1",
	"CapInh":     "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
	"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
}

// checkAllThreads reads every thread's status and refuses if one lacks
// no_new_privs or holds a capability in any set (see above: psx's own
// check cannot end the Keep).
func checkAllThreads() error {
	dir := fmt.Sprintf("/proc/%d/task", os.Getpid())
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("listing the Keep's threads: %w", err)
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/status")
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			continue // the thread has ended
		}
		if err != nil {
			return fmt.Errorf("reading thread %s's status: %w", t.Name(), err)
		}
		seen := 0
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if want, check := threadStatus[k]; ok && check {
				if v = strings.TrimSpace(v); v != want {
					return fmt.Errorf("thread %s: %s is %s, want %s", t.Name(), k, v, want)
				}
				seen++
			}
		}
		if seen != len(threadStatus) {
			return fmt.Errorf("thread %s: its status shows %d of the %d fields checked", t.Name(), seen, len(threadStatus))
		}
	}
	return nil
}
