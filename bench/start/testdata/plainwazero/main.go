// plainwazero runs a WASI module the way a minimal wazero host does:
// compiler, compilation cache in $CACHE, wazero's own WASI, stdio
// inherited.
package main

import (
	"context"
	"os"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

func main() {
	ctx := context.Background()
	wasm, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	cache, err := wazero.NewCompilationCacheWithDir(os.Getenv("CACHE"))
	if err != nil {
		panic(err)
	}
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCompilationCache(cache))
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	mc := wazero.NewModuleConfig().WithStdout(os.Stdout).WithStderr(os.Stderr).WithStdin(os.Stdin).
		WithArgs("main.wasm").WithSysWalltime().WithSysNanotime()
	if _, err := r.InstantiateWithConfig(ctx, wasm, mc); err != nil {
		if e, ok := err.(*sys.ExitError); ok {
			os.Exit(int(e.ExitCode()))
		}
		panic(err)
	}
}
