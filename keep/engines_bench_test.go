package keep_test

// Engine benchmarks: each workload in a Keep on every engine of this build
// against the same Go program built natively and, in builds with -tags
// wasmtime, against plain wasmtime-go (its own WASI, its own cache), each
// pair alternating in the same run (compare). All caches are warm: every
// pair runs both sides once before timing. Run:
//
//	go test -tags wasmtime -run '^$' -bench Engine -benchtime 3x ./keep/
//
// Sub-benchmark names say what is compared with what, e.g.
// BenchmarkEngineCompute/nbody/wasmtime-vs-native reports ratio = fastest
// Keep (wasmtime) time / fastest native time.

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/keep/internal/engine"
)

var (
	nativeMu    sync.Mutex
	nativeBuilt = map[string]string{}
)

// buildNative builds the Go program in dir for this machine, once per test
// process.
func buildNative(b testing.TB, dir string) string {
	nativeMu.Lock()
	defer nativeMu.Unlock()
	if p, ok := nativeBuilt[dir]; ok {
		return p
	}
	out, err := os.MkdirTemp("", "enarx-native-")
	if err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(out, filepath.Base(dir))
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", p, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building %s natively: %v\n%s", dir, err, o)
	}
	nativeBuilt[dir] = p
	return p
}

// runNative runs a native program with stdin/stdout (nil: none) and extra
// descriptors from fd 3 on.
func runNative(b testing.TB, bin string, stdin io.Reader, stdout io.Writer, extra []*os.File, env []string, args ...string) {
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, os.Stderr
	cmd.ExtraFiles = extra
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Run(); err != nil {
		b.Fatalf("native %s: %v", filepath.Base(bin), err)
	}
}

// keepRunKilled runs wasm on wasmtime as the sandbox's Keep does
// (Options.Killed: no epoch checks).
func keepRunKilled(b *testing.B, wasm []byte, cacheDir string, out *os.File, args ...string) {
	code, err := keep.Run(context.Background(), keep.Workload{Wasm: wasm}, keep.Options{
		Files: []*os.File{os.Stdin, out, os.Stderr}, Args: args, CacheDir: cacheDir, Engine: "wasmtime", Killed: true,
	})
	if err != nil || code != 0 {
		b.Fatalf("keep: %d %v", code, err)
	}
}

// computeCases are the CPU-bound workloads: float64 (nbody, 5M steps),
// integers over a 50 MB array (sieve to 5·10⁷), SHA-256 of 256 MiB
// generated in memory.
var computeCases = []struct {
	name string
	args []string
}{
	{"nbody", nil},
	{"sieve", nil},
	{"sha", []string{"256"}},
}

// BenchmarkEngineCompute: each workload in a Keep per engine against
// native Go, and the Keep on wasmtime against plain wasmtime-go.
func BenchmarkEngineCompute(b *testing.B) {
	for _, c := range computeCases {
		wasm := workload(b, c.name)
		native := buildNative(b, "testdata/"+c.name)
		null := devNull(b)
		for _, eng := range engine.Names() {
			b.Run(c.name+"/"+eng+"-vs-native", func(b *testing.B) {
				kc := b.TempDir()
				compare(b,
					func() { keepRunOn(b, eng, wasm, kc, false, null, c.args...) },
					func() { runNative(b, native, nil, null, nil, nil, c.args...) })
			})
		}
		b.Run(c.name+"/wasmtime-killed-vs-native", func(b *testing.B) {
			if engine.Check("wasmtime") != nil {
				b.Skip("needs a build with cgo and -tags wasmtime")
			}
			kc := b.TempDir()
			compare(b,
				func() { keepRunKilled(b, wasm, kc, null, c.args...) },
				func() { runNative(b, native, nil, null, nil, nil, c.args...) })
		})
		for _, killed := range []bool{false, true} {
			// killed: as in the sandbox's Keep, which its host kills to
			// stop it, so wasmtime compiles without epoch checks.
			name := c.name + "/wasmtime-vs-plain-wasmtime"
			if killed {
				name = c.name + "/wasmtime-killed-vs-plain-wasmtime"
			}
			b.Run(name, func(b *testing.B) {
				if !havePlainWasmtime || engine.Check("wasmtime") != nil {
					b.Skip("needs a build with cgo and -tags wasmtime")
				}
				kc, wc := b.TempDir(), b.TempDir()
				compare(b,
					func() {
						if killed {
							keepRunKilled(b, wasm, kc, null, c.args...)
						} else {
							keepRunOn(b, "wasmtime", wasm, kc, false, null, c.args...)
						}
					},
					func() { plainWasmtime(b, wasm, wc, false, "", os.DevNull, c.args...) })
			})
		}
	}
}

