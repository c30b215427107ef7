package bigbuf

import (
	"runtime/debug"
	"testing"
	"time"
)

func TestMake(t *testing.T) {
	for _, n := range []int{0, 1, MinSize - 1, MinSize, 3*MinSize + 4097} {
		b := Make(n)
		if len(b) != n || cap(b) < n {
			t.Fatalf("Make(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Make(%d): byte %d is %d", n, i, b[i])
			}
		}
		for i := 0; i < n; i += 4096 {
			b[i] = 1
		}
	}
}

// BenchmarkFirstTouch compares allocating and filling a 64 MiB slice
// from Make with one from make, each time in memory the process has just
// returned to the kernel, as in a process that fetches a package once
// (ratio > 1: Make is faster).
func BenchmarkFirstTouch(b *testing.B) {
	const n = 64 << 20
	touch := func(buf []byte) {
		for i := 0; i < len(buf); i += 4096 {
			buf[i] = 1
		}
	}
	var plain, huge time.Duration
	for b.Loop() {
		debug.FreeOSMemory()
		t0 := time.Now()
		touch(make([]byte, n))
		plain += time.Since(t0)
		debug.FreeOSMemory()
		t1 := time.Now()
		touch(Make(n))
		huge += time.Since(t1)
	}
	b.ReportMetric(float64(plain.Milliseconds())/float64(b.N), "make-ms")
	b.ReportMetric(float64(huge.Milliseconds())/float64(b.N), "Make-ms")
	b.ReportMetric(plain.Seconds()/huge.Seconds(), "make/Make")
}
