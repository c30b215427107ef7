// Package keep is the Keep runtime: it takes a workload (wasm module and
// Enarx.toml bytes) and the host resources the host opened for it, builds
// the workload's fd table, establishes the Keep identity when TLS or a
// Steward needs one, and runs the module's default function under the
// Keep's own WASI preview1 layer (keep/internal/wasi) on one of two
// engines (keep/internal/engine: wazero, or wasmtime in builds with cgo
// and -tags wasmtime).
//
// Everything in this package runs inside the Keep: the config bytes are
// parsed here (the host's parse is not trusted), each host descriptor is
// checked to be the kind the config says, and TLS is terminated here.
package keep

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/identity"
	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/limits"
	"github.com/enarx-go/enarx/keep/internal/wasi"
)

// Workload is what the Keep runs.
type Workload struct {
	// Wasm is the module.
	Wasm []byte
	// Config is the raw Enarx.toml; nil means the default (stdin, stdout,
	// stderr as fds 0, 1, 2).
	Config []byte
	// ConfigName names the config in error messages (default "Enarx.toml").
	ConfigName string
	// Package is the package digest that the workload identity records:
	// Run sets it from the Bundle it verified. A caller leaves it empty
	// ("" for local runs): Run refuses a package digest without a Bundle,
	// since only a package the Keep verified itself may be named in its
	// identity (a host could otherwise claim any package for any module).
	Package string
	// Bundle is a package bundle (registry deployments) that Run unpacks
	// and verifies before anything else; Wasm, Config and Package then
	// come from it alone.
	Bundle []byte
}

// Options are the host-provided parts of a run.
type Options struct {
	// Files are the host resources, index-aligned with the config's
	// [[files]] (nil for null entries and memory dir entries): the
	// process's stdio, a listening TCP socket for listen, a connected one
	// for connect, a directory for a host or sealed dir entry (enarx opens
	// them with its internal/hostio). Run checks each is of that kind and
	// does not close them.
	Files []*os.File
	// Conns, when set, supplies the entries from a channel to the host
	// instead of Files (microVM Keeps, whose kernel has no sockets of its
	// own); Files must then be nil.
	Conns Conns
	// Args are appended to argv after the config's args.
	Args []string
	// Env is added to the workload's environment after the config's
	// [env], as "NAME=value" entries (the name ends at the first '='): a
	// container's env, which a host passes here rather than rewriting
	// Enarx.toml, so that the config digest in the Keep's certificate is
	// that of the workload owner's file. A name [env] sets keeps
	// Enarx.toml's value, FD_COUNT and FD_NAMES are the Keep's (from
	// [[files]]: an Env entry of either is dropped); of a name Env
	// repeats, the last entry counts.
	// It is host input: Run refuses entries without '=', with an empty
	// name or a NUL, and more than MaxEnvEntries or MaxEnvBytes
	// (ValidateEnv).
	Env []string
	// VolumeKeys are the volume keys of sealed kind = "dir" entries that
	// the host supplies, by the entry's key spec ("file:/path": the
	// 32-byte key read from that host file by internal/hostio). A key the
	// host holds gives no protection from the host: it is for development
	// and tests only, and logged as such. Keys derived inside the Keep
	// (key = "snp") never appear here.
	VolumeKeys map[string][]byte
	// Evidence produces TEE evidence for the Keep identity; nil means none.
	Evidence attest.EvidenceProvider
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// CacheDir is the compilation cache root ("" = user cache dir).
	CacheDir string
	// NoCache disables the compilation cache.
	NoCache bool
	// CacheScope separates the compiled code of Keeps that must not trust
	// each other: Keeps of different scopes never share compiled code a
	// Keep wrote, since the sandbox's and the microVM's per-module cache
	// directories (beneath CacheDir), which a Keep whose workload escaped
	// wasm could fill with machine code, are per scope. Empty: one scope
	// (enarx run: one user's Keeps); the containerd shim sets the pod's
	// Kubernetes namespace. Run itself ignores it: the cache it keeps in
	// CacheDir when the Keep runs in the host's process (the nil backend)
	// is written only by enarx's own engine, never by a workload, and
	// needs no scope.
	CacheScope string
	// MemoryLimit caps the guest's linear memory in bytes (0 = 4 GiB).
	MemoryLimit uint64
	// Engine names the wasm engine ("" = the first of Engines, the
	// fastest this binary has).
	Engine string
	// CompileTimeout bounds the compilation of the module (0 =
	// DefaultCompileTimeout for its size); see CompileTimeoutError.
	CompileTimeout time.Duration
	// CompileSlowdown multiplies the default compile deadline (0 or 1:
	// as is) for a Keep whose CPU is emulated, where a compilation takes
	// ten to twenty times as long (a microVM Keep under TCG); at most
	// MaxCompileSlowdown. Ignored when CompileTimeout is set.
	CompileSlowdown int
	// Killed says the Keep is stopped by the end of the process it runs
	// in (the sandbox's Keep process, which its host kills; the enarx
	// command's own process for the in-process backends): the engine
	// leaves out what makes a computing guest stoppable from within
	// (wasmtime's epochs, wazero's inserted checks: 0–30 % in tight
	// loops), and a cancelled ctx then stops only a waiting guest.
	// Embedders that stop a Keep through ctx leave it false.
	Killed bool
	// Identity overrides how the Keep identity is established (tests,
	// private Steward CAs); nil uses identity.Establish.
	Identity func(context.Context, identity.Request) (*identity.Identity, error)
	// WasmSHA256, if set, is the hex SHA-256 that Workload.Wasm must
	// have: Run refuses any other module before it compiles, instantiates
	// or names it (in the Keep's identity). A Keep sets it to check the
	// module its host passed against the digest the host announced (the
	// sandbox backend's Keep process): the one pass over the module that
	// names it in the compilation cache and in the identity is then also
	// the check. Without a bundle that pass runs alongside the
	// compilation cache's lookup of the announced digest, which reads no
	// module bytes (see digestModule); a module that fails the check is
	// refused and whatever the lookup loaded is discarded.
	WasmSHA256 string
}

