package keep_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// BenchmarkStorage runs the fsbench workload (keep/testdata/fsbench: a
// 256 MiB file written in 1 MiB writes and fsync'ed, read back in 1 MiB
// reads, then 10,000 1 KiB files created, statted and read) in a Keep on
// each engine and each dir source, and the same program built natively on
// a directory of the same disk, alternating, in the same iteration. The
// program times its own I/O (Keep start is not counted). Each sub-benchmark
// reports, per operation, "OP-x" = native time / Keep time (throughput
// relative to native: higher is better; goals: host ≥ 0.8, sealed ≥ 0.5 for
// the large file, memory above host) from the fastest of b.N runs of each.
// For the native program and the host and sealed Keeps alike, "coldread"
// reads the file after its pages were dropped from the page cache (by a
// separate run: the program writes, the harness drops, the program reads),
// "read" reads it again with the cache warm; writes end with fsync. A
// memory directory has no cold read.
//
//	go test -run '^$' -bench Storage -benchtime 3x ./keep/
//
// ENARX_BENCH_STORAGE_MIB changes the file size (default 256).
func BenchmarkStorage(b *testing.B) {
	if testing.Short() {
		b.Skip("-short")
	}
	mib := 256
	if v := os.Getenv("ENARX_BENCH_STORAGE_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		mib = n
	}
	ops := []string{fmt.Sprintf("write:%d", mib), "read", "small:10000"}
	wasm, err := os.ReadFile(testutil.BuildWasm(b, "testdata/fsbench"))
	if err != nil {
		b.Fatal(err)
	}
	native := filepath.Join(b.TempDir(), "fsbench")
	build := exec.Command("go", "build", "-trimpath", "-o", native, ".")
	build.Dir = "testdata/fsbench"
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building fsbench natively: %v\n%s", err, out)
	}
	// The Keep's host directories and the native program's directory are
	// on the same file system (the test's temporary directory).
	scratch := b.TempDir()
	keyFile := filepath.Join(scratch, "volume.key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte{0x5a}, 32), 0o600); err != nil {
		b.Fatal(err)
	}
	spec := "file:" + keyFile
	sources := []struct{ name, fields string }{
		{"memory", fmt.Sprintf("source = \"memory\"\nsize = \"%dMiB\"\n", mib+64)},
		{"host", "source = \"host\"\nhost_path = \"%s\"\n"},
		{"sealed", "source = \"sealed\"\nhost_path = \"%s\"\nkey = \"" + spec + "\"\n"},
	}
	for _, eng := range keep.Engines() {
		for _, src := range sources {
			b.Run(eng+"/"+src.name, func(b *testing.B) {
				bestKeep := map[string]int64{}
				bestNative := map[string]int64{}
				for i := 0; i < b.N; i++ {
					dir, err := os.MkdirTemp(scratch, "native-")
					if err != nil {
						b.Fatal(err)
					}
					for _, step := range storageSteps(src.name, ops) {
						if step.cold {
							dropCache(b, dir)
						}
						out, err := exec.Command(native, append([]string{dir}, step.ops...)...).Output()
						if err != nil {
							b.Fatalf("native fsbench: %v", err)
						}
						keepBest(b, bestNative, string(out), step.cold)
					}
					os.RemoveAll(dir)

					host, err := os.MkdirTemp(scratch, "keep-")
					if err != nil {
						b.Fatal(err)
					}
					fields := src.fields
					if strings.Contains(fields, "%s") {
						fields = fmt.Sprintf(fields, host)
					}
					for _, step := range storageSteps(src.name, ops) {
						if step.cold {
							dropCache(b, host)
						}
						o := keep.Options{Engine: eng, Args: append([]string{"/data"}, step.ops...), CacheDir: cacheDir,
							VolumeKeys: map[string][]byte{spec: bytes.Repeat([]byte{0x5a}, 32)}}
						r := runOpts(b, keep.Workload{Wasm: wasm}, dirConfig(fields), nil, o)
						if r.err != nil || r.code != 0 {
							b.Fatalf("Keep fsbench: code %d, %v\n%s", r.code, r.err, r.stdout)
						}
						keepBest(b, bestKeep, r.stdout, step.cold)
					}
					os.RemoveAll(host)
				}
				for _, op := range []string{"write", "coldread", "read", "small"} {
					if bestKeep[op] == 0 {
						continue
					}
					b.ReportMetric(float64(bestNative[op])/float64(bestKeep[op]), op+"-x")
					b.ReportMetric(float64(bestKeep[op])/1e6, op+"-keep-ms")
					b.ReportMetric(float64(bestNative[op])/1e6, op+"-native-ms")
				}
			})
		}
	}
}

// storageStep is one run of fsbench: its operations, and whether the
// page cache holds none of the directory's files when it starts.
type storageStep struct {
	ops  []string
	cold bool
}

// storageSteps splits ops (write, read, small) into runs. A memory
// directory lives only as long as its Keep, so it is one run (its reads
// are of Keep memory); for a directory on disk, and for the native
// program alike, the write is one run, a read with the page cache dropped
// ("coldread") the next, and the warm read and the small files the last.
func storageSteps(source string, ops []string) []storageStep {
	if source == "memory" {
		return []storageStep{{ops: ops}}
	}
	return []storageStep{{ops: ops[:1]}, {ops: []string{"read"}, cold: true}, {ops: ops[1:]}}
}

// dropCache evicts every file under dir from the page cache
// (posix_fadvise DONTNEED; the files were fsync'ed, so their pages are
// clean and go).
func dropCache(b *testing.B, dir string) {
	b.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
	if err != nil {
		b.Fatalf("dropping the page cache of %s: %v", dir, err)
	}
}

// keepBest records, per operation, the smallest "OP ns=N" of out; a read
// of a cold step is recorded as "coldread".
func keepBest(b *testing.B, best map[string]int64, out string, cold bool) {
	b.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		op, ns, ok := strings.Cut(line, " ns=")
		v, err := strconv.ParseInt(ns, 10, 64)
		if !ok || err != nil || v <= 0 {
			b.Fatalf("fsbench printed %q", line)
		}
		if cold && op == "read" {
			op = "coldread"
		}
		if old, seen := best[op]; !seen || v < old {
			best[op] = v
		}
		n++
	}
	if n == 0 {
		b.Fatalf("fsbench printed no result: %q", out)
	}
}
