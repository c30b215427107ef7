package microvm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/microvm/guest"
	"github.com/enarx-go/enarx/backend/microvm/internal/channel"
	snpbackend "github.com/enarx-go/enarx/backend/snp"
	tdxbackend "github.com/enarx-go/enarx/backend/tdx"
	"github.com/enarx-go/enarx/internal/platform"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/vmm"
	"github.com/enarx-go/enarx/microvm/vmm/qemu"
)

// Backend names (upstream's, plus ours for TDX).
const (
	NameKVM = "kvm"
	NameSEV = "sev"
	NameTDX = "tdx-vm"
)

// Environment variables.
const (
	// EnvAccel = "tcg" boots Keeps of the kvm backend under QEMU's
	// software emulation: for tests and CI on machines without /dev/kvm.
	// It is never chosen implicitly, and such a Keep is not isolated by
	// hardware.
	EnvAccel = vmm.EnvAccel
	// EnvVCPUs is the number of vCPUs (default 1). For sev and tdx-vm it
	// is part of the launch measurement.
	EnvVCPUs = "ENARX_VM_VCPUS"
	// EnvMemory is the VM's memory in MiB (default: the workload's
	// memory limit plus 1 GiB, at most 8 GiB; the VMM commits only what
	// the Keep touches).
	EnvMemory = "ENARX_VM_MEMORY"
	// EnvBootTimeout bounds the time from starting the VM to the Keep's
	// hello (a Go duration; default 30s with KVM, 3m under TCG).
	EnvBootTimeout = "ENARX_VM_BOOT_TIMEOUT"
)

// KeepEngine is the one wasm engine in a Keep image.
const KeepEngine = "wazero"

// SNPVCPUType is the vCPU model of sev Keeps; with the vCPU count it
// shapes the launch measurement (see `enarx platform snp measurement`).
const SNPVCPUType = "EPYC-v4"

// ErrTimeout is returned when the Keep ran longer than the policy allows.
var ErrTimeout = errors.New("the Keep ran longer than --timeout and was stopped")

// Backend is one kind of microVM Keep.
type Backend struct {
	name string
	tee  vmm.TEE
}

// The backends.
var (
	KVM = Backend{name: NameKVM, tee: vmm.TEENone}
	SEV = Backend{name: NameSEV, tee: vmm.TEESNP}
	TDX = Backend{name: NameTDX, tee: vmm.TEETDX}
)

func init() {
	backend.Register(KVM)
	backend.Register(SEV)
	backend.Register(TDX)
}

// Name implements backend.Backend.
func (b Backend) Name() string { return b.name }

// Protection implements backend.Backend: a VM boundary isolates the host
// from the workload better than a process sandbox; only a TEE also
// protects the workload from the host.
func (b Backend) Protection() backend.Protection {
	if b.tee == vmm.TEENone {
		return backend.ProtectionVM
	}
	return backend.ProtectionTEE
}

// tcgRequested reports whether the user asked for software emulation.
func tcgRequested() bool { return os.Getenv(EnvAccel) == string(vmm.AccelTCG) }

// Available implements backend.Backend: KVM (and the TEE's host support),
// or for kvm, explicitly requested software emulation.
func (b Backend) Available() bool {
	return b.hostError() == nil
}

// Unavailable implements backend.Reasoner.
func (b Backend) Unavailable() error {
	err := b.hostError()
	if err != nil && b.tee == vmm.TEENone {
		return fmt.Errorf("%w; for tests without KVM, %s=tcg emulates the CPU in software", err, EnvAccel)
	}
	return err
}

// ExplicitOnly implements backend.ExplicitOnly: a kvm Keep under software
// emulation is never chosen implicitly.
func (b Backend) ExplicitOnly() bool {
	return b.tee == vmm.TEENone && vmm.KVMAvailable(vmm.HostFS()) != nil
}

// hostError says what the host lacks for this backend.
func (b Backend) hostError() error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("microVM Keeps need an x86-64 host (this is %s): the Keep image and QEMU's q35 machine are x86-64", runtime.GOARCH)
	}
	fsys := vmm.HostFS()
	switch b.tee {
	case vmm.TEESNP:
		if err := vmm.KVMAvailable(fsys); err != nil {
			return err
		}
		return vmm.SNPHost(fsys)
	case vmm.TEETDX:
		if err := vmm.KVMAvailable(fsys); err != nil {
			return err
		}
		return vmm.TDXHost(fsys)
	}
	if tcgRequested() {
		return nil
	}
	return vmm.KVMAvailable(fsys)
}

