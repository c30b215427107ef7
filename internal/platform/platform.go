// Package platform reports what this machine can do for each Keep backend:
// `enarx platform info`. Each backend gets rows of probes (device files,
// kernel parameters, CPUID leaves, the QEMU binary, Keep image and firmware
// of the microVM backends, cached collateral, kernel confinement features)
// and hints that say what to fix.
//
// It reads the machine through an Env (a root directory, a CPUID function,
// the environment, the backends' own probe functions and the backend
// registry), so that tests can fake every platform. For the backends this
// build runs, the rows come from the same checks the backends make, so the
// report and `enarx run` agree. It trusts nothing it reads: probes only
// report.
package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/sandbox"
	snpbackend "github.com/enarx-go/enarx/backend/snp"
	tdxbackend "github.com/enarx-go/enarx/backend/tdx"
	"github.com/enarx-go/enarx/evidence/tsm"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/vmm"
	"github.com/enarx-go/enarx/microvm/vmm/qemu"
)

// Datum is one probe row. Data holds nested detail rows.
type Datum struct {
	Name string
	Pass bool
	// Info is shown after the name ("Driver: /dev/sev").
	Info string
	// Mesg is a hint printed after the backend's rows.
	Mesg string
	Data []Datum
}

// Backend is the report for one backend. It works when every top-level
// Data row (what the machine has) and Config row (how it is set up)
// passes; a parent row's Pass gives the verdict on its nested detail.
type Backend struct {
	Name   string
	Data   []Datum
	Config []Datum
	// Protection says what the backend's Keeps are protected from; not a
	// probe row (it does not change Pass).
	Protection Protection
}

// Protection is what a backend's Keeps are protected from: whether the
// workload is protected from this host (its OS, hypervisor, operator and
// the enarx process), and in which words.
type Protection struct {
	// Level is "tee", "vm", "sandbox", "none" or "emulated".
	Level string
	// FromHost is true only for hardware TEEs.
	FromHost bool
	// Info is the sentence shown to the user.
	Info string
}

// protectionOf describes level l (backend.Backend.Protection).
func protectionOf(l backend.Protection) Protection {
	switch {
	case l >= backend.ProtectionTEE:
		return Protection{Level: "tee", FromHost: true,
			Info: "hardware (a TEE: memory the host can neither read nor change, proven by attestation)"}
	case l >= backend.ProtectionVM:
		return Protection{Level: "vm",
			Info: "none (a VM of its own protects the host from the workload; the host can read and change the Keep)"}
	case l >= backend.ProtectionSandbox:
		return Protection{Level: "sandbox",
			Info: "none (a confined process protects the host from the workload; the host can read and change the Keep)"}
	case l >= backend.ProtectionNone:
		return Protection{Level: "none",
			Info: "none (the workload runs inside the enarx process: for development)"}
	default:
		return Protection{Level: "emulated",
			Info: "none (emulated TEE evidence signed by a test key: for development)"}
	}
}

// knownProtection is the protection of the backends the report probes
// itself, whether or not this build registers them.
var knownProtection = map[string]backend.Protection{
	"sgx": backend.ProtectionTEE, "sev": backend.ProtectionTEE, "tdx-vm": backend.ProtectionTEE,
	"snp": backend.ProtectionTEE, "tdx": backend.ProtectionTEE,
	"kvm": backend.ProtectionVM, "sandbox": backend.ProtectionSandbox, "nil": backend.ProtectionNone,
}

// Pass reports whether the backend can run Keeps here.
func (b Backend) Pass() bool { return allPass(b.Data) && allPass(b.Config) }

func allPass(ds []Datum) bool {
	for _, d := range ds {
		if !d.Pass {
			return false
		}
	}
	return true
}

// Report is the whole platform report.
type Report struct {
	Version    string
	SystemInfo string
	// Engines are the wasm engines this binary has, its default first.
	Engines  []string
	Backends []Backend
}

