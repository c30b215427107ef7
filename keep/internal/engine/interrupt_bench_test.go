package engine

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep/internal/engine/internal/instrument"
)

// BenchmarkWazeroChecks measures what the interruption checks the Keep
// inserts for wazero (package instrument) cost: the same module with and
// without them, both on plain wazero (its own WASI, stdout discarded,
// same runtime settings, compiled before timing), alternating in the same
// run. ratio = fastest run with the checks / fastest without. Run:
//
//	go test -run '^$' -bench WazeroChecks -benchtime 5x ./keep/internal/engine/
func BenchmarkWazeroChecks(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmark")
	}
	for _, name := range []string{"nbody", "sieve"} {
		b.Run(name, func(b *testing.B) {
			wasm, err := os.ReadFile(testutil.BuildWasm(b, "../../testdata/"+name))
			if err != nil {
				b.Fatal(err)
			}
			res, err := instrument.Rewrite(wasm, instrument.Options{Interrupt: true})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(false))
			defer r.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, r)
			plain, err := r.CompileModule(ctx, wasm)
			if err != nil {
				b.Fatal(err)
			}
			checked, err := r.CompileModule(ctx, res.Wasm)
			if err != nil {
				b.Fatal(err)
			}
			run := func(m wazero.CompiledModule) time.Duration {
				s := time.Now()
				mod, err := r.InstantiateModule(ctx, m, wazero.NewModuleConfig().WithName("").WithArgs("main.wasm").
					WithSysWalltime().WithSysNanotime())
				d := time.Since(s)
				if err != nil {
					b.Fatal(err)
				}
				mod.Close(ctx)
				return d
			}
			run(checked)
			run(plain)
			mc, mp := time.Duration(1<<62), time.Duration(1<<62)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				mc = min(mc, run(checked))
				mp = min(mp, run(plain))
			}
			b.StopTimer()
			b.ReportMetric(float64(mc.Microseconds())/1000, "checks-min-ms")
			b.ReportMetric(float64(mp.Microseconds())/1000, "none-min-ms")
			b.ReportMetric(float64(mc)/float64(mp), "ratio")
		})
	}
}
