package memfs_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

const (
	seqSize  = 256 << 20
	seqChunk = 64 << 10
)

// BenchmarkSeqWrite writes 256 MiB in 64 KiB writes to a new memfs file
// and, in the same iteration, copies the same chunks into two baselines:
// a freshly made 256 MiB []byte (the allocation and first touch a memory
// file cannot avoid either) and a []byte allocated and touched once
// before the loop (a pure copy, warm), and writes them to a new file in
// the host's temporary directory (os, page cache, no fsync: what a host
// directory costs). It reports MB/s of each and memfs time over each
// baseline's (x-fresh, x-warm, x-host).
func BenchmarkSeqWrite(b *testing.B) {
	chunk := make([]byte, seqChunk)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	warm := make([]byte, seqSize)
	for i := range warm {
		warm[i] = 1
	}
	var fresh, hot, host, mem time.Duration
	dir := b.TempDir()
	n := 0
	for b.Loop() {
		n++
		start := time.Now()
		hf, err := os.Create(filepath.Join(dir, "f"))
		if err != nil {
			b.Fatal(err)
		}
		for off := 0; off < seqSize; off += seqChunk {
			if _, err := hf.Write(chunk); err != nil {
				b.Fatal(err)
			}
		}
		hf.Close()
		host += time.Since(start)
		os.Remove(hf.Name())

		start = time.Now()
		buf := make([]byte, seqSize)
		for off := 0; off < seqSize; off += seqChunk {
			copy(buf[off:], chunk)
		}
		fresh += time.Since(start)
		buf = nil

		start = time.Now()
		for off := 0; off < seqSize; off += seqChunk {
			copy(warm[off:], chunk)
		}
		hot += time.Since(start)

		start = time.Now()
		fs := newFS(b, seqSize+1<<20)
		f := open(b, fs.Root(), "f")
		for off := 0; off < seqSize; off += seqChunk {
			if _, err := f.Write(chunk, false); err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		mem += time.Since(start)
	}
	mbps := func(d time.Duration) float64 { return float64(n) * seqSize / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(mem), "memfs-MB/s")
	b.ReportMetric(mbps(fresh), "fresh-MB/s")
	b.ReportMetric(mbps(hot), "warm-MB/s")
	b.ReportMetric(mbps(host), "host-MB/s")
	b.ReportMetric(float64(mem)/float64(host), "x-host")
	b.ReportMetric(float64(mem)/float64(fresh), "x-fresh")
	b.ReportMetric(float64(mem)/float64(hot), "x-warm")
}

// BenchmarkSeqRead reads a 256 MiB memfs file in 64 KiB reads, against
// copying the same bytes out of a warm []byte in the same run
// (x-baseline).
func BenchmarkSeqRead(b *testing.B) {
	chunk := make([]byte, seqChunk)
	fs := newFS(b, seqSize+1<<20)
	f := open(b, fs.Root(), "f")
	defer f.Close()
	for off := 0; off < seqSize; off += seqChunk {
		f.Write(chunk, false)
	}
	buf := make([]byte, seqSize)
	for i := range buf {
		buf[i] = 1
	}
	var base, mem time.Duration
	n := 0
	for b.Loop() {
		n++
		start := time.Now()
		for off := 0; off < seqSize; off += seqChunk {
			copy(chunk, buf[off:])
		}
		base += time.Since(start)

		start = time.Now()
		f.Seek(0, io.SeekStart)
		for {
			n, err := f.Read(chunk, false)
			if err == io.EOF {
				break
			}
			if err != nil || n != seqChunk {
				b.Fatal(n, err)
			}
		}
		mem += time.Since(start)
	}
	b.ReportMetric(float64(n)*seqSize/1e6/mem.Seconds(), "memfs-MB/s")
	b.ReportMetric(float64(n)*seqSize/1e6/base.Seconds(), "copy-MB/s")
	b.ReportMetric(float64(mem)/float64(base), "x-baseline")
}

// BenchmarkSmallFiles creates, writes (1 KiB), stats and reads back
// 10,000 files in one directory of a memfs and, in the same iteration, of
// a host directory (os package, t.TempDir: the host's /tmp); it reports
// memfs-time/host-time as x-host.
func BenchmarkSmallFiles(b *testing.B) {
	const files = 10000
	data := make([]byte, 1024)
	buf := make([]byte, 1024)
	var host, mem time.Duration
	for b.Loop() {
		dir := b.TempDir()
		start := time.Now()
		for i := 0; i < files; i++ {
			p := filepath.Join(dir, fmt.Sprintf("f%05d", i))
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
			if _, err := f.Read(buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		host += time.Since(start)
		os.RemoveAll(dir)

		start = time.Now()
		root := newFS(b, 64<<20).Root()
		for i := 0; i < files; i++ {
			name := fmt.Sprintf("f%05d", i)
			h, err := root.Open(name, vfs.OpenOptions{Write: true, Create: true, Trunc: true})
			if err != nil {
				b.Fatal(err)
			}
			h.(vfs.File).Write(data, false)
			h.Close()
			if _, err := root.StatAt(name, true); err != nil {
				b.Fatal(err)
			}
			h, err = root.Open(name, vfs.OpenOptions{Read: true})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.(vfs.File).Read(buf, false); err != nil {
				b.Fatal(err)
			}
			h.Close()
		}
		mem += time.Since(start)
	}
	b.ReportMetric(float64(mem)/float64(host), "x-host")
}