// Env is how probes see the machine. Every probe of a backend this build
// runs goes through that backend's own check (the microVM backends'
// microvm/vmm host checks, qemu.Probe, image.Locate and
// vmm.FindFirmwareIn; the guest backends' GuestCheck), reached through
// these fields, so the report and the backend cannot disagree.
type Env struct {
	// FS is the machine's file system root (os.DirFS("/") normally). When it
	// implements vmm.ReadWriteChecker, the /dev/kvm rows also check that
	// /dev/kvm opens read-write, as the microVM backends do.
	FS fs.FS
	// CPUID executes CPUID; nil means the CPU has none (not x86).
	CPUID func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
	// SystemInfo is the uname line.
	SystemInfo string
	// Registered lists the backends this build can run (backend.All).
	Registered []backend.Backend
	// Engines lists the wasm engines this build has (keep.Engines).
	Engines []string
	// Sandbox probes the kernel features the sandbox backend uses.
	Sandbox func() []sandbox.Capability
	// Getenv reads the environment (os.Getenv); nil means nothing is set.
	Getenv func(string) string
	// QEMU probes the QEMU binary the microVM backends launch (qemu.Probe
	// of the default binary); nil means there is none.
	QEMU func() (*qemu.Info, error)
	// KeepImage finds the Keep image the microVM backends boot
	// (image.Locate); nil means there is none.
	KeepImage func() (*image.Image, error)
	// TSMProvider reads the configfs-tsm report provider
	// ((&tsm.Source{}).ProviderName); nil means it cannot be read.
	TSMProvider func() (string, error)
	// SNPCacheDir and TDXCacheDir are the absolute collateral cache
	// directories (snpbackend.CacheDir, tdxbackend.CacheDir); "" means
	// the defaults, /var/cache/amd-sev and /var/cache/intel-tdx.
	SNPCacheDir, TDXCacheDir string
}

// HostEnv is the Env of the running machine.
func HostEnv() Env {
	return Env{
		FS:          hostRoot(),
		CPUID:       HostCPUID,
		SystemInfo:  systemInfo(),
		Registered:  backend.All(),
		Engines:     keep.Engines(),
		Sandbox:     sandbox.Probe,
		Getenv:      os.Getenv,
		QEMU:        func() (*qemu.Info, error) { return qemu.ProbeCached(context.Background(), "") },
		KeepImage:   image.Locate,
		TSMProvider: (&tsm.Source{}).ProviderName,
		SNPCacheDir: absDir(snpbackend.CacheDir()),
		TDXCacheDir: absDir(tdxbackend.CacheDir()),
	}
}

func absDir(d string) string {
	if a, err := filepath.Abs(d); err == nil {
		return a
	}
	return d
}

// hostRoot is the machine's root directory for probes: os.DirFS("/"),
// whose Stat looks at a file without opening it (a socket cannot be
// opened, a device should not be), plus the read-write check of
// vmm.HostFS, so that the /dev/kvm rows are the microVM backends' own
// check.
func hostRoot() fs.FS {
	root := os.DirFS("/")
	r, ok := root.(rootFS)
	if !ok {
		return root
	}
	if rw, ok := vmm.HostFS().(vmm.ReadWriteChecker); ok {
		return hostFS{r, rw}
	}
	return root
}

type rootFS interface {
	fs.StatFS
	fs.ReadFileFS
	fs.ReadDirFS
}

type hostFS struct {
	rootFS
	vmm.ReadWriteChecker
}

// memoized returns env with each expensive probe run at most once (the
// microVM backends share the QEMU probe and the Keep image).
func (e Env) memoized() Env {
	if e.QEMU != nil {
		e.QEMU = sync.OnceValues(e.QEMU)
	}
	if e.KeepImage != nil {
		e.KeepImage = sync.OnceValues(e.KeepImage)
	}
	if e.TSMProvider != nil {
		e.TSMProvider = sync.OnceValues(e.TSMProvider)
	}
	return e
}

// Collect probes every backend, in upstream's order (sgx, sev, kvm)
// followed by this implementation's backends (tdx-vm, the snp and tdx
// guests, sandbox, nil, and any other registered backend).
func Collect(version string, env Env) *Report {
	env = env.memoized()
	r := &Report{Version: version, SystemInfo: env.SystemInfo, Engines: env.Engines}
	r.Backends = append(r.Backends, sgxBackend(env), sevBackend(env), kvmBackend(env), tdxVMBackend(env),
		snpGuestBackend(env), tdxGuestBackend(env), sandboxBackend(env), nilBackend(env))
	seen := map[string]bool{}
	for i, b := range r.Backends {
		seen[b.Name] = true
		r.Backends[i].Protection = protectionOf(knownProtection[b.Name])
	}
	for _, b := range env.Registered {
		if !seen[b.Name()] {
			r.Backends = append(r.Backends, registeredBackend(b))
		}
	}
	return r
}

