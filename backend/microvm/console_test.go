package microvm

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/microvm/vmm"
)

// TestConsoleLinesBounded: the guest writes the console, so what the host
// keeps of it for errors is bounded however much it writes, and the lines
// that say why a Keep died survive the output that follows them.
func TestConsoleLinesBounded(t *testing.T) {
	w := consoleLog(slog.New(slog.DiscardHandler))
	w.Write([]byte("[    1.0] Kernel panic - not syncing: Attempted to kill init! " + strings.Repeat("x", 1000) + "\n"))
	for i := range 10000 {
		line := fmt.Sprintf("line %d %s\r\n", i, strings.Repeat("y", i%500))
		if i%7 == 0 {
			line = "fatal error: " + line
		}
		w.Write([]byte(line))
	}
	notable, last := w.lines()
	if len(notable) != consoleNotable || len(last) != consoleTailLines {
		t.Fatalf("kept %d notable and %d last lines; want %d and %d", len(notable), len(last), consoleNotable, consoleTailLines)
	}
	for _, l := range append(notable, last...) {
		if len(l) > consoleLineBytes || strings.ContainsAny(l, "\r\n") {
			t.Fatalf("kept line of %d bytes %.40q", len(l), l)
		}
	}
	if !strings.Contains(notable[0], "Kernel panic - not syncing") || !strings.HasPrefix(notable[1], "fatal error: line 0 ") {
		t.Errorf("notable lines %q", notable)
	}
	if !strings.HasPrefix(last[len(last)-1], "line 9999 ") {
		t.Errorf("last lines %q", last)
	}
	var nilw *lineLogger
	if n, l := nilw.lines(); n != nil || l != nil {
		t.Errorf("a nil console has lines")
	}
}

// TestConsoleOops: a kernel that oopses in an interrupt prints what went
// wrong and where long before its panic line, under a register dump and a
// call trace that fill the tail; the error keeps those first lines and the
// panic, so a Keep's death says more than "Fatal exception in interrupt".
func TestConsoleOops(t *testing.T) {
	w := consoleLog(slog.New(slog.DiscardHandler))
	oops := []string{
		"[    0.610001] BUG: unable to handle page fault for address: ff125d34ed401000",
		"[    0.610002] #PF: supervisor read access in kernel mode",
		"[    0.610003] Oops: 0000 [#1] PREEMPT SMP NOPTI",
		"[    0.610004] CPU: 0 PID: 0 Comm: swapper/0 Not tainted 6.12.118+deb12-cloud-amd64 #1",
		"[    0.610005] RIP: 0010:memcpy_orig+0x31/0x140",
		"[    0.610006] Code: 48 89 f8 48 83 fa 20 72 7e 40 38 fe 7c 35 48 83 ea 20",
		"[    0.610007] RSP: 0018:ffffb6e740003e48 EFLAGS: 00010206",
		"[    0.610008] Call Trace:",
		"[    0.610009]  <IRQ>",
		"[    0.610010]  ? __die+0x23/0x70",
		"[    0.624647] CR2: ff125d34ed401000 CR3: 000000002c422000 CR4: 0000000000751ef0",
		"[    0.624647] PKRU: 55555554",
		"[    0.624647] Kernel panic - not syncing: Fatal exception in interrupt",
	}
	w.Write([]byte(strings.Join(oops, "\n") + "\n"))
	notable, _ := w.lines()
	want := []string{oops[0], oops[2], oops[4], oops[len(oops)-1]}
	if !slices.Equal(notable, want) {
		t.Errorf("notable lines\n%q\nwant\n%q", notable, want)
	}
}

// TestConsoleInitDiedOfGo: a Keep whose Go runtime ended /init (status 2:
// kept off the console in a TEE) gets an error that says so, one whose
// /init exited otherwise does not.
func TestConsoleInitDiedOfGo(t *testing.T) {
	for _, tc := range []struct {
		code string
		want bool
	}{{"0x00000200", true}, {"0x00000000", false}, {"0x00000100", false}} {
		w := consoleLog(slog.New(slog.DiscardHandler))
		w.Write([]byte("[    1.0] Kernel panic - not syncing: Attempted to kill init! exitcode=" + tc.code + "\n[    1.0] ---[ end Kernel panic ]---\n"))
		err := vmStopped(nil, w)
		if got := strings.Contains(err.Error(), "the Keep's Go runtime ended it"); got != tc.want {
			t.Errorf("exitcode %s: %v", tc.code, err)
		}
	}
}

// TestCompileSlowdownUnderTCG: a Keep under software emulation compiles
// ten to twenty times slower, so the host lengthens its compile deadline
// (a 3 MB module was refused at 88 s in CI); under KVM it stays as is.
func TestCompileSlowdownUnderTCG(t *testing.T) {
	for _, tc := range []struct {
		accel vmm.Accel
		want  int
	}{{vmm.AccelTCG, tcgCompileSlowdown}, {vmm.AccelKVM, 0}} {
		a, b, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		defer b.Close()
		l := &backend.Launch{Workload: keep.Workload{Wasm: trapWasm}, Options: keep.Options{NoCache: true}}
		s, err := KVM.newSession(a, l, tc.accel, vmm.Spec{}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if s.compileSlowdown != tc.want {
			t.Errorf("%s: compile slowdown %d; want %d", tc.accel, s.compileSlowdown, tc.want)
		}
	}
}
