package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestDisabledOnNonTerminal(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf, "x", 10)
	r := b.Reader(strings.NewReader("0123456789"))
	io.Copy(io.Discard, r)
	b.Done()
	if buf.Len() != 0 {
		t.Fatalf("wrote %q to a non-terminal", buf.String())
	}
	var nilBar *Bar
	nilBar.Add(1)
	nilBar.Done()
}

func TestBarDraws(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	clock := func() time.Time { now = now.Add(time.Second); return now }
	b := newBar(&buf, "main.wasm", 4<<20, clock)
	r := b.Reader(bytes.NewReader(make([]byte, 4<<20)))
	if n, _ := io.Copy(io.Discard, r); n != 4<<20 {
		t.Fatalf("copied %d", n)
	}
	b.Done()
	out := buf.String()
	if !strings.Contains(out, "main.wasm [") || !strings.Contains(out, "100% 4.0 MiB/4.0 MiB") || !strings.HasSuffix(out, "\n") {
		t.Fatalf("output %q", out)
	}
	b.Add(1) // after Done: no-op, no panic
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 64 << 20: "64.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
