package sandbox

import (
	"fmt"
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
	pid, done := startConfinedKeep(t, "threads", "1")
	checkKeepThreads(t, pid, 2, done) // waits for seccomp
	if got, want := procLimit(t, pid, "Max processes"), fmt.Sprint(maxKeepTasks); got != [2]string{want, want} {
		t.Fatalf("Keep %d: RLIMIT_NPROC %s:%s; want soft and hard limits of %s tasks", pid, got[0], got[1], want)
	}
}
