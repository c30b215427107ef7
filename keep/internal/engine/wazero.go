package engine

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/engine/internal/instrument"
	"github.com/enarx-go/enarx/keep/internal/limits"
)

// wazero: the optimizing compiler, pure Go, in every build.

func init() {
	// wazero reserves a linear memory at its maximum, the limit.
	register(factory{name: "wazero", rank: 0, new: newWazero, reserve: func(limit uint64) uint64 { return limit }})
}

// tableElements bounds the elements of a module's tables together, grown as
// well as initial, on every engine (package instrument gives the tables
// maximums that add up to it): the pre-compile limit on their initial
// elements. Table elements are host memory outside the linear-memory
// limit (8 bytes each on wazero; a limit per table let a module of many
// tables grow each one to it).
var tableElements = uint32(min(limits.Default.TableElements, math.MaxUint32))

// WazeroMaxMemory is the largest linear memory the wazero engine gives a
// module: 65,535 pages (4 GiB − 64 KiB); see newWazero.
const WazeroMaxMemory = DefaultMemoryLimit - pageSize

type wazeroEngine struct {
	rt    wazero.Runtime
	alloc *allocator
	cache wazero.CompilationCache
	// hosts are the host modules already instantiated in rt.
	hosts map[string]bool
	// instDir holds instrumented modules ("" = no cache; wazero_cache.go),
	// root is the cache root, where wazero keeps the compiled code;
	// mappings are the entries mapped, unmapped on Close.
	instDir  string
	root     string
	mappings [][]byte
	// interrupt: a call's end of context stops a computing guest
	// (Config.NoInterrupt unset). The inserted checks are in every module
	// either way: they are also the guest's preemption points (package
	// instrument), without which a garbage collection would stop every
	// other goroutine of the process, signal handling and timers
	// included, until the guest calls the host.
	interrupt bool
	// calls: Close never frees memory under a running call; freed: Close
	// has freed everything.
	calls calls
	freed bool
}

func newWazero(ctx context.Context, c Config, limit uint64, cacheDir string) (Engine, error) {
	rc := wazero.NewRuntimeConfigCompiler().
		// Never enable close-on-context-done: its check at every loop
		// header is an indirect call, which slows tight loops several
		// times over. Interruption comes from checks inserted into the
		// module instead (package instrument): a load and a branch.
		WithCloseOnContextDone(false).
		// No DWARF: wazero parses a module's DWARF sections as it decodes
		// the module (also on a cache hit, which has no compile deadline),
		// and Go's debug/dwarf parses an abbreviation table once per
		// offset a unit names, each to the table's end: quadratic, 10 s
		// for a 320 KB module (TestWazeroIgnoresDWARF). Backtraces name
		// functions (the name section), as wasmtime's do by default.
		WithDebugInfoEnabled(false)
	// wazero 1.12's compiler reads the length of a module's own linear
	// memory as 32 bits (frontend getMemoryLenValue: Uload32), so a memory
	// of exactly 65,536 pages has length 0 to the compiled code and every
	// access traps. Memories stop one page short; growth to 4 GiB fails as
	// at any limit, and keep reports why.
	limit = min(limit, WazeroMaxMemory)
	e := &wazeroEngine{alloc: &allocator{limit: limit}, hosts: map[string]bool{}, interrupt: !c.NoInterrupt}
	if cacheDir != "" {
		e.instDir, e.root = wazeroCacheDir(cacheDir, c.CacheTag), cacheDir
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("opening compilation cache %s (or use --no-cache): %w", cacheDir, err)
		}
		e.cache = cache
		rc = rc.WithCompilationCache(cache)
	}
	e.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	return e, nil
}

func (e *wazeroEngine) Name() string  { return "wazero" }
func (e *wazeroEngine) Limit() uint64 { return e.alloc.limit }

func (e *wazeroEngine) Breach() (uint64, bool) {
	e.alloc.mu.Lock()
	defer e.alloc.mu.Unlock()
	return e.alloc.refused, e.alloc.refused > 0
}

