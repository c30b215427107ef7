package sandbox

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/internal/testutil"
)

// lowNofileEnv runs TestKeepKeepsLowerHostLimit's Keep in a process with
// RLIMIT_NOFILE lowered to its value.
const lowNofileEnv = "ENARX_TEST_LOW_NOFILE"

// TestKeepKeepsLowerHostLimit: a Keep only ever lowers the limits its host
// gave it. A host whose RLIMIT_NOFILE is below the Keep's own (the
// containerd shim gives its keep host the container spec's, 1024 by
// containerd's default; here 600, below the Keep's files + 1028) starts
// Keeps that keep the host's limit; they failed, asking the kernel to raise
// a hard limit, which needs CAP_SYS_RESOURCE. The host is this test binary
// run again with the lower limit, which it cannot raise back.
func TestKeepKeepsLowerHostLimit(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	const low = 600
	if os.Getenv(lowNofileEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKeepKeepsLowerHostLimit$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", lowNofileEnv, low))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the Keep under RLIMIT_NOFILE %d: %v\n%s", low, err, out)
		}
		return
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: low, Max: low}); err != nil {
		t.Fatal(err)
	}
	pid, done := startConfinedKeep(t, "sleep")
	checkKeepThreads(t, pid, 1, done) // waits for seccomp, after the rlimits
	if got := procLimit(t, pid, "Max open files"); got != [2]string{fmt.Sprint(low), fmt.Sprint(low)} {
		t.Fatalf("Keep %d: RLIMIT_NOFILE %s:%s; want the host's soft and hard limits of %d", pid, got[0], got[1], low)
	}
}

// startConfinedKeep starts a Keep of the fake runner's command args with
// --require-isolation and returns its host pid and the channel its end is
// reported on (startConfined).
func startConfinedKeep(t *testing.T, args ...string) (int, <-chan error) {
	t.Helper()
	return startConfined(t, fake(args...))
}

// startConfined starts the Keep of launch l with --require-isolation and
// returns its host pid and the channel its end is reported on. The Keep is
// stopped when the test ends.
func startConfined(t *testing.T, l *backend.Launch) (int, <-chan error) {
	t.Helper()
	pids := make(chan int, 1)
	startedHook = func(pid int) { pids <- pid }
	t.Cleanup(func() { startedHook = nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	l.Policy.RequireIsolation = true
	go func() {
		defer close(finished)
		_, err := Backend{}.Run(ctx, l)
		done <- err
	}()
	var pid int
	select {
	case pid = <-pids:
	case err := <-done:
		t.Fatalf("Keep ended before it started: %v", err)
	}
	return pid, done
}

// procLimit is the soft and hard value of the limit named name (its
// /proc/<pid>/limits line's start, e.g. "Max open files") of process pid.
func procLimit(t *testing.T, pid int, name string) [2]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return [2]string{f[0], f[1]}
			}
			t.Fatalf("process %d: %q has no soft and hard limit", pid, line)
		}
	}
	t.Fatalf("no %s in /proc/%d/limits:\n%s", name, pid, b)
	return [2]string{}
}
