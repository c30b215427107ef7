//go:build cgo && wasmtime

// plainwasmtime runs a WASI module the way a minimal wasmtime-go host
// does: default settings, Module.Serialize cached in $CACHE and loaded
// with NewModuleDeserializeFile, wasmtime's own WASI, stdio inherited.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"github.com/bytecodealliance/wasmtime-go/v44"
)

func main() {
	wasm, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	eng := wasmtime.NewEngine()
	sum := sha256.Sum256(wasm)
	path := filepath.Join(os.Getenv("CACHE"), hex.EncodeToString(sum[:])+".cwasm")
	mod, err := wasmtime.NewModuleDeserializeFile(eng, path)
	if err != nil {
		if mod, err = wasmtime.NewModule(eng, wasm); err != nil {
			panic(err)
		}
		art, err := mod.Serialize()
		if err != nil {
			panic(err)
		}
		os.WriteFile(path, art, 0o600)
	}
	store := wasmtime.NewStore(eng)
	wc := wasmtime.NewWasiConfig()
	wc.SetArgv([]string{"main.wasm"})
	wc.InheritStdin()
	wc.InheritStdout()
	wc.InheritStderr()
	store.SetWasi(wc)
	linker := wasmtime.NewLinker(eng)
	if err := linker.DefineWasi(); err != nil {
		panic(err)
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		panic(err)
	}
	if _, err := inst.GetFunc(store, "_start").Call(store); err != nil {
		if e, ok := err.(*wasmtime.Error); ok {
			if code, ok := e.ExitStatus(); ok {
				os.Exit(int(code))
			}
		}
		panic(err)
	}
}
