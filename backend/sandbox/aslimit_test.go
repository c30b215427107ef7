package sandbox

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/enarx-go/enarx/backend/backendtest"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// TestKeepAddressSpaceLimit: a confined Keep's RLIMIT_AS is the address
// space its engine reserves for the guest's linear memory +
// addressSpaceSlack (with the host's GOMAXPROCS and CPUs). wazero reserves
// the memory limit, and a launch without one (keep.Options.MemoryLimit 0,
// which keep.Run takes as the engines' 4 GiB, and which the containerd
// shim passes unless its runtime options set memory_mib) gets that of
// 4 GiB: it got none, so a Keep whose workload escaped wasm could take all
// of the host's memory. A limit above what the engines give a guest is
// theirs too. wasmtime reserves 4 GiB and 64 MiB of guard pages whatever
// the limit: a lower limit made the sandbox's RLIMIT_AS too small for it
// ("mmap failed to reserve 0x104000000 bytes"; TestSmallMemoryLimit).
// Read from the host, in /proc/<pid>/limits, once the Keep has installed
// seccomp (the rlimits come just before it).
func TestKeepAddressSpaceLimit(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	eachEngine(t, func(t *testing.T) {
		slack := addressSpaceSlack(keepThreads(runtime.GOMAXPROCS(0)))
		eng := engineOf(t)
		for _, c := range []struct{ limit, want uint64 }{
			{0, keep.DefaultMemoryLimit},
			{1 << 30, 1 << 30},
			{keep.DefaultMemoryLimit, keep.DefaultMemoryLimit},
			{1 << 63, keep.DefaultMemoryLimit},
		} {
			if eng == "wasmtime" {
				c.want = 0x104000000
			}
			got := keepAddressSpace(t, eng, c.limit)
			if want := fmt.Sprint(c.want + slack); got != [2]string{want, want} {
				t.Errorf("%s, memory limit %d: the Keep's RLIMIT_AS is %s:%s; want soft and hard limits of %s bytes", eng, c.limit, got[0], got[1], want)
			}
		}
	})
}

// keepAddressSpace starts a confined Keep for engine with the memory
// limit limit and returns its soft and hard RLIMIT_AS as
// /proc/<pid>/limits shows them once it has installed seccomp; then it
// ends the Keep.
func keepAddressSpace(t *testing.T, engine string, limit uint64) [2]string {
	t.Helper()
	var got [2]string
	t.Run(fmt.Sprint(limit), func(t *testing.T) {
		l := fake("sleep")
		l.Options.MemoryLimit = limit
		l.Options.Engine = engine
		pid, done := startConfined(t, l)
		checkKeepThreads(t, pid, 1, done) // waits for seccomp, after the rlimits
		got = procLimit(t, pid, "Max address space")
	})
	return got
}

// TestSmallMemoryLimit: a real workload runs in a sandbox Keep with a
// memory limit below 4 GiB on every engine. On wasmtime, which reserves
// 4 GiB and guard pages whatever the limit, the Keep's RLIMIT_AS (the
// limit + 2 GiB) was too small for that: `enarx run --backend sandbox
// --memory 1GiB` failed with "mmap failed to reserve 0x104000000 bytes".
func TestSmallMemoryLimit(t *testing.T) {
	eachEngine(t, func(t *testing.T) {
		w := keep.Workload{Wasm: build(t, "hello")}
		r := backendtest.Run(t, Backend{}, w, nil, keep.Options{MemoryLimit: 64 << 20, CacheDir: testCacheDir, Engine: engineOf(t)})
		if r.Code != 0 || r.Err != "" || r.Stdout != "Hello, world!\n" {
			t.Errorf("hello with a 64 MiB memory limit: code %d err %q stdout %q stderr %.300q", r.Code, r.Err, r.Stdout, r.Stderr)
		}
	})
}
