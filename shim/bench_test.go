package shim_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

// BenchmarkHello compares the wall time of a hello Keep started through
// containerd and the shim (`ctr run --rm`: container and snapshot
// creation, shim start, keep host, Keep, teardown) with the baseline of the
// same module under `enarx run`, measured in the same run, alternately, on
// each backend. Caches are warm: each command runs once, untimed, first
// (the compilation cache and the page cache). ns/op is the sum of both;
// ctr/enarx is the ratio.
func BenchmarkHello(b *testing.B) {
	d := startContainerd(b)
	img := d.importImage(workloadWasm(b), "")
	wasmPath := testutil.BuildWasm(b, "testdata/workload")
	bin := b.TempDir()
	build := exec.Command(goBin(), "build", "-o", bin, "../cmd/enarx")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building enarx: %v\n%s", err, out)
	}
	for _, be := range backends {
		b.Run(be, func(b *testing.B) {
			ctrArgs := append(d.runArgs(be, img, "bench-"+be), "/main.wasm", "hello")
			cache := filepath.Join(os.TempDir(), "enarx-shim-test-cache")
			enarx := func() {
				out, err := exec.Command(filepath.Join(bin, "enarx"), "run", "--backend", be, "--cache-dir", cache, wasmPath, "--", "hello").CombinedOutput()
				if err != nil || !strings.Contains(string(out), "Hello from a Keep") {
					b.Fatalf("enarx run: %v\n%s", err, out)
				}
			}
			ctr := func() {
				if out := d.mustCtr(b, ctrArgs...); !strings.Contains(out, "Hello from a Keep") {
					b.Fatalf("ctr run: %s", out)
				}
			}
			enarx()
			ctr()
			var tEnarx, tCtr time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				enarx()
				t1 := time.Now()
				ctr()
				tEnarx += t1.Sub(t0)
				tCtr += time.Since(t1)
			}
			b.ReportMetric(float64(tCtr.Milliseconds())/float64(b.N), "ctr-ms/op")
			b.ReportMetric(float64(tEnarx.Milliseconds())/float64(b.N), "enarx-ms/op")
			b.ReportMetric(float64(tCtr)/float64(tEnarx), "ctr/enarx")
		})
	}
}
