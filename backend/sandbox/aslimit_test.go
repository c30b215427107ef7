package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// TestKeepAddressSpaceLimit: a confined Keep's RLIMIT_AS is its linear
// memory limit + addressSpaceSlack (with the host's GOMAXPROCS and CPUs), and a launch without a memory limit
// (keep.Options.MemoryLimit 0, which keep.Run takes as the engines' 4 GiB,
// and which the containerd shim passes unless its runtime options set
// memory_mib) gets that of 4 GiB: it got none, so a Keep whose workload
// escaped wasm could take all of the host's memory. A limit above what the
// engines give a guest is theirs too. Read from the host, in
// /proc/<pid>/limits, once the Keep has installed seccomp (the rlimits
// come just before it).
func TestKeepAddressSpaceLimit(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	slack := addressSpaceSlack(keepThreads(runtime.GOMAXPROCS(0)))
	for _, c := range []struct{ limit, want uint64 }{
		{0, keep.DefaultMemoryLimit + slack},
		{1 << 30, 1<<30 + slack},
		{keep.DefaultMemoryLimit, keep.DefaultMemoryLimit + slack},
		{1 << 63, keep.DefaultMemoryLimit + slack},
	} {
		got := keepAddressSpace(t, c.limit)
		if want := fmt.Sprint(c.want); got != [2]string{want, want} {
			t.Errorf("memory limit %d: the Keep's RLIMIT_AS is %s:%s; want soft and hard limits of %s bytes", c.limit, got[0], got[1], want)
		}
	}
}

// keepAddressSpace starts a confined Keep with the memory limit limit and
// returns its soft and hard RLIMIT_AS as /proc/<pid>/limits shows them
// once it has installed seccomp; then it ends the Keep.
func keepAddressSpace(t *testing.T, limit uint64) [2]string {
	t.Helper()
	pids := make(chan int, 1)
	startedHook = func(pid int) { pids <- pid }
	defer func() { startedHook = nil }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		l := fake("sleep")
		l.Options.MemoryLimit = limit
		l.Policy.RequireIsolation = true
		_, err := Backend{}.Run(ctx, l)
		done <- err
	}()
	defer func() {
		cancel()
		<-done
	}()
	var pid int
	select {
	case pid = <-pids:
	case err := <-done:
		t.Fatalf("memory limit %d: the Keep ended before it started: %v", limit, err)
	}
	// A bound on a test that would otherwise hang, not a measurement.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if bytes.Contains(st, []byte("\nSeccomp:\t2\n")) {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("memory limit %d: the Keep ended before it was confined: %v", limit, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("memory limit %d: Keep %d has no seccomp filter after a minute", limit, pid)
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max address space"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				return [2]string{f[0], f[1]}
			}
		}
	}
	t.Fatalf("no address space limit in /proc/%d/limits:\n%s", pid, b)
	return [2]string{}
}
