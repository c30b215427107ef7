package sealed

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
)

// BenchmarkSequential writes (1 MiB writes, then fsync) and reads (1 MiB
// reads) a large file through a sealed volume and, in the same iteration,
// through a plain os.File in the same host directory (the native
// baseline), and reports sealed throughput and the ratio
// native time / sealed time ("x-native": 1 is native speed, the goal for
// large files is at least 0.5). The page cache is warm for the reads of
// both (each reads what it has just written); the writes include fsync.
// Each runs on a volume of each format (format1: AES-256-GCM, format2:
// XChaCha20-Poly1305, what new volumes get).
func BenchmarkSequential(b *testing.B) {
	defer func(f format.Format) { newFormat = f }(newFormat)
	for _, f := range []format.Format{format.V1, format.V2} {
		newFormat = f
		for _, size := range []int{64 << 20, 256 << 20} {
			b.Run(fmt.Sprintf("format%d/write/%dMiB", f, size>>20), func(b *testing.B) { benchSequential(b, size, true) })
			b.Run(fmt.Sprintf("format%d/read/%dMiB", f, size>>20), func(b *testing.B) { benchSequential(b, size, false) })
		}
	}
}

func benchSequential(b *testing.B, size int, write bool) {
	dir := b.TempDir()
	_, root := mustOpen(b, dir, Options{})
	defer root.Close()
	buf := pattern(7, 1<<20)
	native := filepath.Join(dir, "native")
	// The same passes over a native file and a sealed one.
	fill := func(f benchFile) {
		for off := 0; off < size; off += len(buf) {
			if _, err := f.WriteAt(buf, int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	rbuf := make([]byte, 1<<20)
	drain := func(f benchFile) {
		for off := 0; off < size; off += len(rbuf) {
			if _, err := f.ReadAt(rbuf, int64(off)); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
	}
	writeNative := func() {
		f, err := os.OpenFile(native, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		fill(f)
	}
	writeSealed := func() {
		fill(openFile(b, root, "sealed", vfs.OpenOptions{Create: true, Trunc: true, Write: true, Read: true}))
	}
	readNative := func() {
		f, err := os.Open(native)
		if err != nil {
			b.Fatal(err)
		}
		drain(f)
	}
	readSealed := func() { drain(openFile(b, root, "sealed", vfs.OpenOptions{Read: true})) }
	if !write {
		writeNative()
		writeSealed()
	}
	var nativeT, sealedT time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if write {
			writeNative()
		} else {
			readNative()
		}
		mid := time.Now()
		if write {
			writeSealed()
		} else {
			readSealed()
		}
		nativeT += mid.Sub(start)
		sealedT += time.Since(mid)
	}
	report(b, nativeT, sealedT, float64(size)*float64(b.N)/(1<<20))
}

// report gives both rates and the ratio (ns/op counts both runs).
func report(b *testing.B, nativeT, sealedT time.Duration, mib float64) {
	b.ReportMetric(float64(nativeT)/float64(sealedT), "x-native")
	b.ReportMetric(mib/nativeT.Seconds(), "native-MiB/s")
	b.ReportMetric(mib/sealedT.Seconds(), "sealed-MiB/s")
}

// BenchmarkSmallFiles creates 2,000 1 KiB files, stats and reads each
// back, through a sealed volume and natively (os calls in the same
// directory), then commits (the native side syncs every file, as the
// commit does). It reports the ratio for the operations (x-native) and
// for the commit (commit-x-native).
func BenchmarkSmallFiles(b *testing.B) {
	const n = 2000
	data := pattern(8, 1024)
	var nativeT, sealedT, nativeC, sealedC time.Duration
	for range b.N {
		dir := b.TempDir()
		ndir := filepath.Join(dir, "native")
		os.Mkdir(ndir, 0o700)
		sdir := filepath.Join(dir, "sealed")
		os.Mkdir(sdir, 0o700)
		v, root := mustOpen(b, sdir, Options{})
		buf := make([]byte, 1024)

		start := time.Now()
		for i := range n {
			p := filepath.Join(ndir, fmt.Sprint(i))
			if err := os.WriteFile(p, data, 0o600); err != nil {
				b.Fatal(err)
			}
			if _, err := os.Stat(p); err != nil {
				b.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				b.Fatal(err)
			}
			f.Read(buf)
			f.Close()
		}
		mid := time.Now()
		for i := range n {
			f, _ := os.Open(filepath.Join(ndir, fmt.Sprint(i)))
			f.Sync()
			f.Close()
		}
		d, _ := os.Open(ndir)
		d.Sync()
		d.Close()
		nativeC += time.Since(mid)
		nativeT += mid.Sub(start)

		start = time.Now()
		for i := range n {
			name := fmt.Sprint(i)
			f := openFile(b, root, name, vfs.OpenOptions{Create: true, Write: true})
			if _, err := f.WriteAt(data, 0); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if _, err := root.StatAt(name, false); err != nil {
				b.Fatal(err)
			}
			f = openFile(b, root, name, vfs.OpenOptions{Read: true})
			if _, err := f.ReadAt(buf, 0); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		mid = time.Now()
		if err := root.Sync(); err != nil {
			b.Fatal(err)
		}
		sealedC += time.Since(mid)
		sealedT += mid.Sub(start)
		v.Close()
	}
	b.ReportMetric(float64(nativeT)/float64(sealedT), "x-native")
	b.ReportMetric(float64(nativeC)/float64(sealedC), "commit-x-native")
	b.ReportMetric(float64(sealedC.Milliseconds())/float64(b.N), "commit-ms")
}

// BenchmarkSyncedWrites is the SQLite pattern: 4 KiB writes at scattered
// offsets of a 4 MiB file, each followed by fsync, through a sealed
// volume (each fsync a commit: the object synced, a new manifest written,
// synced and renamed, the directory synced) and natively (pwrite, fsync).
func BenchmarkSyncedWrites(b *testing.B) {
	const writes = 100
	dir := b.TempDir()
	v, root := mustOpen(b, dir, Options{})
	defer v.Close()
	page := pattern(9, 4096)
	writeFile(b, root, "db", pattern(10, 4<<20), true)
	nf, err := os.OpenFile(filepath.Join(dir, "native"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer nf.Close()
	nf.Write(pattern(10, 4<<20))
	nf.Sync()
	sf := openFile(b, root, "db", vfs.OpenOptions{Write: true, Read: true})
	defer sf.Close()
	var nativeT, sealedT time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		for j := range writes {
			off := int64((i*writes+j)*7919%1024) * 4096
			if _, err := nf.WriteAt(page, off); err != nil {
				b.Fatal(err)
			}
			if err := nf.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		mid := time.Now()
		for j := range writes {
			off := int64((i*writes+j)*7919%1024) * 4096
			if _, err := sf.WriteAt(page, off); err != nil {
				b.Fatal(err)
			}
			if err := sf.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		nativeT += mid.Sub(start)
		sealedT += time.Since(mid)
	}
	b.ReportMetric(float64(nativeT)/float64(sealedT), "x-native")
	b.ReportMetric(float64(sealedT.Microseconds())/float64(b.N*writes), "sealed-µs/fsync")
	b.ReportMetric(float64(nativeT.Microseconds())/float64(b.N*writes), "native-µs/fsync")
}

// benchFile is what the benchmark's passes need of an *os.File and a
// vfs.File alike.
type benchFile interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	Close() error
}
