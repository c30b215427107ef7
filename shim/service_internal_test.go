package shim

import (
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
)

// TestKillAfterReapSignalsNoOne: once the keep host has been reaped, its
// pid is free for another process while the task's output still drains
// (up to ioWait), and the task is still running for containerd. A Kill
// then must not signal that pid (nor its process group): here a process
// of our own stands for the one that got the pid.
func TestKillAfterReapSignalsNoOne(t *testing.T) {
	other := exec.Command("sleep", "60")
	other.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as a keep host is
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- other.Wait() }()
	t.Cleanup(func() {
		_ = other.Process.Kill()
		<-exited
	})

	s := &service{events: make(chan any, 128)}
	task := &ktask{id: "t", status: running, pid: other.Process.Pid, io: &taskIO{}, done: make(chan struct{})}
	task.io.copies.Add(1) // output still draining
	s.task = task
	kh := &keepHost{pid: other.Process.Pid, done: make(chan int, 1)}
	kh.done <- 0 // the keep host was reaped
	go s.waitExit(task, kh)
	t.Cleanup(func() { task.io.copies.Done() })
	reaped := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return task.reaped
	}
	for deadline := time.Now().Add(5 * time.Second); !reaped(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("waitExit did not record the keep host's end")
		}
	}

	for _, all := range []bool{false, true} {
		if _, err := s.Kill(t.Context(), &taskAPI.KillRequest{ID: "t", Signal: uint32(syscall.SIGKILL), All: all}); err != nil {
			t.Fatalf("Kill (all: %v): %v", all, err)
		}
	}
	// Which signal ends the process tells whether Kill sent one: a
	// SIGKILL sent before takes precedence over this SIGTERM.
	if err := other.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("the process that has the keep host's pid is gone: %v", err)
	}
	err := <-exited
	exited <- err
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("Kill of a reaped keep host signalled the process that has its pid: it ended with %v", err)
	}
	if r, err := s.Pids(t.Context(), &taskAPI.PidsRequest{ID: "t"}); err != nil || len(r.Processes) != 0 {
		t.Errorf("Pids of a reaped keep host: %v, %v", r, err)
	}
}
