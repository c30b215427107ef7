package microvm

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
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
