package sandbox

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/internal/testutil"
)

func init() {
	// dumpable answers PR_GET_DUMPABLE (seccomp refuses prctl: only in a
	// Keep without that layer).
	containmentHooks["dumpable"] = func(string) string {
		v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			return errnoString(err)
		}
		return map[int]string{0: "not dumpable", 1: "dumpable", 2: "dumpable by root"}[v]
	}
}

// TestKeepNotDumpable: a confined Keep is not dumpable. RLIMIT_CORE = 0
// stops a core file, but not a core_pattern that pipes the core to a
// helper (systemd-coredump, apport): the kernel runs that as root in the
// host's namespaces whatever RLIMIT_CORE says, and it reads the crashed
// process's memory and /proc, a Keep's that its workload, escaped from
// wasm, crashed at will — helpers with a history of privilege escalations
// from crafted crashes in other namespaces. The kernel dumps a process
// that is not dumpable for no one. Read inside a Keep without seccomp,
// which refuses prctl (the flag is the rlimits layer's).
func TestKeepNotDumpable(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	layers, got := runHook(t, "dumpable", LayerSeccomp)
	if !layerOn(layers, LayerRlimits) {
		t.Fatalf("rlimits layer missing: %+v", layers)
	}
	if got != "not dumpable" {
		t.Fatalf("the confined Keep is %s: a crash of it runs the host's core dump helper", strings.TrimSpace(got))
	}
}
