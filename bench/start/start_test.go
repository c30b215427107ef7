package start

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

func goBin() string { return filepath.Join(runtime.GOROOT(), "bin", "go") }

// build builds pkg (relative to this directory) into dir; with wasmtime
// in this build, with -tags wasmtime too (cgo as the environment says).
func build(b *testing.B, dir, pkg, name string, native bool) string {
	out := filepath.Join(dir, name)
	args := []string{"build", "-trimpath", "-o", out}
	if keep.CheckEngine("wasmtime") == nil {
		args = append(args, "-tags", "wasmtime")
	}
	cmd := exec.Command(goBin(), append(args, pkg)...)
	if native {
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", pkg, err, o)
	}
	return out
}

type variant struct {
	name string
	cmd  []string
	env  []string
	ms   []float64
	// cpu is user+system time of the process and its children.
	cpu []float64
}

// BenchmarkStartHello measures the process wall time of Go's 2.6 MB hello
// (keep/testdata/hello) from fork to exit, caches warm, each variant once
// per round, b.N rounds (use -benchtime 20x), and reports each variant's
// median and the same-run comparisons the engine work is judged by:
//
//	nil-<engine>/plain-<engine>        enarx on nil against a minimal runner of that engine
//	sandbox-<engine>-minus-nil-ms      what the sandbox adds to a start
//
// Variants: native (the program built for this machine), enarx --version
// (the process floor), plain-wazero and plain-wasmtime (testdata/), and
// enarx run on nil and sandbox with each engine.
func BenchmarkStartHello(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark")
	}
	dir := b.TempDir()
	wasm := testutil.BuildWasm(b, "../../keep/testdata/hello")
	enarx := build(b, dir, "../../cmd/enarx", "enarx", false)
	native := build(b, dir, "../../keep/testdata/hello", "hello", true)
	cache := filepath.Join(dir, "cache")
	vs := []*variant{
		{name: "native", cmd: []string{native}},
		{name: "enarx-version", cmd: []string{enarx, "--version"}},
		{name: "plain-wazero", cmd: []string{build(b, dir, "./testdata/plainwazero", "plainwazero", false), wasm}, env: []string{"CACHE=" + filepath.Join(dir, "wz")}},
	}
	if keep.CheckEngine("wasmtime") == nil {
		vs = append(vs, &variant{name: "plain-wasmtime", cmd: []string{build(b, dir, "./testdata/plainwasmtime", "plainwasmtime", false), wasm},
			env: []string{"CACHE=" + filepath.Join(dir, "wt")}})
	}
	os.MkdirAll(filepath.Join(dir, "wz"), 0o700)
	os.MkdirAll(filepath.Join(dir, "wt"), 0o700)
	for _, be := range []string{"nil", "sandbox"} {
		for _, eng := range keep.Engines() {
			vs = append(vs, &variant{name: be + "-" + eng,
				cmd: []string{enarx, "run", "--backend", be, "--engine", eng, "--cache-dir", cache, wasm}})
		}
	}
	med := measure(b, vs, "Hello, world!")
	for _, eng := range keep.Engines() {
		if p, ok := med["plain-"+eng]; ok {
			b.ReportMetric(med["nil-"+eng]/p, "nil-"+eng+"/plain-"+eng)
		}
		if s, ok := med["sandbox-"+eng]; ok {
			b.ReportMetric(s-med["nil-"+eng], "sandbox-"+eng+"-minus-nil-ms")
		}
	}
}

