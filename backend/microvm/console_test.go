package microvm

import (
	"fmt"
	"log/slog"
	"os"
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
