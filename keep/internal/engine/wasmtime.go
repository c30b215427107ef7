//go:build cgo && wasmtime

package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/bytecodealliance/wasmtime-go/v44"
	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/engine/internal/instrument"
	"github.com/enarx-go/enarx/keep/internal/limits"
)

// wasmtime: Cranelift through wasmtime-go (cgo, a static libwasmtime.a),
// in builds made with cgo and -tags wasmtime. The default where present.
//
// Memory: wasmtime reserves 4 GiB plus guard pages per linear memory
// (virtual address space, committed as touched), so growth never moves
// or copies, and bounds checks are the guard pages' job. The store's
// limiter enforces the memory limit; memory.grow is wrapped (package
// instrument) so that a refused growth is reported with its size.
// Interruption: epochs (a check of a counter at function entries and
// loop headers); cancelling the run's context increments the epoch.

func init() {
	register(factory{name: "wasmtime", rank: 10, new: newWasmtime, warm: warmWasmtime,
		reserve: func(uint64) uint64 { return wasmtimeReservation }})
}

// WasmtimeVersion is the wasmtime-go module version this build links.
var WasmtimeVersion = func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/bytecodealliance/wasmtime-go/v44" {
				return d.Version
			}
		}
	}
	return "v44"
}()

// wasmtimeReservation is the address space wasmtime reserves per linear
// memory with its default settings (kept here): memory_reservation 4 GiB,
// and memory_guard_size 32 MiB after it and, guard_before_linear_memory,
// before it. "mmap failed to reserve 0x104000000 bytes" says so when a
// process limit leaves less.
const wasmtimeReservation = 4<<30 + 2*32<<20

// wasmtimeSettings are the engine settings compiled code depends on;
// their digest names the cache directory (with the version), so code
// compiled under other settings is never loaded. wasmtime itself also
// refuses an artefact made by another version, for another CPU or with
// other settings.
const wasmtimeSettings = "features=wazero-v2;opt=speed;unwind=0;instrument=grow-v1"

// newWasmtimeConfig is the engine configuration; cow enables
// copy-on-write memory images (see newWasmtime), epoch the epoch checks.
func newWasmtimeConfig(cow, epoch bool) *wasmtime.Config {
	cfg := wasmtime.NewConfig()
	cfg.SetEpochInterruption(epoch)
	// The same WebAssembly features as wazero's default (core 2.0): a
	// module runs on both engines or on neither.
	cfg.SetWasmThreads(false)
	cfg.SetWasmReferenceTypes(true)
	cfg.SetWasmSIMD(true)
	cfg.SetWasmRelaxedSIMD(false)
	cfg.SetWasmBulkMemory(true)
	cfg.SetWasmMultiValue(true)
	cfg.SetWasmMultiMemory(false)
	cfg.SetWasmMemory64(false)
	cfg.SetWasmTailCall(false)
	cfg.SetWasmFunctionReferences(false)
	cfg.SetWasmGC(false)
	cfg.SetWasmWideArithmetic(false)
	cfg.SetCraneliftOptLevel(wasmtime.OptLevelSpeed)
	// Native unwind info is for debuggers and profilers; wasmtime's own
	// backtraces walk frame pointers. Registering it costs start-up time.
	cfg.SetNativeUnwindInfo(false)
	// Copy-on-write memory images: instantiation maps a module's data
	// segments instead of copying them (Go's hello: 2 ms instead of 7–13
	// ms), but only for a module mapped from a file (the cache); for one
	// in memory wasmtime would need memfd_create, which the sandbox's
	// seccomp filter answers with ENOSYS, so that wasmtime copies instead
	// (see newWasmtime and Compile: a module whose cache entry could not
	// be saved or reloaded is one).
	cfg.SetMemoryInitCOWSet(cow)
	return cfg
}

type wasmtimeEngine struct {
	eng      *wasmtime.Engine
	limit    uint64
	cacheDir string
	// mapped: cache entries are mapped by wasmtime (see newWasmtime).
	mapped bool
	// epoch: the code checks epochs (Config.NoInterrupt unset).
	epoch bool
	// The one store of this engine (made at the first instantiation),
	// and its instances.
	store *wasmtime.Store
	insts []*wasmtimeInstance
	// calls: Close never frees the store under a running call; freed:
	// Close has freed everything.
	calls calls
	freed bool
}

// warmWasmtime makes and frees one engine of the usual configuration,
// once (Warm).
var warmWasmtime = sync.OnceFunc(func() {
	wasmtime.NewEngineWithConfig(newWasmtimeConfig(true, true)).Close()
})

