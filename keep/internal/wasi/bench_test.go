package wasi

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/hostfs"
)

// benchChunk is one fd_pread / fd_pwrite (one iovec in the test module's
// one page of memory); benchFile the file they cycle through.
const (
	benchChunk = 32 << 10
	benchFile  = 16 << 20
)

// BenchmarkHostPread and BenchmarkHostPwrite time fd_pread / fd_pwrite
// of 32 KiB on a host directory file against pread(2) / pwrite(2) of the
// same bytes on the same file in the same loop, taking turns at going
// first, and report the ratio native/WASI ("x-native": 1.0 means no
// overhead). The page cache is warm (the file is written first). The WASI
// side is the host function the engine calls, without the engine's own
// call transition.
func BenchmarkHostPread(b *testing.B)  { benchHost(b, false) }
func BenchmarkHostPwrite(b *testing.B) { benchHost(b, true) }

func benchHost(b *testing.B, write bool) {
	dir := b.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, make([]byte, benchFile), 0o644); err != nil {
		b.Fatal(err)
	}
	native, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer native.Close()
	d, err := os.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	root, err := hostfs.New(d, false)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, engine.Default(), fd.Null{}, fd.Null{}, fd.Null{}, &vfs.Preopen{Dir: root, Name: "/"})
	defer e.s.Files.CloseAll()
	f := e.open(preFD, "f", 0, fd.RightFdRead|fd.RightFdWrite, 0)
	const buf = 16 << 10
	e.iov(iovOff, buf, benchChunk)
	call, nativeOp := e.s.fdPread, native.ReadAt
	if write {
		call, nativeOp = e.s.fdPwrite, native.WriteAt
	}
	hbuf := make([]byte, benchChunk)
	ctx := context.Background()
	var stack [5]uint64
	var tWASI, tNative time.Duration
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for i := range b.N {
		off := uint64(i*benchChunk) % benchFile
		stack = [5]uint64{f, iovOff, 1, off, resOff}
		wasiOp := func() {
			t0 := time.Now()
			if errno := call(ctx, e.inst, stack[:]); errno != ESUCCESS || e.u32(resOff) != benchChunk {
				b.Fatalf("errno %d, %d bytes", errno, e.u32(resOff))
			}
			tWASI += time.Since(t0)
		}
		nativ := func() {
			t0 := time.Now()
			if n, err := nativeOp(hbuf, int64(off)); err != nil || n != benchChunk {
				b.Fatal(n, err)
			}
			tNative += time.Since(t0)
		}
		// Whichever goes second finds the file's pages in the CPU caches:
		// take turns.
		if i%2 == 0 {
			wasiOp()
			nativ()
		} else {
			nativ()
			wasiOp()
		}
	}
	b.ReportMetric(float64(tNative)/float64(tWASI), "x-native")
}
