// Package progress draws single-line transfer progress bars on a terminal.
// When the output is not a terminal (pipes, CI logs, tests) every function is
// a no-op, so callers never need to check.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar reports progress of one transfer of a known total size.
type Bar struct {
	w     io.Writer // nil ⇒ disabled
	label string
	total int64

	mu    sync.Mutex
	done  int64
	start time.Time
	last  time.Time
	now   func() time.Time
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// New returns a bar labelled label for total bytes, drawn on w if w is a
// terminal; otherwise a disabled bar.
func New(w io.Writer, label string, total int64) *Bar {
	if !IsTerminal(w) {
		return &Bar{}
	}
	return newBar(w, label, total, time.Now)
}

func newBar(w io.Writer, label string, total int64, now func() time.Time) *Bar {
	t := now()
	return &Bar{w: w, label: label, total: total, start: t, now: now}
}

// Add records n more bytes transferred.
func (b *Bar) Add(n int) {
	if b == nil || b.w == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += int64(n)
	t := b.now()
	if t.Sub(b.last) < 100*time.Millisecond && b.done < b.total {
		return
	}
	b.last = t
	b.draw(t)
}

// Done finishes the line.
func (b *Bar) Done() {
	if b == nil || b.w == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.draw(b.now())
	fmt.Fprintln(b.w)
	b.w = nil
}

func (b *Bar) draw(t time.Time) {
	const width = 30
	frac := 1.0
	if b.total > 0 {
		frac = float64(b.done) / float64(b.total)
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * width)
	rate := ""
	if el := t.Sub(b.start).Seconds(); el > 0 {
		rate = " " + humanBytes(int64(float64(b.done)/el)) + "/s"
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s [%s%s] %3d%% %s/%s%s", b.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled), int(frac*100),
		humanBytes(b.done), humanBytes(b.total), rate)
}

// Reader counts bytes read from r into the bar.
func (b *Bar) Reader(r io.Reader) io.Reader {
	if b == nil || b.w == nil {
		return r
	}
	return &reader{r: r, b: b}
}

type reader struct {
	r io.Reader
	b *Bar
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.b.Add(n)
	return n, err
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