// Close releases the runtime (and with it all guest memory), after it
// has interrupted a running call and waited for it (see calls.close):
// unmapping the memory under the call would crash the process.
func (e *wazeroEngine) Close(ctx context.Context) error {
	if err := e.calls.close(ctx); err != nil {
		return err
	}
	if e.freed {
		return nil
	}
	e.freed = true
	err := e.rt.Close(ctx)
	if e.cache != nil {
		if cerr := e.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	for _, b := range e.mappings {
		unix.Munmap(b)
	}
	e.mappings = nil
	return err
}

// Cached implements Engine: the module as instrumented earlier, from the
// engine's cache (wazero_cache.go), compiled (or loaded from wazero's
// cache) without the rewrite.
func (e *wazeroEngine) Cached(wasm []byte, sum [32]byte) (Module, bool) {
	if e.instDir == "" {
		return nil, false
	}
	_, end, err := e.calls.begin(context.Background())
	if err != nil {
		return nil, false
	}
	defer end()
	inst, stop, err := e.loadInstrumented(sum)
	if err != nil {
		return nil, false
	}
	m, err := e.compile(context.Background(), inst, stop)
	if err != nil {
		return nil, false
	}
	return m, true
}

func (e *wazeroEngine) Compile(ctx context.Context, wasm []byte) (Module, error) {
	ctx, end, err := e.calls.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	// The checks go in with or without interruption: they keep the
	// process preemptible (see wazeroEngine.interrupt). wazero has no
	// table limiter: the tables' maximums bound their growth (see
	// tableElements).
	inst, err := instrument.Rewrite(wasm, instrument.Options{Interrupt: true, TableElements: tableElements})
	if err != nil {
		return nil, err
	}
	globals := ""
	if inst.Stop != "" {
		globals = inst.Stop + "\n" + inst.Fuel + "\n" + inst.Start
	}
	if e.instDir != "" {
		// wazero would load a code entry of its own that no entry of
		// ours vouches for (a damaged one, say), unchecked: it compiles
		// the module again instead (wazero_cache.go).
		_ = os.Remove(wazeroCodeFile(e.root, inst.Wasm))
	}
	m, err := e.compile(ctx, inst.Wasm, globals)
	if err == nil && e.instDir != "" {
		// A failure to write the cache only costs the next run a rewrite.
		_ = e.saveInstrumented(sha256.Sum256(wasm), inst.Wasm, globals)
	}
	return m, err
}

// compile compiles an instrumented module.
// globals names the exported globals of the inserted checks and the
// exported start function, "stop\nfuel\nstart" ("" without checks; start
// "" without a start function).
func (e *wazeroEngine) compile(ctx context.Context, wasm []byte, globals string) (_ Module, err error) {
	defer func() {
		// wazero's validator panics on some malformed modules (an index
		// out of range in validateFunctionWithMaxStackValues, found by
		// FuzzRewrite): a bad module is an error, never a crash.
		if p := recover(); p != nil {
			err = fmt.Errorf("invalid module (wazero: %v)", p)
		}
	}()
	cm, err := e.rt.CompileModule(ctx, wasm)
	if err != nil {
		return nil, err
	}
	var names [3]string
	copy(names[:], strings.SplitN(globals, "\n", 3))
	return &wazeroModule{e: e, cm: cm, stop: names[0], fuel: names[1], start: names[2]}, nil
}

type wazeroModule struct {
	e  *wazeroEngine
	cm wazero.CompiledModule
	// stop and fuel name the exported globals the inserted checks read
	// (package instrument); start the module's start function, which
	// Instantiate calls ("": none).
	stop, fuel, start string
}

func (m *wazeroModule) Functions() map[string]int {
	out := map[string]int{}
	for name, def := range m.cm.ExportedFunctions() {
		if m.start == "" || name != m.start {
			out[name] = len(def.ParamTypes())
		}
	}
	return out
}

func (m *wazeroModule) MinMemory() uint64 {
	var most uint64
	for _, mem := range m.cm.ExportedMemories() {
		most = max(most, uint64(mem.Min())*pageSize)
	}
	return most
}

func (m *wazeroModule) Instantiate(ctx context.Context, host []HostFunc) (_ Instance, err error) {
	ctx, end, err := m.e.calls.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	if err := m.e.linkHost(ctx, host); err != nil {
		return nil, err
	}
	defer func() {
		// A panic (e.g. an unexported memory whose minimum the allocator
		// refused) becomes an error.
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	mod, err := m.e.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, m.e.alloc), m.cm, mc)
	if err != nil {
		return nil, wazeroResult(ctx, err)
	}
	in := &wazeroInstance{e: m.e, mod: mod}
	if m.stop != "" {
		stop, ok1 := mod.ExportedGlobal(m.stop).(api.MutableGlobal)
		fuel, ok2 := mod.ExportedGlobal(m.fuel).(api.MutableGlobal)
		if !ok1 || !ok2 {
			return nil, errors.New("BUG: the interruption flag or fuel is not an exported mutable global")
		}
		in.stop, in.fuel = stop, fuel
	}
	if m.start != "" {
		// The start function, which the rewrite took out of the
		// instantiation so that it can be interrupted like any call.
		if err := in.runStart(ctx, m.start); err != nil {
			_ = mod.Close(ctx)
			return nil, err
		}
	}
	return in, nil
}