// ErrNoEntryPoint is returned for a module without a default function.
var ErrNoEntryPoint = errors.New(`main.wasm exports no default function: a WASI command exports "_start" (or a function named "")`)

// MemoryLimitError reports that the guest asked for more linear memory
// than allowed.
type MemoryLimitError struct {
	Limit, Requested uint64
	// Engine is set when the limit is the engine's own maximum, below what
	// --memory allows (wazero cannot give a module exactly 4 GiB).
	Engine string
}

func (e *MemoryLimitError) Error() string {
	if e.Engine != "" {
		return fmt.Sprintf("the workload asked for %d bytes of memory but the %s engine gives a module at most %d pages (%d bytes; "+
			"wazero 1.12 cannot address a memory of exactly 4 GiB); use the wasmtime engine for that",
			e.Requested, e.Engine, e.Limit/65536, e.Limit)
	}
	return fmt.Sprintf("the workload asked for %d MiB of memory but the limit is %d MiB (raise it with --memory)",
		e.Requested>>20, e.Limit>>20)
}

// memoryLimitError is the error for a request of requested bytes on eng,
// which was configured with limit (0: the default).
func memoryLimitError(eng engine.Engine, limit, requested uint64) *MemoryLimitError {
	e := &MemoryLimitError{Limit: eng.Limit(), Requested: requested}
	if limit == 0 {
		limit = engine.DefaultMemoryLimit
	}
	if eng.Limit() < limit-limit%65536 {
		e.Engine = eng.Name()
	}
	return e
}

