//go:build cgo && wasmtime

package keep_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/bytecodealliance/wasmtime-go/v44"
)

// havePlainWasmtime: this build can run the plain wasmtime-go baselines.
const havePlainWasmtime = true

// plainWasmtime runs wasm the way a minimal wasmtime-go runner does:
// Cranelift with default settings (epoch interruption only if asked),
// wasmtime's own WASI, its Serialize/DeserializeFile cache in cacheDir.
// stdin and stdout are host paths ("" = none; /proc/self/fd/N names an
// open pipe).
func plainWasmtime(b testing.TB, wasm []byte, cacheDir string, epoch bool, stdin, stdout string, args ...string) {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(epoch)
	eng := wasmtime.NewEngineWithConfig(cfg)
	defer eng.Close()
	var mod *wasmtime.Module
	sum := sha256.Sum256(wasm)
	variant := "plain"
	if epoch {
		variant = "epoch"
	}
	path := filepath.Join(cacheDir, hex.EncodeToString(sum[:])+"-"+variant+".cwasm")
	if m, err := wasmtime.NewModuleDeserializeFile(eng, path); err == nil {
		mod = m
	} else {
		m, err := wasmtime.NewModule(eng, wasm)
		if err != nil {
			b.Fatal(err)
		}
		if art, err := m.Serialize(); err == nil {
			os.WriteFile(path, art, 0o600)
		}
		mod = m
	}
	defer mod.Close()
	store := wasmtime.NewStore(eng)
	defer store.Close()
	if epoch {
		store.SetEpochDeadline(1 << 62)
	}
	wc := wasmtime.NewWasiConfig()
	wc.SetArgv(append([]string{"main.wasm"}, args...))
	if stdin != "" {
		if err := wc.SetStdinFile(stdin); err != nil {
			b.Fatal(err)
		}
	}
	if stdout != "" {
		if err := wc.SetStdoutFile(stdout); err != nil {
			b.Fatal(err)
		}
	}
	wc.InheritStderr()
	store.SetWasi(wc)
	linker := wasmtime.NewLinker(eng)
	defer linker.Close()
	if err := linker.DefineWasi(); err != nil {
		b.Fatal(err)
	}
	inst, err := linker.Instantiate(store, mod)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := inst.GetFunc(store, "_start").Call(store); err != nil {
		if e, ok := err.(*wasmtime.Error); !ok {
			b.Fatal(err)
		} else if code, ok := e.ExitStatus(); !ok || code != 0 {
			b.Fatal(err)
		}
	}
}
