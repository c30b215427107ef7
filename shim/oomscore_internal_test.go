package shim

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/sys/reaper"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestKeepHostOOMScoreAdj: the keep host (and so the Keep, whose processes
// it starts) gets the OCI spec's OOM score adjustment, as runc gives a
// container's process. CRI sets the kubelet's, by QoS class (1000 for a
// BestEffort pod); the keep host kept the shim's instead, containerd's
// plus one (-998 under containerd's systemd unit): a BestEffort pod's
// Keeps were the last processes on the node the OOM killer would kill.
// The tasks here are a pod sandbox's (the shim's own pause, no backend),
// their keep host this test binary (TestMain).
func TestKeepHostOOMScoreAdj(t *testing.T) {
	reapChildren(t)

	own := oomScoreAdj(t, os.Getpid())
	want := 987 // above our own: raising it needs no privilege
	if own == want {
		want++
	}
	s := &service{ctx: context.Background(), events: make(chan any, 128)}
	started, err := startPause(t, s, "oom", want)
	if err != nil {
		t.Fatal(err)
	}
	if got := oomScoreAdj(t, int(started.Pid)); got != want {
		t.Errorf("the keep host's oom_score_adj is %d (the shim's is %d), want the spec's %d", got, own, want)
	}

	// Lowering needs CAP_SYS_RESOURCE. With it the keep host gets the
	// spec's lower score; without it (CI's root lacks it) the start goes
	// on and the keep host keeps the shim's higher one: the OOM killer
	// takes it earlier than the pod asked, never later (before, the pod
	// sandbox of every Kubernetes pod, -998, failed to start there).
	lower := max(own-11, -1000)
	s = &service{ctx: context.Background(), events: make(chan any, 128)}
	started, err = startPause(t, s, "lower", lower)
	if err != nil {
		t.Fatalf("a lower oom_score_adj than the shim's: %v", err)
	}
	wantLower := own
	if hasCapSysResource(t) {
		wantLower = lower
	}
	if got := oomScoreAdj(t, int(started.Pid)); got != wantLower {
		t.Errorf("asked for %d (CAP_SYS_RESOURCE: %v): the keep host's oom_score_adj is %d, want %d", lower, hasCapSysResource(t), got, wantLower)
	}

	// A value the kernel refuses fails the start with the reason, rather
	// than leaving the shim's.
	s = &service{ctx: context.Background(), events: make(chan any, 128)}
	if _, err := startPause(t, s, "bad", 1001); err == nil || !strings.Contains(err.Error(), "1001") {
		t.Errorf("oom_score_adj 1001: %v, want a start refused naming it", err)
	}
}

// startPause creates and starts, in s, a pod sandbox task id whose spec
// has the OOM score adjustment adj, and removes it when the test ends.
func startPause(t *testing.T, s *service, id string, adj int) (*taskAPI.StartResponse, error) {
	t.Helper()
	if err := createPause(t, s, id, func(p *specs.Process) { p.OOMScoreAdj = &adj }); err != nil {
		t.Fatal(err)
	}
	return startCreated(t, s, id)
}

// createPause creates, in s, a pod sandbox task id whose spec's process
// set sets.
func createPause(t *testing.T, s *service, id string, set func(*specs.Process)) error {
	t.Helper()
	bundle := t.TempDir()
	spec := specs.Spec{
		Version:     specs.Version,
		Process:     &specs.Process{Args: []string{"/pause"}, Cwd: "/"},
		Annotations: map[string]string{criContainerType: "sandbox"},
	}
	set(spec.Process)
	b, err := json.Marshal(&spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(t.Context(), &taskAPI.CreateTaskRequest{ID: id, Bundle: bundle})
	return err
}

// startCreated starts task id, created in s, and removes it when the test
// ends.
func startCreated(t *testing.T, s *service, id string) (*taskAPI.StartResponse, error) {
	t.Helper()
	started, err := s.Start(t.Context(), &taskAPI.StartRequest{ID: id})
	t.Cleanup(func() {
		// t.Context() has ended when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.Kill(ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL)}); err != nil {
			t.Errorf("Kill %s: %v", id, err)
		}
		if _, err := s.Wait(ctx, &taskAPI.WaitRequest{ID: id}); err != nil {
			t.Errorf("Wait %s: %v", id, err)
		}
		if _, err := s.Delete(ctx, &taskAPI.DeleteRequest{ID: id}); err != nil {
			t.Errorf("Delete %s: %v", id, err)
		}
	})
	return started, err
}

func oomScoreAdj(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "oom_score_adj"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// hasCapSysResource reports whether this process may lower an OOM score
// adjustment (CAP_SYS_RESOURCE, 24, in its effective set).
func hasCapSysResource(t *testing.T) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<24) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}

// reapChildren reaps this process's children on SIGCHLD until the test
// ends, as the shim library does for the shim (reaper.Default).
func reapChildren(t *testing.T) {
	t.Helper()
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	stop := make(chan struct{})
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		for {
			select {
			case <-sigchld:
				_ = reaper.Reap()
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-reaped
		signal.Stop(sigchld)
	})
}