// Run runs w and returns its exit status: the proc_exit code, or 0 when the
// default function returns. A non-nil error means the run failed (bad
// config or module, host resources of the wrong kind, identity, a trap,
// the memory limit); the error text says what and, for traps, carries the
// wasm backtrace. With an error the status is 1 unless the guest chose
// another by calling proc_exit.
func Run(ctx context.Context, w Workload, o Options) (int, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	start := time.Now()
	if err := ValidateEnv(o.Env); err != nil {
		return 1, err
	}
	if w.Bundle == nil && w.Package != "" {
		return 1, fmt.Errorf("workload names package digest %.80q without its package bundle: the Keep names only a package it verified itself", w.Package)
	}
	wasmSum, checked := digestModule(w.Wasm, o.WasmSHA256, w.Bundle == nil)
	// The check may still read w.Wasm: Run returns after it (the
	// caller may unmap the module then).
	defer checked()
	if w.Bundle != nil {
		if err := checked(); err != nil {
			return 1, err
		}
		// Registry packages: verify before anything else. The bundle
		// holds the module.
		if err := openBundle(&w); err != nil {
			return 1, err
		}
		wasmSum = sha256.Sum256(w.Wasm)
	}
	cfg, err := parseConfig(w)
	if err != nil {
		return 1, err
	}
	if sum := configSHA256(w); sum != nil {
		// The digest the Keep's certificate binds (establish), for hosts
		// that check they passed the workload owner's file unchanged.
		log.Debug("workload config", "name", w.ConfigName, "sha256", hex.EncodeToString(sum))
	}
	eng, err := engine.New(ctx, engine.Config{Engine: o.Engine, CacheDir: o.CacheDir, NoCache: o.NoCache,
		CacheTag: limitsTag, MemoryLimit: o.MemoryLimit, NoInterrupt: o.Killed})
	if err != nil {
		return 1, err
	}
	abandoned := false // a compilation still runs: see compile
	defer func() {
		if !abandoned {
			eng.Close(context.WithoutCancel(ctx))
		}
	}()
	tEngine := time.Now()
	compiled, cached, err := cachedOrChecked(eng, w.Wasm, wasmSum, checked)
	if err != nil {
		return 1, err
	}
	// What follows names the module (identity, sealed volumes) or runs it.
	if err := checked(); err != nil {
		return 1, err
	}
	tCached := time.Now()
	for _, warn := range cfg.Warnings {
		log.Warn(warn)
	}
	sysw, ds, err := setup(ctx, w, wasmSum, cfg, o, log)
	if err != nil {
		return 1, err
	}
	defer ds.close() // after the table: sealed volumes commit last
	defer sysw.Files.CloseAll()
	tSetup := time.Now()
	if !cached {
		timeout := o.CompileTimeout
		if timeout <= 0 && o.CompileSlowdown > 1 {
			timeout = DefaultCompileTimeout(len(w.Wasm)) * time.Duration(min(o.CompileSlowdown, MaxCompileSlowdown))
		}
		if compiled, err = compile(ctx, eng, w.Wasm, timeout); err != nil {
			var te *CompileTimeoutError
			abandoned = errors.As(err, &te) || ctx.Err() != nil
			return 1, fmt.Errorf("compiling main.wasm: %w", err)
		}
	}
	entry, err := entryPoint(compiled)
	if err != nil {
		return 1, err
	}
	if need := compiled.MinMemory(); need > eng.Limit() {
		return 1, memoryLimitError(eng, o.MemoryLimit, need)
	}
	tCompiled := time.Now()
	inst, err := compiled.Instantiate(ctx, sysw.HostFuncs())
	if err != nil {
		return instantiateFailed(ctx, eng, o.MemoryLimit, err)
	}
	tInst := time.Now()
	log.Debug("running workload", "engine", eng.Name(), "entry", entry, "fds", sysw.Files.Len(), "from_cache", cached,
		"engine_new", tEngine.Sub(start), "cache_load", tCached.Sub(tEngine), "setup", tSetup.Sub(tCached),
		"compile", tCompiled.Sub(tSetup), "instantiate", tInst.Sub(tCompiled))
	return outcome(ctx, eng, o.MemoryLimit, inst.Call(ctx, entry))
}

// cachedOrChecked returns the module from the engine's cache, or checks
// what an uncached one declares against the limits before anything costs
// time: a module within them compiles in bounded time and memory. A
// module the engine loads from its cache passed the limits when it was
// compiled (the cache is tagged with them).
//
// checked reports whether the module has the digest sum (digestModule):
// the cache lookup needs only the digest, anything else the module.
func cachedOrChecked(eng engine.Engine, wasm []byte, sum [32]byte, checked func() error) (engine.Module, bool, error) {
	compiled, cached := eng.Cached(wasm, sum)
	if !cached {
		if err := checked(); err != nil {
			return nil, false, err
		}
		if err := limits.Check(wasm, limits.Default); err != nil {
			return nil, false, fmt.Errorf("main.wasm is refused before compiling: %w", err)
		}
	}
	return compiled, cached, nil
}