// measure runs every variant once to warm caches (leaving out the
// sandbox where it cannot run), then b.N rounds of each variant once in
// a rotating order, reports each variant's median wall time and median
// CPU time (user+system) in ms and returns the medians (CPU time under
// "<name>-cpu"). The CPU time is the process's and its waited-for
// children's: a sandbox host does not wait for its Keep process once the
// Keep has answered, so a sandbox variant's is the host's alone. Every run's output must contain want (but
// enarx-version's).
func measure(b *testing.B, vs []*variant, want string) map[string]float64 {
	try := func(v *variant) error {
		cmd := exec.Command(v.cmd[0], v.cmd[1:]...)
		cmd.Env = append(os.Environ(), v.env...)
		out, err := cmd.CombinedOutput()
		if err == nil && v.name != "enarx-version" && !strings.Contains(string(out), want) {
			err = errors.New(string(out))
		}
		return err
	}
	run := func(v *variant) (wall, cpu time.Duration) {
		cmd := exec.Command(v.cmd[0], v.cmd[1:]...)
		cmd.Env = append(os.Environ(), v.env...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		s := time.Now()
		err := cmd.Run()
		d := time.Since(s)
		if err != nil || (v.name != "enarx-version" && !strings.Contains(out.String(), want)) {
			b.Fatalf("%s: %v\n%s", v.name, err, out.String())
		}
		return d, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	// Warm up (fill every cache); leave out the sandbox where it cannot run.
	vs = slices.DeleteFunc(vs, func(v *variant) bool {
		if err := try(v); err != nil && strings.HasPrefix(v.name, "sandbox-") {
			b.Logf("no sandbox here, left out: %v", err)
			return true
		}
		return false
	})
	for _, v := range vs {
		run(v)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range vs {
			v := vs[(i+j)%len(vs)] // rotate the order between rounds
			wall, cpu := run(v)
			v.ms = append(v.ms, float64(wall.Microseconds())/1000)
			v.cpu = append(v.cpu, float64(cpu.Microseconds())/1000)
		}
	}
	b.StopTimer()
	med := map[string]float64{}
	for _, v := range vs {
		slices.Sort(v.ms)
		slices.Sort(v.cpu)
		med[v.name] = v.ms[len(v.ms)/2]
		med[v.name+"-cpu"] = v.cpu[len(v.cpu)/2]
		b.ReportMetric(med[v.name], v.name+"-ms")
		b.ReportMetric(med[v.name+"-cpu"], v.name+"-cpu-ms")
	}
	return med
}

// BenchmarkComputeCLI measures the process wall time of the CPU-bound
// workloads (keep/testdata: nbody, 5M steps; sieve to 5·10⁷) run as a
// user runs them, `enarx run --backend nil` with each engine,
// against the same program natively and under the minimal wasmtime-go
// runner (testdata/plainwasmtime: wasmtime's defaults, no epochs), caches
// warm, each variant once per round, b.N rounds (use -benchtime 5x), and
// reports medians and, per workload, for wall time and (-cpu) for the user
// and system CPU time of the process (steadier than wall time on a shared
// machine):
//
//	nil-<engine>/plain-wasmtime   the goal: wasmtime engine ≤ 1.1× plain wasmtime
//	nil-<engine>/native           a Keep within 1.5× of native
//
// enarx's nil backend from the command line runs the Keep without
// in-process interruption (cli.EndsProcess), as the sandbox does, so its
// compute is the sandbox's (the sandbox adds only its start).
func BenchmarkComputeCLI(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark")
	}
	dir := b.TempDir()
	enarx := build(b, dir, "../../cmd/enarx", "enarx", false)
	var plain string
	if keep.CheckEngine("wasmtime") == nil {
		plain = build(b, dir, "./testdata/plainwasmtime", "plainwasmtime", false)
		os.MkdirAll(filepath.Join(dir, "wt"), 0o700)
	}
	cache := filepath.Join(dir, "cache")
	for _, w := range []struct{ name, want string }{{"nbody", "-0.169083134"}, {"sieve", "3001134"}} {
		b.Run(w.name, func(b *testing.B) {
			wasm := testutil.BuildWasm(b, "../../keep/testdata/"+w.name)
			vs := []*variant{{name: "native", cmd: []string{build(b, dir, "../../keep/testdata/"+w.name, w.name, true)}}}
			if plain != "" {
				vs = append(vs, &variant{name: "plain-wasmtime", cmd: []string{plain, wasm}, env: []string{"CACHE=" + filepath.Join(dir, "wt")}})
			}
			for _, eng := range keep.Engines() {
				vs = append(vs, &variant{name: "nil-" + eng,
					cmd: []string{enarx, "run", "--backend", "nil", "--engine", eng, "--cache-dir", cache, wasm}})
			}
			med := measure(b, vs, w.want)
			for _, eng := range keep.Engines() {
				for _, m := range []string{"", "-cpu"} {
					k := med["nil-"+eng+m]
					b.ReportMetric(k/med["native"+m], "nil-"+eng+m+"/native")
					if p, ok := med["plain-wasmtime"+m]; ok {
						b.ReportMetric(k/p, "nil-"+eng+m+"/plain-wasmtime")
					}
				}
			}
		})
	}
}
