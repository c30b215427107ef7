package hostfs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// TestNoAllocs: the read and write paths allocate nothing.
func TestNoAllocs(t *testing.T) {
	e := newEnv(t, false, nil)
	f := open(t, e.d, "f", excl).(vfs.File)
	defer f.Close()
	buf := make([]byte, 4096)
	for name, fn := range map[string]func(){
		"Write":   func() { f.Write(buf, false) },
		"WriteAt": func() { f.WriteAt(buf, 0) },
		"Read":    func() { f.Seek(0, io.SeekStart); f.Read(buf, false) },
		"ReadAt":  func() { f.ReadAt(buf, 0) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations per call", name, n)
		}
	}
}

const (
	seqSize   = 256 << 20
	seqChunk  = 64 << 10
	smallN    = 10000
	smallSize = 1024
)

// BenchmarkStorage measures the issue 12 storage figures at this layer:
// sequential write and read of 256 MiB in 64 KiB calls, and 10,000 small
// files (1 KiB) created, statted and read, through hostfs and natively
// on the same disk in the same iteration. Native is what a C program
// does: plain system calls (openat, read, write, fstatat, close) with the
// same relative paths from a directory descriptor, no Go os.File. It
// reports each side's time and ratio = native time / hostfs time (the
// goal is >= 0.8). Caches are warm: the page cache holds the data (no
// fsync; reads follow the writes), so the figures are CPU and syscall
// costs, not the disk's.
func BenchmarkStorage(b *testing.B) {
	base := b.TempDir()
	nativeDir := filepath.Join(base, "native")
	hostDir := filepath.Join(base, "host")
	for _, p := range []string{nativeDir, hostDir} {
		if err := os.Mkdir(p, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	hf, err := os.Open(hostDir)
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(hf, false)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	buf := make([]byte, seqChunk)
	for i := range buf {
		buf[i] = byte(i)
	}

	// run times native and host in each iteration, alternating which
	// goes first; seq numbers the runs across b.N rounds.
	seq := 0
	run := func(b *testing.B, native, host func(i int) error) {
		var tn, th time.Duration
		timed := func(fn func(int) error) time.Duration {
			t0 := time.Now()
			if err := fn(seq); err != nil {
				b.Fatal(err)
			}
			return time.Since(t0)
		}
		for i := 0; i < b.N; i++ {
			seq++
			if i%2 == 0 {
				tn += timed(native)
				th += timed(host)
			} else {
				th += timed(host)
				tn += timed(native)
			}
		}
		b.ReportMetric(float64(tn.Nanoseconds())/float64(b.N), "native-ns/op")
		b.ReportMetric(float64(th.Nanoseconds())/float64(b.N), "hostfs-ns/op")
		b.ReportMetric(float64(tn)/float64(th), "ratio")
	}

	ndfd, err := unix.Open(nativeDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(ndfd)
	nwrite := func(fd int, p []byte) error {
		for len(p) > 0 {
			n, err := unix.Write(fd, p)
			if err != nil {
				return err
			}
			p = p[n:]
		}
		return nil
	}

	b.Run("seq-write-256MiB", func(b *testing.B) {
		b.SetBytes(seqSize)
		run(b, func(int) error {
			fd, err := unix.Openat(ndfd, "big", unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o644)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			for n := 0; n < seqSize; n += seqChunk {
				if err := nwrite(fd, buf); err != nil {
					return err
				}
			}
			return nil
		}, func(int) error {
			f, err := d.Open("big", vfs.OpenOptions{Read: true, Write: true, Create: true, Trunc: true, Follow: true})
			if err != nil {
				return err
			}
			defer f.Close()
			w := f.(vfs.File)
			for n := 0; n < seqSize; n += seqChunk {
				if _, err := w.Write(buf, false); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("seq-read-256MiB", func(b *testing.B) {
		b.SetBytes(seqSize)
		run(b, func(int) error {
			fd, err := unix.Openat(ndfd, "big", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			total := 0
			for {
				n, err := unix.Read(fd, buf)
				if err != nil {
					return err
				}
				if n == 0 {
					break
				}
				total += n
			}
			if total != seqSize {
				return fmt.Errorf("native read %d bytes", total)
			}
			return nil
		}, func(int) error {
			f, err := d.Open("big", rd)
			if err != nil {
				return err
			}
			defer f.Close()
			r := f.(vfs.File)
			total := 0
			for {
				n, err := r.Read(buf, false)
				total += n
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
			}
			if total != seqSize {
				return fmt.Errorf("hostfs read %d bytes", total)
			}
			return nil
		})
	})
	b.Run("small-files-10000", func(b *testing.B) {
		small := buf[:smallSize]
		run(b, func(i int) error {
			dir := fmt.Sprintf("small%d", i)
			if err := unix.Mkdirat(ndfd, dir, 0o755); err != nil {
				return err
			}
			names := make([]string, smallN)
			for j := range names {
				names[j] = fmt.Sprintf("%s/f%05d", dir, j)
			}
			for _, p := range names {
				fd, err := unix.Openat(ndfd, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
				if err != nil {
					return err
				}
				err = nwrite(fd, small)
				unix.Close(fd)
				if err != nil {
					return err
				}
			}
			var st unix.Stat_t
			for _, p := range names {
				if err := unix.Fstatat(ndfd, p, &st, 0); err != nil {
					return err
				}
			}
			for _, p := range names {
				fd, err := unix.Openat(ndfd, p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				_, err = unix.Read(fd, small)
				unix.Close(fd)
				if err != nil {
					return err
				}
			}
			return nil
		}, func(i int) error {
			dir := fmt.Sprintf("small%d", i)
			if err := d.Mkdir(dir); err != nil {
				return err
			}
			names := make([]string, smallN)
			for j := range names {
				names[j] = fmt.Sprintf("%s/f%05d", dir, j)
			}
			for _, p := range names {
				f, err := d.Open(p, excl)
				if err != nil {
					return err
				}
				_, err = f.(vfs.File).Write(small, false)
				f.Close()
				if err != nil {
					return err
				}
			}
			for _, p := range names {
				if _, err := d.StatAt(p, true); err != nil {
					return err
				}
			}
			for _, p := range names {
				f, err := d.Open(p, rd)
				if err != nil {
					return err
				}
				_, err = f.(vfs.File).Read(small, false)
				f.Close()
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
}