// Configured implements backend.Backend: QEMU new enough for the TEE, a
// Keep image, and the TEE's firmware.
func (b Backend) Configured() error {
	_, err := b.resolve(context.Background())
	return err
}

// setup is what a launch needs from the host.
type setup struct {
	qemu     *qemu.Info
	img      *image.Image
	firmware string
}

// resolved remembers a successful resolve for the process: selection
// (Configured) and Run both need it, and checking the image hashes its
// 20-odd MB.
var resolved struct {
	sync.Mutex
	m map[string]*setup
}

func (b Backend) resolve(ctx context.Context) (*setup, error) {
	key := b.name
	for _, e := range []string{image.EnvImage, qemu.EnvQEMU, "ENARX_SNP_FIRMWARE", "ENARX_TDX_FIRMWARE", "XDG_DATA_HOME", "PATH"} {
		key += "\x00" + os.Getenv(e)
	}
	resolved.Lock()
	st := resolved.m[key]
	resolved.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := b.resolveNow(ctx)
	if err != nil {
		return nil, err
	}
	resolved.Lock()
	if resolved.m == nil {
		resolved.m = map[string]*setup{}
	}
	resolved.m[key] = st
	resolved.Unlock()
	return st, nil
}

func (b Backend) resolveNow(ctx context.Context) (*setup, error) {
	info, err := qemu.ProbeCached(ctx, "")
	if err != nil {
		return nil, err
	}
	switch {
	case b.tee == vmm.TEESNP && !info.SupportsSNP():
		return nil, fmt.Errorf("QEMU %s at %s cannot launch SEV-SNP guests: install QEMU %s or newer (or set %s)", info.Version, info.Path, qemu.MinSNP, qemu.EnvQEMU)
	case b.tee == vmm.TEETDX && !info.SupportsTDX():
		return nil, fmt.Errorf("QEMU %s at %s cannot launch TDX guests: install QEMU %s or newer (or set %s)", info.Version, info.Path, qemu.MinTDX, qemu.EnvQEMU)
	}
	img, err := image.Locate()
	if err != nil {
		return nil, err
	}
	s := &setup{qemu: info, img: img}
	if b.tee != vmm.TEENone {
		if s.firmware, err = vmm.FindFirmware(b.tee); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Run implements backend.Backend: it boots the Keep image, serves the
// channel until the Keep reports its exit status, and stops the VM.
func (b Backend) Run(ctx context.Context, l *backend.Launch) (int, error) {
	log := l.Options.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	accel, err := b.accel(ctx, l, log)
	if err != nil {
		return 1, err
	}
	st, err := b.resolve(ctx)
	if err != nil {
		return 1, err
	}
	spec, err := b.spec(st, accel, l.Options.MemoryLimit, log)
	if err != nil {
		return 1, err
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 1, fmt.Errorf("creating the Keep's channel: %w", err)
	}
	hostEnd := os.NewFile(uintptr(fds[0]), "keep-channel")
	spec.Channels = []vmm.Channel{{Name: guest.PortName, File: os.NewFile(uintptr(fds[1]), "keep-channel-vm")}}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if t := l.Policy.Timeout; t > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeoutCause(runCtx, t, ErrTimeout)
		defer stop()
	}
	started := time.Now()
	vm, err := (qemu.Launcher{Binary: st.qemu.Path, Logger: log}).Start(runCtx, spec)
	if err != nil {
		hostEnd.Close()
		return 1, err
	}
	defer func() {
		vm.Kill()
		vm.Wait()
	}()
	log.Debug("microVM Keep started", "backend", b.name, "pid", vm.Pid(), "accel", accel, "vcpus", spec.VCPUs, "memory_mib", spec.MemoryMiB)
	s, err := b.newSession(hostEnd, l, accel, spec, log)
	if err != nil {
		return 1, err
	}
	vmExited := make(chan error, 1)
	console, _ := spec.Console.(*lineLogger)
	go func() {
		err := vm.Wait()
		vmExited <- err
		// The channel's end tells the session; this names the cause if
		// the Keep never said goodbye.
		cancel(vmStopped(err, console))
	}()
	code, err := s.run(runCtx, b.watchBoot(runCtx, cancel, accel, started, log))
	code, err = ending(runCtx, s, vmExited, console, code, err)
	log.Debug("microVM Keep ended", "after", time.Since(started).Round(time.Millisecond), "code", code)
	return code, err
}

// accel checks that l can run on this backend here and returns how the
// VM is accelerated: KVM, or software emulation when asked for (kvm
// only, and never under --require-isolation).
func (b Backend) accel(ctx context.Context, l *backend.Launch, log *slog.Logger) (vmm.Accel, error) {
	if l.Options.Evidence != nil {
		return "", fmt.Errorf("the %s backend produces its evidence inside the Keep; it takes no evidence provider", b.name)
	}
	if e := l.Options.Engine; e != "" && e != KeepEngine {
		return "", fmt.Errorf("--engine %s: a microVM Keep runs the %s engine only (its /init is built without cgo, so the image stays pure Go and reproducible); use --engine %s or another backend", e, KeepEngine, KeepEngine)
	}
	if !tcgRequested() {
		return vmm.AccelKVM, b.hostError()
	}
	if b.tee != vmm.TEENone {
		return "", fmt.Errorf("%s=tcg: a %s Keep needs KVM and the TEE; software emulation is for the kvm backend only", EnvAccel, b.name)
	}
	if l.Policy.RequireIsolation {
		return "", fmt.Errorf("--require-isolation: %s=tcg runs the Keep under software emulation, which hardware virtualization does not isolate; unset it on a machine with /dev/kvm", EnvAccel)
	}
	log.Warn("microVM Keep under software emulation (ENARX_VM_ACCEL=tcg): it is NOT isolated by hardware virtualization; use this for tests only")
	return vmm.AccelTCG, nil
}

// newSession is the host's side of the Keep's channel for l: with the
// Steward it may reach, the module's compilation cache (kvm Keeps only)
// and the TEE's collateral.
func (b Backend) newSession(hostEnd *os.File, l *backend.Launch, accel vmm.Accel, spec vmm.Spec, log *slog.Logger) (*session, error) {
	s := newSession(hostEnd, l, log)
	s.stewardAddr = l.StewardAddr()
	if accel == vmm.AccelTCG {
		// Emulated, the Keep compiles 10–20 times slower (a 3 MB Go
		// module: 2–4 s natively, 40–90 s under TCG on two busy cores).
		s.compileSlowdown = tcgCompileSlowdown
	}
	if b.tee == vmm.TEENone && !l.Options.NoCache {
		eng := l.Options.Engine
		if eng == "" {
			eng = "default"
		}
		if dir, err := moduleCacheDir(l.Options.CacheDir, string(accel)+"-"+spec.CPU+"-"+eng, l.Options.CacheScope, l.Workload); err == nil {
			s.cacheDir = dir
		} else {
			log.Warn("microVM: no compilation cache", "err", err)
		}
	}
	var err error
	if s.collateral, err = collateral(b.tee, log); err != nil {
		return nil, err
	}
	return s, nil
}

// watchBoot returns the channel on which the session reports the Keep's
// hello; without one within the boot timeout it cancels the run.
func (b Backend) watchBoot(runCtx context.Context, cancel context.CancelCauseFunc, accel vmm.Accel, started time.Time, log *slog.Logger) chan<- channel.Hello {
	booted := make(chan channel.Hello, 1)
	bootTimeout := bootTimeout(accel)
	go func() {
		t := time.NewTimer(bootTimeout)
		defer t.Stop()
		select {
		case h := <-booted:
			log.Debug("microVM Keep booted", "after", time.Since(started).Round(time.Millisecond), "tee", h.TEE, "keep", h.Keep)
			if b.tee == vmm.TEESNP && h.TEE != "snp" || b.tee == vmm.TEETDX && h.TEE != "tdx" {
				log.Warn("microVM: the Keep did not find the TEE it was launched in; its Steward will refuse it", "expected", b.tee.String(), "found", h.TEE)
			}
		case <-t.C:
			cancel(fmt.Errorf("the Keep did not start within %v (set %s to wait longer; run with --log-level debug to see its console)", bootTimeout, EnvBootTimeout))
		case <-runCtx.Done():
		}
	}()
	return booted
}

// ending is the run's outcome once the session is over: the Keep's exit
// status, or why it sent none (a timeout, the boot timeout, an interrupt,
// the VM's end). A Keep that sent its status is given a moment to power
// off.
func ending(runCtx context.Context, s *session, vmExited <-chan error, console *lineLogger, code int, err error) (int, error) {
	if err != nil && !s.exitReceived() {
		if cause := context.Cause(runCtx); cause != nil {
			return 1, cause
		}
		// The channel usually ends before the VM's exit is seen: say why.
		select {
		case werr := <-vmExited:
			return 1, vmStopped(werr, console)
		case <-time.After(2 * time.Second):
		}
	}
	if s.exitReceived() {
		select {
		case <-vmExited:
		case <-time.After(5 * time.Second):
		}
	}
	return code, err
}

// tcgCompileSlowdown is the compile deadline's multiplier for a Keep under
// TCG (keep.Options.CompileSlowdown).
const tcgCompileSlowdown = 20

// initDiedOfGo is the kernel's panic when /init exits with status 2, the
// Go runtime's for an unhandled panic or a fatal error.
const initDiedOfGo = "Attempted to kill init! exitcode=0x00000200"

// vmStopped is the error for a VM that stopped without an exit status,
// with the last lines of its console (the kernel's panic, or what the
// Keep's init printed as it died) when there are any.
func vmStopped(err error, console *lineLogger) error {
	if err == nil {
		err = errors.New("it powered off or its kernel panicked")
	}
	if notable, last := console.lines(); len(last) > 0 {
		if slices.ContainsFunc(notable, func(l string) bool { return strings.Contains(l, initDiedOfGo) }) {
			// The message and stacks went to /init's stderr: the
			// console of a Keep without a TEE, nowhere in a TEE
			// (guest.quietCrashOutput).
			err = fmt.Errorf("%w; the Keep's Go runtime ended it: an unhandled panic or a fatal error such as running out of memory or stack; "+
				"a Keep in a TEE keeps the message inside, one without a TEE prints it on the console before the kernel's panic", err)
		}
		if len(notable) > 0 {
			return fmt.Errorf("the Keep's VM stopped before the Keep reported an exit status (%w); its console said %q and ended with %q (--log-level debug shows all of it)", err, notable, last)
		}
		return fmt.Errorf("the Keep's VM stopped before the Keep reported an exit status (%w); its console ended with %q (--log-level debug shows all of it)", err, last)
	}
	return fmt.Errorf("the Keep's VM stopped before the Keep reported an exit status (%w); run with --log-level debug to see its console", err)
}

// spec is the VM for a launch.
func (b Backend) spec(st *setup, accel vmm.Accel, memLimit uint64, log *slog.Logger) (vmm.Spec, error) {
	vcpus, err := envInt(EnvVCPUs, 1, 1, vmm.MaxVCPUs)
	if err != nil {
		return vmm.Spec{}, err
	}
	if memLimit == 0 {
		memLimit = keep.DefaultMemoryLimit
	}
	mem, err := envInt(EnvMemory, int(min(memLimit>>20+1024, 8192)), vmm.MinMemoryMiB, vmm.MaxMemoryMiB)
	if err != nil {
		return vmm.Spec{}, err
	}
	spec := vmm.Spec{
		Kernel:    st.img.KernelPath,
		Initrd:    st.img.InitrdPath,
		Cmdline:   st.img.Manifest.Cmdline,
		Firmware:  st.firmware,
		MemoryMiB: mem,
		VCPUs:     vcpus,
		Accel:     accel,
		TEE:       b.tee,
		Console:   consoleLog(log),
	}
	switch b.tee {
	case vmm.TEESNP:
		spec.CPU = SNPVCPUType
		snp := &vmm.SNP{KernelHashes: true}
		if c, r, ok := vmm.SNPFromCPUID(hostCPUID); ok {
			snp.CBitPos, snp.ReducedPhysBits = c, r
		}
		spec.SNP = snp
	case vmm.TEETDX:
		spec.TDX = &vmm.TDX{SeptVEDisable: true}
	default:
		if accel == vmm.AccelTCG {
			spec.CPU = "max"
		} else {
			spec.CPU = "host"
		}
	}
	return spec, nil
}

func envInt(name string, def, lo, hi int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s=%q: want a number from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func bootTimeout(accel vmm.Accel) time.Duration {
	if v := os.Getenv(EnvBootTimeout); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
	}
	if accel == vmm.AccelTCG {
		return 3 * time.Minute
	}
	return 30 * time.Second
}

// consoleLog sends the guest's console to debug logs, one line each, and
// keeps for the error of a VM that stops without an exit status its last
// lines and the first few that say why a Keep dies (a kernel panic, the
// OOM killer, a Go runtime panic or fatal error of the Keep's init), which
// a panic's register dump or a goroutine trace pushes out of the tail. It
// is written by the guest: untrusted text, logged as a quoted value and
// quoted in errors, and bounded (consoleTailLines and consoleNotable lines
// of at most consoleLineBytes bytes).
func consoleLog(log *slog.Logger) *lineLogger {
	return &lineLogger{log: log}
}

const (
	consoleTailLines = 4
	consoleNotable   = 5
	consoleLineBytes = 200
)

// consoleNotableMarks mark the console lines that say why a Keep died:
// the kernel's panic and, before it, an oops's first lines (what went
// wrong and where: "BUG: unable to handle page fault …", "Oops: …",
// "RIP: 0010:function+0x…"), the kernel's OOM killer, the Go runtime's
// panics and fatal errors.
var consoleNotableMarks = []string{"Kernel panic - not syncing", "BUG: ", "kernel BUG at", "Oops: ", "general protection fault", "RIP: ", "Out of memory", "panic: ", "fatal error: "}

type lineLogger struct {
	mu            sync.Mutex
	log           *slog.Logger
	tail, notable []string
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if line := bytes.TrimRight(sc.Bytes(), "\r"); len(line) > 0 {
			w.log.Debug("keep console", "line", string(line))
			kept := string(line[:min(len(line), consoleLineBytes)])
			if len(w.tail) == consoleTailLines {
				w.tail = append(w.tail[:0], w.tail[1:]...)
			}
			w.tail = append(w.tail, kept)
			if len(w.notable) < consoleNotable && slices.ContainsFunc(consoleNotableMarks, func(m string) bool { return bytes.Contains(line, []byte(m)) }) {
				w.notable = append(w.notable, kept)
			}
		}
	}
	return len(p), nil
}

