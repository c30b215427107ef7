package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// The engine-neutral interface. The Keep's WASI layer (package keep/internal/wasi)
// is written once against HostFunc and Caller, and every engine runs it:
// an engine only moves parameters and results between its own calling
// convention and a []uint64 stack, and hands the host function the
// caller's linear memory as a byte slice.

// ValType is the wasm type of a host function parameter or result.
type ValType byte

// The value types host functions use.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
)

// Caller is what a host function sees of the instance that called it.
type Caller interface {
	// Memory is the instance's exported linear memory "memory" (nil if it
	// has none). The slice is valid until the host function returns;
	// nothing else runs in the instance meanwhile, so it cannot grow.
	Memory() []byte
}

// HostFunc is a function the host provides to the guest.
type HostFunc struct {
	Module, Name string
	Params       []ValType
	// Results has at most one entry.
	Results []ValType
	// Fn runs a call. stack holds the parameters on entry (i32s in the low
	// half of their slot; the upper half is undefined) and receives the
	// results; its length is max(len(Params), len(Results)). A non-nil
	// error unwinds the guest: an *ExitError ends the run with that
	// status (proc_exit), anything else ends it with that error (for
	// example the context's, when a wait was cancelled).
	Fn func(ctx context.Context, c Caller, stack []uint64) error
}

// ExitError is a guest's proc_exit: returned by a HostFunc to end the run,
// and by Instance.Call and Module.Instantiate when the guest exited.
type ExitError struct{ Code uint32 }