// BenchmarkInterruptCost: what making a computing guest stoppable costs,
// each mechanism against the same engine without it, on nbody and the
// sieve: wasmtime's epochs (plain wasmtime-go with and without), wazero's
// WithCloseOnContextDone (plain wazero with and without), and the checks
// the Keep inserts for wazero (the Keep on wazero against plain wazero).
func BenchmarkInterruptCost(b *testing.B) {
	for _, c := range computeCases[:2] {
		wasm := workload(b, c.name)
		null := devNull(b)
		b.Run(c.name+"/wasmtime-epoch-vs-none", func(b *testing.B) {
			if !havePlainWasmtime {
				b.Skip("needs a build with cgo and -tags wasmtime")
			}
			wc := b.TempDir()
			compare(b,
				func() { plainWasmtime(b, wasm, wc, true, "", os.DevNull, c.args...) },
				func() { plainWasmtime(b, wasm, wc, false, "", os.DevNull, c.args...) })
		})
		b.Run(c.name+"/wazero-close-on-done-vs-none", func(b *testing.B) {
			wc, wc2 := b.TempDir(), b.TempDir()
			compare(b,
				func() { plainWazeroIO(b, wasm, wc, true, nil, null, c.args...) },
				func() { plainWazeroIO(b, wasm, wc2, false, nil, null, c.args...) })
		})
		b.Run(c.name+"/keep-wazero-checks-vs-plain-wazero", func(b *testing.B) {
			kc, wc := b.TempDir(), b.TempDir()
			compare(b,
				func() { keepRunOn(b, "wazero", wasm, kc, false, null, c.args...) },
				func() { plainWazeroIO(b, wasm, wc, false, nil, null, c.args...) })
		})
	}
}

// BenchmarkEngineStdio1GiB: 1 GiB through the echo workload (io.Copy) in a
// Keep per engine, against the same program natively and under plain
// wasmtime-go (throughput-ratio: higher is better).
func BenchmarkEngineStdio1GiB(b *testing.B) {
	wasm := workload(b, "echo")
	native := buildNative(b, "testdata/echo")
	const size = 1 << 30
	keepSide := func(b *testing.B, eng, kc string) func() {
		return func() {
			pipeThrough(b, size, func(in, out *os.File) {
				code, err := keep.Run(context.Background(), keep.Workload{Wasm: wasm},
					keep.Options{Files: []*os.File{in, out, os.Stderr}, CacheDir: kc, Engine: eng})
				if err != nil || code != 0 {
					b.Fatalf("keep: %d %v", code, err)
				}
			})
		}
	}
	for _, eng := range engine.Names() {
		b.Run(eng+"-vs-native", func(b *testing.B) {
			b.SetBytes(size)
			compare(b, keepSide(b, eng, b.TempDir()), func() {
				pipeThrough(b, size, func(in, out *os.File) { runNative(b, native, in, out, nil, nil) })
			})
		})
	}
	b.Run("wasmtime-vs-plain-wasmtime", func(b *testing.B) {
		if !havePlainWasmtime || engine.Check("wasmtime") != nil {
			b.Skip("needs a build with cgo and -tags wasmtime")
		}
		b.SetBytes(size)
		wc := b.TempDir()
		compare(b, keepSide(b, "wasmtime", b.TempDir()), func() {
			pipeThrough(b, size, func(in, out *os.File) {
				plainWasmtime(b, wasm, wc, false, fmt.Sprintf("/proc/self/fd/%d", in.Fd()), fmt.Sprintf("/proc/self/fd/%d", out.Fd()))
			})
		})
	})
}

// BenchmarkEngineTCPEcho256MiB: 256 MiB through one connection to the
// tcp-echo example served by a Keep per engine, against the same program
// natively (its listener passed as fd 3). Plain wasmtime-go cannot hand a
// guest a socket, so it has no row here.
func BenchmarkEngineTCPEcho256MiB(b *testing.B) {
	wasm, err := os.ReadFile(testutil.BuildWasm(b, "../examples/tcp-echo"))
	if err != nil {
		b.Fatal(err)
	}
	native := buildNative(b, "../examples/tcp-echo")
	const size = 256 << 20
	for _, eng := range engine.Names() {
		b.Run(eng+"-vs-native", func(b *testing.B) {
			b.SetBytes(size)
			port := freePortB(b)
			cfg := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nkind = \"stderr\"\n\n"+
				"[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = %d\n", port)
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan result, 1)
			kc := b.TempDir()
			go func() {
				served <- runCtx(ctx, b, keep.Workload{Wasm: wasm}, cfg, nil, keep.Options{CacheDir: kc, Engine: eng})
			}()
			defer func() {
				cancel()
				<-served
			}()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			lf, err := l.(*net.TCPListener).File()
			l.Close()
			if err != nil {
				b.Fatal(err)
			}
			defer lf.Close()
			srv := exec.Command(native)
			srv.ExtraFiles = []*os.File{lf}
			srv.Env = append(os.Environ(), "FD_NAMES=stdin:stdout:stderr:ingest")
			if err := srv.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { srv.Process.Kill(); srv.Wait() }()
			nativeAddr := l.Addr().String()
			compare(b,
				func() { tcpEchoClient(b, fmt.Sprintf("127.0.0.1:%d", port), size) },
				func() { tcpEchoClient(b, nativeAddr, size) })
		})
	}
}