// lines is the console's notable lines and its last ones, each oldest
// first (none for a nil w).
func (w *lineLogger) lines() (notable, last []string) {
	if w == nil {
		return nil, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.notable), slices.Clone(w.tail)
}

// moduleCacheDir is the host directory of one module's compilation cache
// for one VM shape and cache scope (keep.Options.CacheScope):
// <cache>/microvm/<shape>/<sha256 of the module>, and for a non-empty
// scope <sha256 of the module>-<scope tag> (backend.CacheDirName). The Keep fills it with
// the code it compiled, and gets it back on later runs of the same module
// in the same scope: a guest whose workload escaped wasm can send back
// machine code for those runs only, never for another scope's (another
// Kubernetes namespace's under the containerd shim). Only kvm Keeps use
// it (their host can read and change the guest anyway); a Keep in a TEE
// never runs code from its host.
func moduleCacheDir(base, shape, scope string, w keepWorkload) (string, error) {
	key := w.Wasm
	if key == nil {
		// A registry bundle: the host does not look inside (the Keep
		// verifies it); the whole bundle is the key.
		key = w.Bundle
	}
	if base == "" {
		d, err := keep.DefaultCacheDir()
		if err != nil {
			return "", err
		}
		base = d
	}
	sum := sha256.Sum256(key)
	dir := filepath.Join(base, "microvm", shape, backend.CacheDirName(hex.EncodeToString(sum[:]), scope))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	return dir, nil
}

