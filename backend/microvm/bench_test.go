package microvm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/backendtest"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
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

// BenchmarkDirsOverChannel is fsbench (sequential 1 MiB writes with fsync
// and reads of 64 MiB, 1,000 small files created, stat'ed and read) in a
// host directory of a Keep reached through the channel (in process, over
// a socketpair: the protocol's own cost, without a VM) against the same
// workload on nil, alternating in one run, each on a fresh directory.
// fsbench times its file I/O with its own clock, so compilation is not in
// the figures (it compiles without a cache each run). The page cache is
// warm for reads (they follow the writes). Ratios are channel/nil
// throughput: above 1 is faster.
func BenchmarkDirsOverChannel(b *testing.B) {
	wasm, err := os.ReadFile(testutil.BuildWasm(b, "../../keep/testdata/fsbench"))
	if err != nil {
		b.Fatal(err)
	}
	figures := func(be backend.Backend) map[string]float64 {
		dir := b.TempDir()
		cfg := dirCfg("source = \"host\"\nhost_path = \"" + dir + "\"\n")
		r := backendtest.Run(b, be, keep.Workload{Wasm: wasm, Config: []byte(cfg)}, nil,
			keep.Options{Args: []string{"/data", "write:64", "read", "small:1000"}, NoCache: true})
		if r.Code != 0 {
			b.Fatalf("%s: %d %s %s", be.Name(), r.Code, r.Err, r.Stderr)
		}
		out := map[string]float64{}
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			var op string
			var ns float64
			if _, err := fmt.Sscanf(line, "%s ns=%g", &op, &ns); err == nil {
				out[strings.SplitN(op, ":", 2)[0]] += ns
			}
		}
		return out
	}
	sum := map[string][2]float64{}
	for range b.N {
		for i, be := range []backend.Backend{backend.Nil{}, inProcess{}} {
			for op, ns := range figures(be) {
				s := sum[op]
				s[i] += ns
				sum[op] = s
			}
		}
	}
	for op, s := range sum {
		b.ReportMetric(s[0]/s[1], op+"-channel/nil")
		b.ReportMetric(s[1]/1e6/float64(b.N), op+"-channel-ms")
	}
}
