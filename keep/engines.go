package keep

import (
	"slices"

	"github.com/enarx-go/enarx/keep/internal/engine"
)

// Engines lists the wasm engines this binary has, its default (the
// fastest) first: wazero in every build, wasmtime too in builds made with
// cgo and -tags wasmtime.
func Engines() []string { return engine.Names() }

// KnownEngines lists every engine a build of enarx may have; see
// Options.Engine.
func KnownEngines() []string { return slices.Clone(engine.Known) }

// WarmEngine does, for the engine called name ("" = this binary's
// default), the start-up work that only a process's first Run with that
// engine would do, so that a caller can overlap it with its own (run it on
// another goroutine; it returns when done). It is an optimisation only:
// Run works the same without it. wasmtime's first engine costs 2–3 ms on
// the VM we measure on, the next one 0.02 ms; for wazero it does nothing.
func WarmEngine(name string) { engine.Warm(name) }

// CheckEngine reports whether this binary has the engine called name
// ("" = its default) and, if not, says how to build one that has.
func CheckEngine(name string) error { return engine.Check(name) }

// DefaultMemoryLimit is the guest's linear-memory limit when
// Options.MemoryLimit is 0: 4 GiB, all that wasm32 addresses.
const DefaultMemoryLimit = engine.DefaultMemoryLimit

// ReservedAddressSpace is the virtual address space the engine called name
// ("" = this binary's default) reserves for a guest's linear memory whose
// limit is memoryLimit (0 = DefaultMemoryLimit), committed only as the
// guest touches it: a process limit on address space (RLIMIT_AS) must
// leave room for it besides the runtime's own. wazero reserves the limit,
// wasmtime 4 GiB and its guard pages whatever the limit.
func ReservedAddressSpace(name string, memoryLimit uint64) uint64 {
	return engine.ReservedAddressSpace(name, memoryLimit)
}

// DefaultCacheDir is the compilation cache root when Options.CacheDir is
// "" (the user's cache directory, then enarx/wasm).
func DefaultCacheDir() (string, error) { return engine.DefaultCacheDir() }