func newWasmtime(_ context.Context, c Config, limit uint64, cacheDir string) (Engine, error) {
	// With a cache that may hold executable files, every module is
	// instantiated from its cache file (Compile reloads what it
	// compiled), so its code and data are mapped, not copied. From a
	// cache on a noexec mount modules are copied into anonymous memory,
	// without memory images.
	mapped := cacheDir != "" && execMount(cacheDir)
	e := &wasmtimeEngine{eng: wasmtime.NewEngineWithConfig(newWasmtimeConfig(mapped, !c.NoInterrupt)), limit: limit,
		mapped: mapped, epoch: !c.NoInterrupt}
	if cacheDir != "" {
		// Entries are found by the module's digest: the rewrite's version
		// is part of the directory's name.
		sum := sha256.Sum256([]byte(fmt.Sprintf("%s;epoch=%v;tag=%s;rewrite=%d", wasmtimeSettings, e.epoch, c.CacheTag, instrument.Version)))
		e.cacheDir = cacheDir + "/wasmtime-" + WasmtimeVersion + "-" + hex.EncodeToString(sum[:4])
	}
	return e, nil
}

// execMount reports whether files under dir may be mapped executable
// (fstatfs of the open directory: the sandbox's seccomp filter allows it,
// not statfs of a path).
func execMount(dir string) bool {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Flags&unix.ST_NOEXEC == 0
}

func (e *wasmtimeEngine) Name() string  { return "wasmtime" }
func (e *wasmtimeEngine) Limit() uint64 { return e.limit }

// Breach reads the instrumented modules' record of refused growth.
func (e *wasmtimeEngine) Breach() (uint64, bool) {
	var most uint64
	for _, in := range e.insts {
		most = max(most, in.requested())
	}
	return most, most > e.limit
}

// Close interrupts a running call and waits for it (see calls.close)
// before it frees the store: freeing it under the call would be undefined
// behaviour.
func (e *wasmtimeEngine) Close(ctx context.Context) error {
	if err := e.calls.close(ctx); err != nil {
		return err
	}
	if e.freed {
		return nil
	}
	e.freed = true
	for _, in := range e.insts {
		in.linker.Close()
	}
	if e.store != nil {
		e.store.Close()
	}
	e.eng.Close()
	return nil
}

// Cached implements Engine.
func (e *wasmtimeEngine) Cached(wasm []byte, sum [32]byte) (Module, bool) {
	if e.cacheDir == "" {
		return nil, false
	}
	_, end, err := e.calls.begin(context.Background())
	if err != nil {
		return nil, false
	}
	defer end()
	m, err := e.load(sum)
	if err != nil {
		return nil, false
	}
	return m, true
}

func (e *wasmtimeEngine) Compile(ctx context.Context, wasm []byte) (Module, error) {
	// Close waits for a compilation as for a call (it cannot interrupt
	// one), and frees nothing under it.
	_, end, err := e.calls.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	key := sha256.Sum256(wasm)
	if e.cacheDir != "" {
		if m, err := e.load(key); err == nil {
			return m, nil
		}
	}
	res, err := instrument.Rewrite(wasm, instrument.Options{RecordGrow: true, TableElements: tableElements})
	if err != nil {
		return nil, err
	}
	mod, err := wasmtime.NewModule(e.eng, res.Wasm)
	if err != nil {
		return nil, err
	}
	m := newWasmtimeModule(e, mod, res.Requested)
	if e.cacheDir != "" {
		// Reload what was saved, so the module is mapped from its file
		// (see newWasmtimeConfig). A failure to write the cache only costs
		// the next run a compile.
		if err := e.save(key, m); err == nil && e.mapped {
			if fm, err := e.load(key); err == nil {
				mod.Close()
				return fm, nil
			}
		}
	}
	return m, nil
}

type wasmtimeModule struct {
	e         *wasmtimeEngine
	mod       *wasmtime.Module
	requested string
	funcs     map[string]int
	minMemory uint64
}

func newWasmtimeModule(e *wasmtimeEngine, mod *wasmtime.Module, requested string) *wasmtimeModule {
	m := &wasmtimeModule{e: e, mod: mod, requested: requested, funcs: map[string]int{}}
	for _, ex := range mod.Exports() {
		ty := ex.Type()
		if ft := ty.FuncType(); ft != nil {
			m.funcs[ex.Name()] = len(ft.Params())
		} else if mt := ty.MemoryType(); mt != nil {
			m.minMemory = max(m.minMemory, mt.Minimum()*pageSize)
		}
	}
	return m
}

func (m *wasmtimeModule) Functions() map[string]int { return m.funcs }
func (m *wasmtimeModule) MinMemory() uint64         { return m.minMemory }