// digestModule returns the SHA-256 of wasm and a function that reports
// whether it is the announced one (hex; "" announces none), or, with an
// announced digest and concurrent set, the announced digest at once while
// it hashes wasm on another goroutine, and a function that waits for the
// hash and reports whether they match. The function may be called any
// number of times; once it has returned, nothing reads wasm any more.
//
// Why concurrently: the compilation cache is looked up by digest, and its
// entry loaded, without reading the module, so a Keep whose host announced
// the digest need not hash 2.6 MB (Go's hello: 3.5 ms on the VM we measure
// on, most of it first touches of the module's pages) before it starts
// loading. Nothing is compiled, instantiated or named by the digest before
// the hash matched (Run, cachedOrChecked).
func digestModule(wasm []byte, announced string, concurrent bool) ([32]byte, func() error) {
	check := func(got [32]byte) error {
		if announced != "" && hex.EncodeToString(got[:]) != announced {
			return fmt.Errorf("module digest mismatch: expected sha256:%s, received sha256:%x", announced, got)
		}
		return nil
	}
	var want [32]byte
	if n, err := hex.Decode(want[:], []byte(announced)); !concurrent || err != nil || n != len(want) {
		// No digest announced, or not one a module can have: the
		// check (if any) can only say so.
		sum := sha256.Sum256(wasm)
		err := check(sum)
		return sum, func() error { return err }
	}
	done := make(chan [32]byte, 1)
	go func() { done <- sha256.Sum256(wasm) }()
	var (
		once sync.Once
		err  error
	)
	return want, func() error {
		once.Do(func() { err = check(<-done) })
		return err
	}
}

// setup establishes the Keep identity if the config needs one and builds
// the workload's fd table and WASI layer. The caller closes the table
// (System.Files), then the dirs (sealed volumes).
func setup(ctx context.Context, w Workload, wasmSum [32]byte, cfg *config.Config, o Options, log *slog.Logger) (*wasi.System, *dirs, error) {
	var id tlsConfigs = noTLS{}
	if needsIdentity(cfg) {
		ident, err := establish(ctx, w, wasmSum, cfg, o, log)
		if err != nil {
			return nil, nil, err
		}
		id = ident
	}
	ds := &dirs{keys: o.VolumeKeys, wasmSum: wasmSum, log: log}
	var table *fd.Table
	var err error
	if o.Conns != nil {
		table, err = buildConnTable(ctx, cfg, o.Conns, id, ds, log, isGoModule(w.Wasm))
	} else {
		table, err = buildTable(ctx, cfg, o.Files, id, ds, log, isGoModule(w.Wasm))
	}
	if err != nil {
		ds.close()
		return nil, nil, fmt.Errorf("setting up the workload's files: %w", err)
	}
	return &wasi.System{
		Args:  append(append([]string{"main.wasm"}, cfg.Args...), o.Args...),
		Env:   environ(cfg, o.Env),
		Files: table,
	}, ds, nil
}

// instantiateFailed is Run's outcome when instantiation failed: proc_exit
// from a wasm start function, a stop, the memory limit or a bad module.
func instantiateFailed(ctx context.Context, eng engine.Engine, limit uint64, err error) (int, error) {
	if code, ok := exitCode(err); ok {
		// proc_exit from a wasm start function.
		return code, nil
	}
	if errors.Is(err, engine.ErrInterrupted) {
		return 1, fmt.Errorf("workload stopped: %w", context.Cause(ctx))
	}
	if req, breached := eng.Breach(); breached {
		return 1, memoryLimitError(eng, limit, req)
	}
	return 1, fmt.Errorf("instantiating main.wasm: %w", err)
}

// outcome turns what the default function's call returned into Run's
// status and error.
func outcome(ctx context.Context, eng engine.Engine, limit uint64, err error) (int, error) {
	code, exited := exitCode(err)
	if req, breached := eng.Breach(); breached && (err != nil && !exited || code != 0) {
		if !exited {
			code = 1
		}
		return code, memoryLimitError(eng, limit, req)
	}
	switch {
	case err == nil:
		return 0, nil
	case exited:
		return code, nil
	case errors.Is(err, engine.ErrInterrupted):
		return 1, fmt.Errorf("workload stopped: %w", context.Cause(ctx))
	}
	return 1, fmt.Errorf("main.wasm trapped: %w", err)
}

// DefaultCompileTimeout is the compile deadline for a module of size
// bytes: a minute plus ten seconds per MiB. Real modules compile some
// twenty to fifty times faster (a 2.6 MB Go module in 2–4 s on two cores);
// a module built to be slow to compile within the limits of package limits
// can cost far more (wazero's compile time grows with the square of a
// function's basic blocks: its loop detection walks the dominator tree
// from every block; 8 000 `block … br_if` in one function take 1 s, and
// 20 000 loops, 60 KB, 96 s once instrumented, as each check adds two
// blocks), and the deadline is what cuts it. No limit on blocks per
// function replaces it: one low enough to matter (real Go functions have
// up to a thousand blocks) would refuse generated code. In a
// race-detector build (tests), which compiles ten times slower or more,
// the deadline is twenty times as long.
func DefaultCompileTimeout(size int) time.Duration {
	return raceSlowdown * (time.Minute + time.Duration(size)*10*time.Second/(1<<20))
}

