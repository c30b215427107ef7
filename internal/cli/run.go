package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/snp"
	"github.com/enarx-go/enarx/backend/tdx"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/hostio"
	"github.com/enarx-go/enarx/keep"
)

// interruptGrace is how long an interrupted run may take to stop by itself.
const interruptGrace = 2 * time.Second

type runFlags struct {
	backend    string
	engine     string
	wasmcfg    string
	noCache    bool
	memory     string
	cacheDir   string
	moduleArgs []string
	// Host-side launch policy (backend.Policy), honoured by backends that
	// run the Keep outside this process (sandbox).
	timeout          time.Duration
	requireIsolation bool
}

func newRunCmd(g *globals) *cobra.Command {
	f := &runFlags{}
	cmd := &cobra.Command{
		Use:   "run [flags] MODULE.wasm [-- ARGS...]",
		Short: "Run a local WebAssembly module in a Keep",
		Long: `Run a local WASI (preview1) module in a Keep.

The workload's file descriptors, arguments and environment come from an
Enarx.toml (--wasmcfgfile); without one it gets stdin, stdout and stderr as
fds 0, 1 and 2. Arguments after "--" are appended to the config's args.

Exit status: the workload's proc_exit code, 0 when its entry point returns,
1 when the run fails (bad module or config, trap, memory limit) with the
reason on stderr, 2 for a command line enarx does not accept (a flag value
that does not parse included), 130 when interrupted (Ctrl-C, SIGTERM).`,
		Args: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if len(args) == 0 || dash == 0 {
				return errors.New("accepts a MODULE.wasm argument")
			}
			if dash < 0 && len(args) > 1 || dash > 1 {
				return errors.New(`accepts one MODULE.wasm; put workload arguments after "--"`)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); dash > 0 {
				f.moduleArgs = args[dash:]
			}
			return runModule(cmd, g, f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.backend, "backend", os.Getenv("ENARX_BACKEND"), "Keep backend (env ENARX_BACKEND; default: the most protective available)")
	engineFlag(fl, &f.engine)
	fl.StringVar(&f.wasmcfg, "wasmcfgfile", os.Getenv("ENARX_WASMCFGFILE"), "Enarx.toml for the workload (env ENARX_WASMCFGFILE)")
	fl.BoolVar(&f.noCache, "no-cache", false, "do not use the compilation cache")
	fl.StringVar(&f.cacheDir, "cache-dir", "", "compilation cache directory (default: user cache dir/enarx/wasm)")
	fl.StringVar(&f.memory, "memory", "4GiB", "linear memory limit of the workload (e.g. 512MiB, 2GiB)")
	fl.DurationVar(&f.timeout, "timeout", 0, "stop the Keep after this long, e.g. 30s")
	fl.BoolVar(&f.requireIsolation, "require-isolation", false, "refuse to start a Keep that lacks any of its backend's isolation layers (sandbox; kvm under software emulation)")
	return cmd
}

func runModule(cmd *cobra.Command, g *globals, f *runFlags, module string) error {
	limit, err := memoryFlag(f.memory)
	if err != nil {
		return err
	}
	if err := checkEngine(f.engine, valueSource(cmd, "engine", "ENARX_ENGINE")); err != nil {
		return err
	}
	b, err := selectBackend(g, f.backend, valueSource(cmd, "backend", "ENARX_BACKEND"))
	if err != nil {
		return err
	}
	wasm, err := readModule(module, b.Protection() >= backend.ProtectionTEE)
	if err != nil {
		return fmt.Errorf("reading the module: %w", err)
	}
	if err := checkWasm(module, wasm); err != nil {
		return err
	}
	w := keep.Workload{Wasm: wasm}
	cfg := config.Default()
	if f.wasmcfg != "" {
		data, err := os.ReadFile(f.wasmcfg)
		if err != nil {
			return fmt.Errorf("reading the workload config: %w", err)
		}
		if cfg, err = config.Parse(f.wasmcfg, data); err != nil {
			return err
		}
		w.Config, w.ConfigName = data, f.wasmcfg
	}
	return launchKeep(cmd, b, cfg, backend.Policy{Timeout: f.timeout, RequireIsolation: f.requireIsolation}, w, keep.Options{
		Args:        f.moduleArgs,
		Logger:      g.logger,
		CacheDir:    f.cacheDir,
		NoCache:     f.noCache,
		MemoryLimit: limit,
		Engine:      f.engine,
	})
}

// engineFlag adds --engine (default: ENARX_ENGINE).
func engineFlag(fl *pflag.FlagSet, p *string) {
	fl.StringVar(p, "engine", os.Getenv("ENARX_ENGINE"), "wasm engine: "+strings.Join(keep.KnownEngines(), " or ")+
		" (env ENARX_ENGINE; default: the fastest the Keep has; this binary has "+strings.Join(keep.Engines(), ", ")+")")
}

// valueSource names where the value of a flag that has a default from
// the environment came from: "--flag", or the variable env when the flag
// was not given, so that an error about a value the user did not type
// names the variable that set it.
func valueSource(cmd *cobra.Command, flag, env string) string {
	if f := cmd.Flag(flag); f != nil && !f.Changed && os.Getenv(env) != "" {
		return env
	}
	return "--" + flag
}

// checkEngine refuses an engine name no build of enarx knows (source: the
// flag or variable it came from, see valueSource). Whether the Keep has
// it is the Keep's to say (a microVM Keep has its own binary).
func checkEngine(name, source string) error {
	if name == "" || slices.Contains(keep.KnownEngines(), name) {
		return nil
	}
	return fmt.Errorf("%s: unknown engine %q: use %s", source, name, strings.Join(keep.KnownEngines(), " or "))
}

// checkWasm refuses a file that is not a binary WebAssembly module before
// a Keep is started for it, naming the user's file (the Keep would only
// say that "main.wasm" has an invalid magic number).
func checkWasm(name string, b []byte) error {
	if bytes.HasPrefix(b, []byte("\x00asm")) {
		return nil
	}
	msg := fmt.Sprintf("%s is not a WebAssembly module: it does not start with the wasm magic bytes \\0asm", name)
	if t := bytes.TrimSpace(b); bytes.HasPrefix(t, []byte("(module")) || bytes.HasPrefix(t, []byte(";;")) {
		msg += " (it looks like WebAssembly text: compile it to binary first, e.g. with wat2wasm)"
	}
	return errors.New(msg)
}

// selectBackend picks the backend (backend.Select) and says which on
// stderr at info level (--log-level info), with how it was chosen.
// An error about a name ENARX_BACKEND gave (source, see valueSource)
// says so.
func selectBackend(g *globals, name, source string) (backend.Backend, error) {
	b, err := backend.Select(name)
	if err != nil {
		if source != "--backend" {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		return nil, err
	}
	how := "the most protective backend available and configured here"
	if name != "" {
		how = "named by --backend or ENARX_BACKEND"
	}
	g.logger.Info("Keep backend: "+b.Name(), "chosen", how)
	return b, nil
}

// processEnds is set by EndsProcess.
var processEnds bool

// EndsProcess tells the CLI that its caller ends the process as soon as
// Execute returns (cmd/enarx calls it first thing). A Keep that runs
// inside this process (see inProcess) is then stopped on --timeout or
// interrupt by that end, as the sandbox's host stops its Keep by killing
// the Keep's process: launchKeep returns the exit status without waiting
// for the Keep, and the Keep runs without the engine's own interruption
// (keep.Options.Killed: wasmtime's epoch checks cost 20–30 % in tight
// loops). Without it (embedders, in-process tests) the Keep is
// interrupted from within and launchKeep waits for it.
func EndsProcess() { processEnds = true }

// launchKeep opens the host resources cfg names, runs w on backend b and
// turns the outcome into enarx's exit status: the workload's own status,
// 1 with the reason for a failed run, 130 on interrupt. Shared by run and
// deploy.
//
// An interrupt (Ctrl-C, SIGTERM) ends enarx with status 130 and no
// message, as the shell's own handling of Ctrl-C would: the user asked for
// it (docs/runtime.md). A Keep in this process that has not stopped by
// then is ended with the process (see EndsProcess): at once when the
// process ends with Execute and the Keep runs in it without in-process
// interruption, else after interruptGrace (both engines stop a computing
// guest when the run's context ends, and wake a waiting one).
func launchKeep(cmd *cobra.Command, b backend.Backend, cfg *config.Config, policy backend.Policy, w keep.Workload, o keep.Options) error {
	ctx := cmd.Context()
	if b.Protection() < backend.ProtectionTEE {
		// (TEE backends run without the cache.)
		if err := checkCacheRoot(o); err != nil {
			return err
		}
	}
	if inProcess(b) {
		// The engine's first-use work overlaps opening the host
		// resources and hashing the module (keep.WarmEngine).
		go keep.WarmEngine(o.Engine)
	}
	keys, err := hostio.VolumeKeys(cfg, o.Logger)
	if err != nil {
		return err
	}
	o.VolumeKeys = keys
	files, err := hostio.Open(ctx, cfg)
	if err != nil {
		return err
	}
	killed := processEnds && inProcess(b)
	o.Killed = o.Killed || killed
	// stop is when enarx stops waiting for the Keep: on interrupt, and,
	// when the Keep ends with this process, on --timeout (the backend
	// applies --timeout itself otherwise).
	stop := ctx
	if killed && policy.Timeout > 0 {
		var cancel context.CancelFunc
		stop, cancel = context.WithTimeoutCause(ctx, policy.Timeout, backend.ErrTimeout)
		defer cancel()
	}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := b.Run(ctx, &backend.Launch{Workload: w, Config: cfg, Files: files, Options: o, Policy: policy})
		done <- result{code, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-stop.Done():
		grace := interruptGrace
		if killed {
			grace = 0
		}
		var ok bool
		if r, ok = receive(done, grace); !ok {
			// The Keep still runs (in this process, or a backend's Keep
			// process that has not been stopped yet): it ends with this
			// process, which closes its files.
			if ctx.Err() != nil {
				return &ExitError{Code: 130}
			}
			return backend.ErrTimeout
		}
	}
	hostio.Close(files)
	code, err := r.code, r.err
	if ctx.Err() != nil {
		return &ExitError{Code: 130}
	}
	return runOutcome(code, err, cmd.ErrOrStderr())
}

// runOutcome is what enarx run returns for a Keep's exit status code and
// error err (either may come from a hostile Keep: a microVM's guest sends
// both): err itself for status 0 or 1, or for a code no process can exit
// with (an error with code 256 exited 0); else err written to stderr and
// the code; a non-portable code without an error is an error.
func runOutcome(code int, err error, stderr io.Writer) error {
	portable := code >= 0 && code <= 255
	if err != nil {
		if code == 0 || code == 1 || !portable {
			return err
		}
		fmt.Fprintf(stderr, "Error: %s\n", terminalSafe(err.Error()))
		return &ExitError{Code: code}
	}
	if !portable {
		return fmt.Errorf("keep exited with a non-portable exit code %d", code)
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// inProcess reports whether b runs the Keep inside this process
// (backend.RunInProcess): nil, snp and tdx (whose Keep is the enarx
// process in the confidential VM) and the emulated backends.
func inProcess(b backend.Backend) bool {
	switch b.(type) {
	case backend.Nil, backend.Emulated, snp.Backend, tdx.Backend:
		return true
	}
	return false
}

// receive waits up to d for a value from c; a value already there is
// taken even when d is 0.
func receive[T any](c <-chan T, d time.Duration) (T, bool) {
	select {
	case v := <-c:
		return v, true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case v := <-c:
		return v, true
	case <-t.C:
		var zero T
		return zero, false
	}
}

// memoryFlag parses --memory; a value that does not parse is a usage
// error (status 2), as a --timeout that does not parse is.
func memoryFlag(s string) (uint64, error) {
	n, err := parseSize(s)
	if err != nil {
		return 0, &usageError{fmt.Errorf("--memory: %w", err)}
	}
	return n, nil
}

// parseSize parses a byte count with an optional binary (KiB, MiB, GiB) or
// decimal-looking (K, M, G: also binary, as memory sizes usually are)
// suffix.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	for _, u := range []struct {
		suf string
		m   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSuffix(t, u.suf), u.m
			break
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(t), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("invalid size %q: use a positive number of bytes, optionally with KiB, MiB or GiB", s)
	}
	if n > (4<<30)/mult {
		return 0, fmt.Errorf("size %q is above the wasm32 maximum of 4GiB", s)
	}
	if n*mult < 64<<10 {
		return 0, fmt.Errorf("size %q is below one 64 KiB wasm page; use at least 64KiB", s)
	}
	return n * mult, nil
}