func (m *wasmtimeModule) Instantiate(ctx context.Context, host []HostFunc) (Instance, error) {
	e := m.e
	ctx, end, err := e.calls.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	if e.store == nil {
		e.store = wasmtime.NewStore(e.eng)
		// Table elements are host memory too: table.grow stops at the
		// pre-compile limit on a table's elements (by default wasmtime
		// grows a table that declares no maximum without bound); the
		// rewrite's maximums bound the tables together (tableElements).
		tableElements := int64(-1) // no limit
		if n := limits.Default.TableSize; n != 0 {
			tableElements = int64(min(n, math.MaxInt64))
		}
		e.store.Limiter(int64(e.limit), tableElements, -1, -1, -1)
	}
	// A linker per instance: its host functions close over the instance.
	// Only what the module imports is defined (Go's hello imports 16 of
	// the 92 WASI functions; each definition is a few cgo calls).
	in := &wasmtimeInstance{e: e, ctx: ctx, linker: wasmtime.NewLinker(e.eng)}
	imported := map[[2]string]bool{}
	for _, im := range m.mod.Imports() {
		if n := im.Name(); n != nil {
			imported[[2]string{im.Module(), *n}] = true
		}
	}
	for _, f := range host {
		if !imported[[2]string{f.Module, f.Name}] {
			continue
		}
		if err := in.linker.FuncNew(f.Module, f.Name, funcType(f), in.trampoline(f)); err != nil {
			in.linker.Close()
			return nil, fmt.Errorf("linking %s.%s: %w", f.Module, f.Name, err)
		}
	}
	e.insts = append(e.insts, in)
	var inst *wasmtime.Instance
	err = in.enter(ctx, func() (err error) {
		inst, err = in.linker.Instantiate(e.store, m.mod)
		return err
	})
	if err != nil {
		return nil, err
	}
	in.inst = inst
	if ex := inst.GetExport(e.store, "memory"); ex != nil {
		in.mem = ex.Memory()
	}
	if m.requested != "" {
		if ex := inst.GetExport(e.store, m.requested); ex != nil {
			in.req = ex.Global()
		}
	}
	return in, nil
}

func funcType(f HostFunc) *wasmtime.FuncType {
	conv := func(ts []ValType) []*wasmtime.ValType {
		out := make([]*wasmtime.ValType, len(ts))
		for i, t := range ts {
			k := wasmtime.KindI32
			if t == I64 {
				k = wasmtime.KindI64
			}
			out[i] = wasmtime.NewValType(k)
		}
		return out
	}
	return wasmtime.NewFuncType(conv(f.Params), conv(f.Results))
}

type wasmtimeInstance struct {
	e      *wasmtimeEngine
	linker *wasmtime.Linker
	inst   *wasmtime.Instance
	mem    *wasmtime.Memory
	req    *wasmtime.Global
	// ctx is the context of the running call, for host functions.
	ctx context.Context
	// unwind is the error a host function ended the guest with.
	unwind error
}

// trampoline adapts f to wasmtime-go's calling convention.
func (in *wasmtimeInstance) trampoline(f HostFunc) func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	// One stack per function: a guest has one thread, and a host
	// function never calls back into it.
	stack := make([]uint64, max(len(f.Params), len(f.Results)))
	return func(caller *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
		for i, a := range args {
			if a.Kind() == wasmtime.KindI64 {
				stack[i] = uint64(a.I64())
			} else {
				stack[i] = uint64(uint32(a.I32()))
			}
		}
		if err := f.Fn(in.ctx, wasmtimeCaller{in, caller}, stack); err != nil {
			in.unwind = err
			return nil, wasmtime.NewTrap("enarx: host function " + f.Name + " ended the guest")
		}
		if in.e.epoch && in.ctx.Err() != nil {
			// The run ended while the host function ran: stop here rather
			// than at the guest's next epoch check, which the increment
			// (made on another goroutine) may not have reached yet.
			in.unwind = interrupted(in.ctx)
			return nil, wasmtime.NewTrap("enarx: interrupted in host function " + f.Name)
		}
		if len(f.Results) == 0 {
			return nil, nil
		}
		out := make([]wasmtime.Val, len(f.Results))
		for i, t := range f.Results {
			if t == I64 {
				out[i] = wasmtime.ValI64(int64(stack[i]))
			} else {
				out[i] = wasmtime.ValI32(int32(uint32(stack[i])))
			}
		}
		return out, nil
	}
}

type wasmtimeCaller struct {
	in     *wasmtimeInstance
	caller *wasmtime.Caller
}