// runStart calls the module's start function, exported as name.
func (in *wazeroInstance) runStart(ctx context.Context, name string) error {
	fn := in.mod.ExportedFunction(name)
	if fn == nil {
		return errors.New("BUG: the start function is not exported")
	}
	if d := fn.Definition(); len(d.ParamTypes()) != 0 || len(d.ResultTypes()) != 0 {
		return errors.New("invalid module: its start function takes or returns values")
	}
	return in.call(ctx, fn)
}

// linkHost instantiates the host modules host names (once per runtime).
func (e *wazeroEngine) linkHost(ctx context.Context, host []HostFunc) error {
	builders := map[string]wazero.HostModuleBuilder{}
	var order []string
	for _, f := range host {
		if e.hosts[f.Module] {
			continue
		}
		b, ok := builders[f.Module]
		if !ok {
			b = e.rt.NewHostModuleBuilder(f.Module)
			builders[f.Module] = b
			order = append(order, f.Module)
		}
		fn := f.Fn
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
				if err := fn(ctx, wazeroCaller{mod}, stack); err != nil {
					var ee *ExitError
					if errors.As(err, &ee) {
						// As wazero's own WASI: close the module with the
						// status and unwind with a *sys.ExitError.
						_ = mod.CloseWithExitCode(ctx, ee.Code)
						panic(sys.NewExitError(ee.Code))
					}
					panic(err)
				}
				if e.interrupt && ctx.Err() != nil {
					// The run ended while the host function ran: stop
					// here rather than at the guest's next check, which
					// the flag (set on another goroutine) may not have
					// reached yet.
					panic(interrupted(ctx))
				}
			}), wazeroTypes(f.Params), wazeroTypes(f.Results)).
			Export(f.Name)
	}
	for _, name := range order {
		if _, err := builders[name].Instantiate(ctx); err != nil {
			return fmt.Errorf("linking host module %s: %w", name, err)
		}
		e.hosts[name] = true
	}
	return nil
}

func wazeroTypes(ts []ValType) []api.ValueType {
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t)
	}
	return out
}

// wazeroCaller is the Caller of a host function.
type wazeroCaller struct{ mod api.Module }

func (c wazeroCaller) Memory() []byte { return wazeroMemory(c.mod) }

func wazeroMemory(mod api.Module) []byte {
	mem := mod.ExportedMemory("memory")
	if mem == nil {
		return nil
	}
	b, _ := mem.Read(0, mem.Size())
	return b
}

type wazeroInstance struct {
	e          *wazeroEngine
	mod        api.Module
	stop, fuel api.MutableGlobal
}

func (in *wazeroInstance) Memory() []byte { return wazeroMemory(in.mod) }

func (in *wazeroInstance) Call(ctx context.Context, name string) error {
	ctx, end, err := in.e.calls.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	fn := in.mod.ExportedFunction(name)
	if fn == nil {
		return fmt.Errorf("no exported function %q", name)
	}
	return in.call(ctx, fn)
}

// call calls fn, interruptible when the engine interrupts (ctx is the
// call's, from calls.begin).
func (in *wazeroInstance) call(ctx context.Context, fn api.Function) error {
	if ctx.Err() != nil {
		return interrupted(ctx)
	}
	if in.stop != nil && in.e.interrupt {
		// The flag the inserted checks read: set, with the fuel emptied,
		// the guest traps at its next loop iteration or call (or, if its
		// own count down overwrote the emptied fuel, within
		// instrument.Fuel checks). A flag an earlier call's interruption
		// set is cleared first; the deferred function waits for a
		// setting already under way, so none lands in a later call
		// (which would stop at once for nothing).
		in.stop.Set(0)
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(fired)
			in.stop.Set(1)
			in.fuel.Set(0)
		})
		defer func() {
			if !stop() {
				<-fired
			}
		}()
	}
	_, err := fn.Call(ctx)
	return wazeroResult(ctx, err)
}

// wazeroResult maps a wazero error to the engine-neutral ones.
func wazeroResult(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var se *sys.ExitError
	if errors.As(err, &se) {
		return &ExitError{Code: se.ExitCode()}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrInterrupted, context.Cause(ctx))
	}
	return err
}
