package sandbox

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

// TestKeepTaskLimit: a confined Keep in its own user namespace may have at
// most maxKeepTasks tasks (RLIMIT_NPROC, which the kernel counts per user
// namespace: the Keep's own threads). Seccomp lets it start threads only,
// but without the limit as many as the host's pid_max: a Keep whose
// workload escaped wasm could take every pid of the host. Read from the
// host, in /proc/<pid>/limits, once the Keep has installed seccomp (the
// rlimits come just before it).
func TestKeepTaskLimit(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	pids := make(chan int, 1)
	startedHook = func(pid int) { pids <- pid }
	defer func() { startedHook = nil }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		l := fake("threads", "1")
		l.Policy.RequireIsolation = true
		_, err := Backend{}.Run(ctx, l)
		done <- err
	}()
	var pid int
	select {
	case pid = <-pids:
	case err := <-done:
		t.Fatalf("Keep ended before it started: %v", err)
	}
	checkKeepThreads(t, pid, 2, done) // waits for seccomp
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max processes"); ok {
			f := strings.Fields(rest)
			if want := fmt.Sprint(maxKeepTasks); len(f) < 2 || f[0] != want || f[1] != want {
				t.Fatalf("Keep %d: %q; want soft and hard limits of %s tasks", pid, line, want)
			}
			return
		}
	}
	t.Fatalf("no Max processes in /proc/%d/limits:\n%s", pid, b)
}