func (c wasmtimeCaller) Memory() []byte {
	mem := c.in.mem
	if mem == nil {
		// During instantiation (a start function) the instance's exports
		// are not known yet.
		ex := c.caller.GetExport("memory")
		if ex == nil {
			return nil
		}
		if mem = ex.Memory(); mem == nil {
			return nil
		}
	}
	return memoryBytes(mem.UnsafeData(c.caller))
}

// memoryBytes is a non-nil slice for a memory of size 0, as wazero's.
func memoryBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (in *wasmtimeInstance) Memory() []byte {
	if in.mem == nil {
		return nil
	}
	return memoryBytes(in.mem.UnsafeData(in.e.store))
}

// requested is the memory size, in bytes, of the last refused growth.
func (in *wasmtimeInstance) requested() uint64 {
	if in.req == nil {
		return 0
	}
	return uint64(in.req.Get(in.e.store).I64()) * pageSize
}

func (in *wasmtimeInstance) Call(ctx context.Context, name string) error {
	ctx, end, err := in.e.calls.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	fn := in.inst.GetFunc(in.e.store, name)
	if fn == nil {
		return fmt.Errorf("no exported function %q", name)
	}
	return in.enter(ctx, func() error {
		_, err := fn.Call(in.e.store)
		return err
	})
}

// enter runs call (which enters the guest) interruptibly and maps its
// error to the engine-neutral ones. ctx is the context calls.begin made.
func (in *wasmtimeInstance) enter(ctx context.Context, call func() error) error {
	if ctx.Err() != nil {
		return interrupted(ctx)
	}
	in.ctx = ctx
	if in.e.epoch {
		disarm := in.e.armEpoch(ctx)
		// Cancelled between the check above and the arming: the increment
		// armEpoch's AfterFunc makes would interrupt the guest at its
		// first check; not entering it at all is quicker.
		if ctx.Err() != nil {
			disarm()
			return interrupted(ctx)
		}
		defer disarm()
	}
	err := call()
	if err == nil {
		return nil
	}
	if u := in.unwind; u != nil {
		in.unwind = nil
		var ee *ExitError
		if errors.As(u, &ee) {
			return ee
		}
		if ctx.Err() != nil && !errors.Is(u, ErrInterrupted) {
			return fmt.Errorf("%w: %w", ErrInterrupted, u)
		}
		return u
	}
	var trap *wasmtime.Trap
	if errors.As(err, &trap) {
		if code := trap.Code(); code != nil && *code == wasmtime.Interrupt && ctx.Err() != nil {
			return interrupted(ctx)
		}
		return trapError(trap)
	}
	return err
}

// armEpoch makes the end of ctx interrupt the running call, and returns
// the function that undoes that when the call has returned.
//
// The order matters. The store's deadline is relative to the engine's
// epoch when it is set (wasmtime: deadline = epoch + 1), so an increment
// made before SetEpochDeadline would be absorbed by it; the increment is
// registered only after the deadline is set, so every cancellation from
// then on passes it, and the epoch never goes back: the guest traps at
// its next check (function entry, loop header). Nothing resets the
// deadline during the call (calls.begin refuses a nested call).
//
// The undo waits for an increment already started: otherwise one from a
// context that ended just as its call returned (AfterFunc's stop then
// returns false) could land in the next call, which would trap on an
// interruption nobody asked for, or after Close, on a freed engine.
func (e *wasmtimeEngine) armEpoch(ctx context.Context) (disarm func()) {
	e.store.SetEpochDeadline(1)
	if ctx.Err() != nil {
		// Ended already: pass the deadline now, not later from the
		// AfterFunc's goroutine (a short call would finish first).
		e.eng.IncrementEpoch()
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		e.eng.IncrementEpoch()
	})
	return func() {
		if !stop() {
			<-fired
		}
	}
}

// trapError formats a trap as wazero does: the reason, then the wasm
// stack trace, innermost frame first.
func trapError(t *wasmtime.Trap) error {
	// wasmtime's message is a header, its own backtrace, then the cause:
	// "Caused by:\n    wasm trap: <reason>".
	full := t.Message()
	msg := full
	if _, cause, ok := strings.Cut(full, "Caused by:"); ok {
		msg = cause
	}
	msg = strings.TrimSpace(msg)
	msg, _, _ = strings.Cut(msg, "\n")
	msg = strings.TrimPrefix(strings.TrimSpace(msg), "wasm trap: ")
	var b strings.Builder
	fmt.Fprintf(&b, "wasm error: %s\nwasm stack trace:", msg)
	for _, f := range t.Frames() {
		name := fmt.Sprintf("$%d", f.FuncIndex())
		if n := f.FuncName(); n != nil {
			name = *n
		}
		fmt.Fprintf(&b, "\n\t.%s(...) at module offset 0x%x", name, f.ModuleOffset())
	}
	return errors.New(b.String())
}