func (e *ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ErrInterrupted is wrapped by the error of a run that was stopped because
// its context ended while the guest was computing.
var ErrInterrupted = errors.New("interrupted")

// Engine compiles and runs modules. One Engine runs one Keep's workload;
// it is not safe for concurrent use, except that Close may be called
// while a call runs.
type Engine interface {
	// Name is the engine's name ("wazero", "wasmtime").
	Name() string
	// Compile validates and compiles wasm (or loads it from the
	// compilation cache).
	Compile(ctx context.Context, wasm []byte) (Module, error)
	// Cached returns wasm's module from the compilation cache when the
	// engine can load it without looking at wasm again (wasmtime: the
	// entry is machine code made from exactly these bytes, under the same
	// Config.CacheTag), so the caller may skip checks it made before
	// compiling. sum is wasm's SHA-256, which the caller computed (once
	// per run: it also names the workload in the Keep's identity) and
	// which keys the cache, or the digest a Keep's host announced for
	// wasm, which the caller is still checking meanwhile: Cached reads
	// only the cache, never wasm, and the caller discards what it
	// returned if the check fails (keep.Run).
	Cached(wasm []byte, sum [32]byte) (Module, bool)
	// Limit is the linear-memory cap in bytes.
	Limit() uint64
	// Breach reports whether the guest asked for more memory than the
	// limit, and how much it asked for in total.
	Breach() (requested uint64, breached bool)
	// Close releases the engine and everything it made. A running
	// Instantiate or Call is interrupted (its error wraps ErrInterrupted
	// and ErrClosed), and it or a running Compile is waited for until
	// ctx ends (10 s if ctx has no deadline); if it still runs then (a
	// guest run with Config.NoInterrupt, a host function that does not
	// return, a long compilation), Close frees nothing and returns an
	// error, and may be called again. Calls after Close fail with
	// ErrClosed.
	Close(ctx context.Context) error
}

// Module is a compiled module.
type Module interface {
	// Functions lists the exported functions and their parameter counts.
	Functions() map[string]int
	// MinMemory is the largest initial size, in bytes, of the module's
	// own memories (0 without one).
	MinMemory() uint64
	// Instantiate links host and instantiates the module, running its
	// start function (if any) but not "_start". Errors are as Call's.
	// An engine links the host functions of its first instantiation.
	Instantiate(ctx context.Context, host []HostFunc) (Instance, error)
}

// Instance is an instantiated module.
type Instance interface {
	Caller
	// Call runs the exported function name, which takes no parameters,
	// and discards its results. The error is an *ExitError after
	// proc_exit, wraps ErrInterrupted when ctx ended while the guest
	// computed (and the error a host function returned when it unwound
	// the guest), and is a trap with a wasm backtrace otherwise.
	Call(ctx context.Context, name string) error
}

// Config configures an Engine.
type Config struct {
	// Engine names the engine ("" = Default()).
	Engine string
	// CacheDir is the compilation cache root ("" = the user cache dir,
	// e.g. ~/.cache/enarx/wasm). Each engine keeps a subdirectory per
	// engine version and settings, and keys entries by the module's
	// SHA-256, so a changed module or engine never reuses stale code;
	// entries are written to a temporary file and renamed, so concurrent
	// runs are safe.
	CacheDir string
	// NoCache disables the compilation cache.
	NoCache bool
	// NoInterrupt leaves out what makes a computing guest stoppable from
	// within the process: wasmtime then compiles without epoch checks
	// (20–30 % slower tight loops with them), and a guest that computes
	// without waiting stops only with its process. A waiting guest is
	// still woken when the run's context ends. For Keeps stopped by the
	// end of their process: the sandbox's, which its host kills, and the
	// nil backend's under the enarx command, which exits. wazero keeps
	// its inserted checks (a count down at loop headers and function
	// entries) either way, and only stops looking at the flag: without
	// them a computing guest could not be preempted, so a garbage
	// collection starting meanwhile would stop every other goroutine of
	// the process (signal handling and timers included: Ctrl-C and
	// --timeout) until the guest called the host or ended.
	NoInterrupt bool
	// CacheTag names the checks a module passed before it was compiled
	// (keep's pre-compile limits): cache entries made under another tag
	// are not used.
	CacheTag string
	// MemoryLimit caps linear memory in bytes (0 = DefaultMemoryLimit;
	// rounded down to whole 64 KiB pages; at most 4 GiB).
	MemoryLimit uint64
}

// factory makes an engine of one kind.
type factory struct {
	name string
	// rank orders Default: the highest ranked engine of a build is its
	// default.
	rank int
	new  func(ctx context.Context, c Config, limit uint64, cacheDir string) (Engine, error)
	// warm, if set, does the process's first-engine work ahead (Warm).
	warm func()
	// reserve is the address space the engine reserves for a linear
	// memory of at most limit bytes (ReservedAddressSpace).
	reserve func(limit uint64) uint64
}

var factories []factory

func register(f factory) {
	factories = append(factories, f)
	sort.Slice(factories, func(i, j int) bool { return factories[i].rank > factories[j].rank })
}

// Names lists the engines this build has, its default first.
func Names() []string {
	var n []string
	for _, f := range factories {
		n = append(n, f.name)
	}
	return n
}

// Default is the engine used when none is named: the fastest this build
// has (wasmtime in builds made with cgo and -tags wasmtime, else wazero).
func Default() string { return factories[0].name }

// Warm does, for the engine called name ("" = Default()), the work that
// only the first engine of that kind in a process does, so that a caller
// can overlap it with its own start-up: wasmtime's first engine faults in
// much of its code and initialises its process-wide state (2–3 ms on the
// VM we measure on, against 0.02 ms for the next one). It returns when
// done, and does nothing for an unknown name, a second time, or wazero,
// whose costs are per module. It reads no input and starts nothing that
// outlives it.
func Warm(name string) {
	if name == "" {
		name = Default()
	}
	for _, f := range factories {
		if f.name == name && f.warm != nil {
			f.warm()
		}
	}
}

// ReservedAddressSpace is the virtual address space the engine called
// name ("" = Default()) reserves for a guest's linear memory whose limit
// is limit (0 = DefaultMemoryLimit), committed only as the guest touches
// it: what a process limit on address space (RLIMIT_AS) must leave room
// for, besides the runtime. wazero reserves the limit, wasmtime 4 GiB and
// its guard pages whatever the limit. An unknown name gives the limit.
func ReservedAddressSpace(name string, limit uint64) uint64 {
	if name == "" {
		name = Default()
	}
	if limit == 0 || limit > DefaultMemoryLimit {
		limit = DefaultMemoryLimit
	}
	for _, f := range factories {
		if f.name == name && f.reserve != nil {
			return f.reserve(limit)
		}
	}
	return limit
}

// Known lists every engine enarx can be built with.
var Known = []string{"wazero", "wasmtime"}

// Check reports whether name ("" = Default()) is an engine of this build,
// and if not, says what to do.
func Check(name string) error {
	if name == "" {
		return nil
	}
	for _, f := range factories {
		if f.name == name {
			return nil
		}
	}
	for _, k := range Known {
		if k == name {
			return fmt.Errorf("this enarx binary has no %s engine (it has %s): build it with cgo and -tags %s, "+
				"e.g. CGO_ENABLED=1 go build -tags %s ./cmd/enarx", name, strings.Join(Names(), ", "), name, name)
		}
	}
	return fmt.Errorf("unknown engine %q: use one of %s", name, strings.Join(Known, ", "))
}

// New returns a configured engine. Close it when done.
func New(ctx context.Context, c Config) (Engine, error) {
	if err := Check(c.Engine); err != nil {
		return nil, err
	}
	name := c.Engine
	if name == "" {
		name = Default()
	}
	limit, err := memoryLimit(c.MemoryLimit)
	if err != nil {
		return nil, err
	}
	dir := ""
	if !c.NoCache {
		if dir = c.CacheDir; dir == "" {
			if dir, err = DefaultCacheDir(); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating compilation cache %s (or use --no-cache): %w", dir, err)
		}
	}
	for _, f := range factories {
		if f.name == name {
			return f.new(ctx, c, limit, dir)
		}
	}
	panic("unreachable: Check accepted " + name)
}

// memoryLimit validates and rounds a configured limit.
func memoryLimit(l uint64) (uint64, error) {
	if l > DefaultMemoryLimit {
		return 0, fmt.Errorf("memory limit %d bytes is above the wasm32 maximum of 4 GiB", l)
	}
	if l == 0 {
		l = DefaultMemoryLimit
	}
	if l < pageSize {
		return 0, fmt.Errorf("memory limit %d bytes is below one 64 KiB wasm page", l)
	}
	return l - l%pageSize, nil
}