// exitReceived reports whether the Keep sent its exit status.
func (s *session) exitReceived() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exited
}

type (
	keepWorkload = keep.Workload
	keepOptions  = keep.Options
)

// hostCPUID is the host's CPUID (nil off x86-64).
var hostCPUID = platform.HostCPUID

// maxCollateralFiles bounds what is read from a collateral cache.
const maxCollateralFiles = 32

// collateral reads the host's collateral cache for the TEE's evidence:
// the SEV-SNP VCEK and AMD CRLs (`enarx platform snp fetch` fills it) or
// the TDX collateral. The host only transports it; the Steward verifies
// it. Missing files are not an error here: the Keep's evidence provider
// says what is missing.
func collateral(tee vmm.TEE, log *slog.Logger) (map[string][]byte, error) {
	var dir string
	switch tee {
	case vmm.TEESNP:
		dir = snpbackend.CacheDir()
	case vmm.TEETDX:
		dir = tdxbackend.CacheDir()
	default:
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		log.Warn("microVM: no collateral cache for the Keep's evidence", "dir", dir, "err", err)
		return nil, nil
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if len(out) >= maxCollateralFiles {
			break
		}
		if !e.Type().IsRegular() || !channel.ValidFileName(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil || len(b) > 4<<20 {
			continue
		}
		out[e.Name()] = b
	}
	return out, nil
}
