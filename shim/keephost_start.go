package shim

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/containerd/containerd/sys/reaper"
	"golang.org/x/sys/unix"
)

// keepHost is a started keep host.
type keepHost struct {
	pid int
	// done receives the exit status (128+n for signal n) once the process
	// has been reaped.
	done chan int
}

// startKeepHost starts the keep host of one task with stdio as its fds 0,
// 1 and 2, calls join with its pid (the task's cgroup and OOM score
// adjustment) before it has its launch message, so before it starts
// anything else, and sends it m on fd 3 (and m's module as fd 4, which it
// reads itself: in the cgroup).
//
// It starts from a goroutine locked to its thread: the thread enters the
// network namespace ns names first (setns is per thread, and a new process
// has its creating thread's namespaces), or the child gets a new one
// (CLONE_NEWNET). The thread stays locked until the keep host has been
// reaped, then exits with the goroutine, so no other goroutine ever runs in
// the pod's namespace, and the keep host's parent-death signal (which
// follows the creating thread) fires only when the shim itself dies.
//
// The shim library reaps every child on SIGCHLD (the shim is a
// subreaper), so the exit status comes from its reaper, not os/exec.
func startKeepHost(m *launchMsg, ns netSetup, stdio [3]*os.File, join func(pid int) error) (*keepHost, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the shim executable to start the keep host: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// fd 3 (launchFD) is the message, fd 4 (moduleFD) the module.
	extra := []*os.File{r}
	if m.module != nil {
		extra = append(extra, m.module)
	}
	kh := &keepHost{done: make(chan int, 1)}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked (see above).
		if ns.path != "" {
			if err := setns(ns.path); err != nil {
				started <- err
				return
			}
		}
		attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if ns.newNS {
			attr.Cloneflags = syscall.CLONE_NEWNET
		}
		cmd := &exec.Cmd{
			Path:        exe,
			Args:        []string{"containerd-shim-enarx-v1", KeepHostArg},
			Env:         os.Environ(),
			Stdin:       stdio[0],
			Stdout:      stdio[1],
			Stderr:      stdio[2],
			ExtraFiles:  extra,
			SysProcAttr: attr,
		}
		ec, err := reaper.Default.Start(cmd)
		if err != nil {
			started <- fmt.Errorf("starting the keep host: %w", err)
			return
		}
		kh.pid = cmd.Process.Pid
		started <- nil
		status, err := reaper.Default.Wait(cmd, ec)
		if err != nil {
			status = 128 + int(syscall.SIGKILL)
		}
		kh.done <- status
	}()
	if err := <-started; err != nil {
		w.Close()
		return nil, err
	}
	if join != nil {
		if err := join(kh.pid); err != nil {
			w.Close()
			_ = unix.Kill(kh.pid, unix.SIGKILL)
			<-kh.done
			return nil, err
		}
	}
	go func() {
		// The keep host reads the whole message before anything else; if
		// it dies first the write fails and there is nothing to do.
		_ = writeLaunch(w, m)
		w.Close()
	}()
	return kh, nil
}

// setns moves the calling thread into the network namespace at path.
func setns(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the task's network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering the task's network namespace %s: %w", path, err)
	}
	return nil
}