// MaxCompileSlowdown bounds Options.CompileSlowdown.
const MaxCompileSlowdown = 50

// CompileTimeoutError reports a compilation that took longer than allowed.
type CompileTimeoutError struct {
	Size    int
	Timeout time.Duration
}

func (e *CompileTimeoutError) Error() string {
	return fmt.Sprintf("the module (%d bytes) took longer than %v to compile and is refused; "+
		"no engine can stop a compilation, so it ends with the Keep (the enarx process, or the Keep process or VM)", e.Size, e.Timeout)
}

// compile compiles wasm with eng within timeout (0: the default for its
// size). Engines cannot cancel a compilation, so on timeout, or when ctx
// ends first, it returns while the compilation goes on in the background;
// the caller must not close eng then, and ends the run: every backend's
// Keep ends with its run (the CLI exits; a sandbox Keep process or a
// microVM ends), and the compilation with it.
func compile(ctx context.Context, eng engine.Engine, wasm []byte, timeout time.Duration) (engine.Module, error) {
	if timeout <= 0 {
		timeout = DefaultCompileTimeout(len(wasm))
	}
	type result struct {
		m   engine.Module
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := eng.Compile(context.WithoutCancel(ctx), wasm)
		done <- result{m, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.m, r.err
	case <-t.C:
		return nil, &CompileTimeoutError{Size: len(wasm), Timeout: timeout}
	case <-ctx.Done():
		return nil, fmt.Errorf("workload stopped: %w", context.Cause(ctx))
	}
}

// limitsTag tags compilation caches with the pre-compile checks: their
// version and limits (a module found in a cache is not checked again).
var limitsTag = fmt.Sprintf("check-v%d %+v", limits.CheckVersion, limits.Default)

// exitCode extracts a proc_exit status.
func exitCode(err error) (int, bool) {
	var ee *engine.ExitError
	if errors.As(err, &ee) {
		return int(ee.Code), true
	}
	return 0, false
}

func parseConfig(w Workload) (*config.Config, error) {
	if w.Config == nil {
		return config.Default(), nil
	}
	name := w.ConfigName
	if name == "" {
		name = "Enarx.toml"
	}
	return config.Parse(name, w.Config)
}

// entryPoint picks the default function: an export named "" or else
// "_start" (as wasmtime's Linker::get_default), taking no parameters.
func entryPoint(m engine.Module) (string, error) {
	fns := m.Functions()
	for _, name := range []string{"", "_start"} {
		if params, ok := fns[name]; ok {
			if params != 0 {
				return "", fmt.Errorf("main.wasm: default function %q takes %d parameters; it must take none", name, params)
			}
			return name, nil
		}
	}
	return "", ErrNoEntryPoint
}

// configSHA256 is the SHA-256 of the workload's Enarx.toml bytes, nil
// without one: what the Keep's certificate binds as its config digest.
func configSHA256(w Workload) []byte {
	if w.Config == nil {
		return nil
	}
	s := sha256.Sum256(w.Config)
	return s[:]
}

func needsIdentity(cfg *config.Config) bool {
	if cfg.Steward != "" {
		return true
	}
	for _, f := range cfg.Files {
		if f.Prot == config.ProtTLS {
			return true
		}
	}
	return false
}

func establish(ctx context.Context, w Workload, wasmSum [32]byte, cfg *config.Config, o Options, log *slog.Logger) (*identity.Identity, error) {
	wl := certext.Workload{WasmSHA256: wasmSum[:], Package: w.Package, ConfigSHA256: configSHA256(w)}
	est := o.Identity
	if est == nil {
		est = identity.Establish
	}
	id, err := est(ctx, identity.Request{
		Evidence:  o.Evidence,
		Steward:   cfg.Steward,
		StewardCA: cfg.StewardCA,
		Workload:  wl,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	return id, nil
}

// noTLS is used when no entry needs TLS (and so no identity exists).
type noTLS struct{}

func (noTLS) ServerTLS(f config.File) (*tls.Config, error) {
	return nil, fmt.Errorf("%s: no keep identity for TLS", f.Name)
}

func (noTLS) ClientTLS(f config.File) (*tls.Config, error) {
	return nil, fmt.Errorf("%s: no keep identity for TLS", f.Name)
}
