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
	// small-files: each phase (create, stat, read) timed on its own, the
	// two sides interleaved phase by phase, a fresh subdirectory per round.
	b.Run("small-files-10000", func(b *testing.B) {
		small := buf[:smallSize]
		names := make([]string, smallN)
		var tn, th [3]time.Duration
		all := func(fn func(p string) error) time.Duration {
			t0 := time.Now()
			for _, p := range names {
				if err := fn(p); err != nil {
					b.Fatal(err)
				}
			}
			return time.Since(t0)
		}
		phase := func(k int, native, host func(p string) error) {
			if seq%2 == 0 {
				tn[k] += all(native)
				th[k] += all(host)
			} else {
				th[k] += all(host)
				tn[k] += all(native)
			}
		}
		var st unix.Stat_t
		for i := 0; i < b.N; i++ {
			seq++
			dir := fmt.Sprintf("small%d", seq)
			if err := unix.Mkdirat(ndfd, dir, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := d.Mkdir(dir); err != nil {
				b.Fatal(err)
			}
			for j := range names {
				names[j] = fmt.Sprintf("%s/f%05d", dir, j)
			}
			phase(0, func(p string) error {
				fd, err := unix.Openat(ndfd, p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
				if err != nil {
					return err
				}
				err = nwrite(fd, small)
				unix.Close(fd)
				return err
			}, func(p string) error {
				f, err := d.Open(p, excl)
				if err != nil {
					return err
				}
				_, err = f.(vfs.File).Write(small, false)
				f.Close()
				return err
			})
			phase(1, func(p string) error {
				return unix.Fstatat(ndfd, p, &st, 0)
			}, func(p string) error {
				_, err := d.StatAt(p, true)
				return err
			})
			phase(2, func(p string) error {
				fd, err := unix.Openat(ndfd, p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				_, err = unix.Read(fd, small)
				unix.Close(fd)
				return err
			}, func(p string) error {
				f, err := d.Open(p, rd)
				if err != nil {
					return err
				}
				_, err = f.(vfs.File).Read(small, false)
				f.Close()
				return err
			})
		}
		var sn, sh time.Duration
		for k, name := range []string{"create", "stat", "read"} {
			b.ReportMetric(float64(tn[k])/float64(th[k]), name+"-ratio")
			sn += tn[k]
			sh += th[k]
		}
		b.ReportMetric(float64(sn.Nanoseconds())/float64(b.N), "native-ns/op")
		b.ReportMetric(float64(sh.Nanoseconds())/float64(b.N), "hostfs-ns/op")
		b.ReportMetric(float64(sn)/float64(sh), "ratio")
	})
}
