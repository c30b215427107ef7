package microvm

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
)

// timedRun runs the enarx binary and returns the time to the first byte of
// its stdout and to its exit (process wall time, as a user sees it).
func timedRun(b *testing.B, env []string, args ...string) (first, total time.Duration) {
	b.Helper()
	cmd := exec.Command(vmSetup.enarx, args...)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(out, buf); err != nil {
		cmd.Wait()
		b.Fatalf("no output: %v\n%s", err, stderr.String())
	}
	first = time.Since(start)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%v: %v\n%s", args, err, stderr.String())
	}
	return first, time.Since(start)
}

// BenchmarkVMHello is the hello example in a microVM Keep under TCG (no
// KVM here), by process wall time, against the same binary on the nil
// backend, alternating in one run. Warm: the Keep image is in the page
// cache and the module's compiled code is in the compilation cache (the
// first, unmeasured run fills it). It reports the time to the first byte
// of output (boot + workload transfer + start) and to the exit, in
// seconds, and the ratio of the totals.
func BenchmarkVMHello(b *testing.B) {
	env := vmEnv(b)
	cache := b.TempDir()
	env = append(env, "XDG_CACHE_HOME="+cache)
	hello := testutil.BuildWasm(b, "../../examples/hello")
	vm := []string{"run", "--backend", "kvm", hello}
	nilArgs := []string{"run", "--backend", "nil", hello}
	timedRun(b, env, vm...) // fills the compilation cache
	timedRun(b, env, nilArgs...)
	var vmFirst, vmTotal, nilTotal time.Duration
	b.ResetTimer()
	for range b.N {
		f, t := timedRun(b, env, vm...)
		vmFirst += f
		vmTotal += t
		_, t = timedRun(b, env, nilArgs...)
		nilTotal += t
	}
	n := float64(b.N)
	b.ReportMetric(vmFirst.Seconds()/n, "first-output-s")
	b.ReportMetric(vmTotal.Seconds()/n, "hello-s")
	b.ReportMetric(nilTotal.Seconds()/n, "nil-hello-s")
	b.ReportMetric(vmTotal.Seconds()/nilTotal.Seconds(), "vm/nil")
}

// BenchmarkVMHelloCold is BenchmarkVMHello with an empty compilation cache
// each time: the Keep compiles the 2.6 MB module itself, under TCG.
func BenchmarkVMHelloCold(b *testing.B) {
	env := vmEnv(b)
	hello := testutil.BuildWasm(b, "../../examples/hello")
	var total time.Duration
	for i := range b.N {
		cache := filepath.Join(b.TempDir(), strings.Repeat("c", i+1))
		os.MkdirAll(cache, 0o700)
		_, t := timedRun(b, append(append([]string(nil), env...), "XDG_CACHE_HOME="+cache), "run", "--backend", "kvm", hello)
		total += t
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "hello-s")
}