// Colors for a terminal; empty strings when not a TTY.
type Colors struct{ Pass, Fail, Reset string }

// TTYColors are ANSI green/red.
var TTYColors = Colors{Pass: "\x1b[32m", Fail: "\x1b[31m", Reset: "\x1b[0m"}

// WriteText prints the report in upstream's layout: a ✔/✗ header per
// backend, its rows indented (nested rows further in), then its hints.
func (r *Report) WriteText(w io.Writer, c Colors) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Enarx version %s\n", r.Version)
	fmt.Fprintf(&b, "System Info: %s\n", r.SystemInfo)
	if len(r.Engines) > 0 {
		fmt.Fprintf(&b, "Engines: %s (default), in every Keep this binary runs itself (nil, sandbox)\n", strings.Join(r.Engines, ", "))
	}
	icon := func(pass bool) string {
		if pass {
			return c.Pass + "✔" + c.Reset
		}
		return c.Fail + "✗" + c.Reset
	}
	var rows func(ds []Datum, depth int, hints *[]string)
	rows = func(ds []Datum, depth int, hints *[]string) {
		for _, d := range ds {
			line := "  " + icon(d.Pass) + " " + strings.Repeat(" ", depth) + d.Name
			if d.Info != "" {
				line += ": " + d.Info
			}
			b.WriteString(line + "\n")
			if d.Mesg != "" {
				*hints = append(*hints, d.Mesg)
			}
			rows(d.Data, depth+1, hints)
		}
	}
	for _, be := range r.Backends {
		fmt.Fprintf(&b, "%s Backend: %s\n", icon(be.Pass()), be.Name)
		if be.Protection.Info != "" {
			fmt.Fprintf(&b, "  Protection from this host: %s\n", be.Protection.Info)
		}
		var hints []string
		rows(be.Data, 0, &hints)
		rows(be.Config, 0, &hints)
		if len(hints) > 0 {
			b.WriteString("\n")
			for _, h := range hints {
				b.WriteString("  " + h + "\n")
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

type jsonDatum struct {
	Name string      `json:"name"`
	Pass bool        `json:"pass"`
	Info *string     `json:"info"`
	Mesg *string     `json:"mesg"`
	Data []jsonDatum `json:"data"`
}

type jsonBackend struct {
	Backend    string          `json:"backend"`
	Pass       bool            `json:"pass"`
	Protection *jsonProtection `json:"protection"`
	Data       []jsonDatum     `json:"data"`
	Config     []jsonDatum     `json:"config"`
}

type jsonProtection struct {
	Level    string `json:"level"`
	FromHost bool   `json:"from_host"`
	Info     string `json:"info"`
}

type jsonReport struct {
	Version    string        `json:"version"`
	SystemInfo string        `json:"system_info"`
	Engines    []string      `json:"engines"`
	Backends   []jsonBackend `json:"backends"`
}

func strOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toJSON(ds []Datum) []jsonDatum {
	out := make([]jsonDatum, 0, len(ds))
	for _, d := range ds {
		out = append(out, jsonDatum{Name: d.Name, Pass: d.Pass, Info: strOrNull(d.Info), Mesg: strOrNull(d.Mesg), Data: toJSON(d.Data)})
	}
	return out
}

// WriteJSON prints upstream's JSON shape, fixed: absent info/mesg are JSON
// null (upstream writes the string "null"), config rows are included and
// each backend says whether it passes.
func (r *Report) WriteJSON(w io.Writer) error {
	jr := jsonReport{Version: r.Version, SystemInfo: r.SystemInfo, Engines: append([]string{}, r.Engines...), Backends: []jsonBackend{}}
	for _, b := range r.Backends {
		jb := jsonBackend{Backend: b.Name, Pass: b.Pass(), Data: toJSON(b.Data), Config: toJSON(b.Config)}
		if p := b.Protection; p.Info != "" {
			jb.Protection = &jsonProtection{Level: p.Level, FromHost: p.FromHost, Info: p.Info}
		}
		jr.Backends = append(jr.Backends, jb)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jr)
}
