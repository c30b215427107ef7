// Package platform reports what this machine can do for each Keep backend:
// `enarx platform info`. Each backend gets rows of probes (device files,
// kernel parameters, CPUID leaves, cached collateral, kernel confinement
// features) and hints that say what to fix.
//
// It reads the machine through an Env (a root directory, a CPUID function
// and the backend registry), so that tests can fake every platform. It
// trusts nothing it reads: probes only report.
package platform

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/sandbox"
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
	Backends   []Backend
}

// Env is how probes see the machine.
type Env struct {
	// FS is the machine's file system root (os.DirFS("/") normally).
	FS fs.FS
	// CPUID executes CPUID; nil means the CPU has none (not x86).
	CPUID func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
	// SystemInfo is the uname line.
	SystemInfo string
	// Registered lists the backends this build can run (backend.All).
	Registered []backend.Backend
	// Sandbox probes the kernel features the sandbox backend uses.
	Sandbox func() []sandbox.Capability
	// MemlockLimit is RLIMIT_MEMLOCK's soft limit (SEV needs it).
	MemlockLimit uint64
}

// HostEnv is the Env of the running machine.
func HostEnv() Env {
	return Env{
		FS:           os.DirFS("/"),
		CPUID:        HostCPUID,
		SystemInfo:   systemInfo(),
		Registered:   backend.All(),
		Sandbox:      sandbox.Probe,
		MemlockLimit: memlockLimit(),
	}
}

// Collect probes every backend, in upstream's order (sgx, sev, kvm) followed
// by this implementation's backends (snp and tdx guests, sandbox, nil, and
// any other registered backend).
func Collect(version string, env Env) *Report {
	r := &Report{Version: version, SystemInfo: env.SystemInfo}
	r.Backends = append(r.Backends, sgxBackend(env), sevBackend(env), kvmBackend(env),
		snpGuestBackend(env), tdxGuestBackend(env), sandboxBackend(env), nilBackend(env))
	seen := map[string]bool{}
	for _, b := range r.Backends {
		seen[b.Name] = true
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
	Backend string      `json:"backend"`
	Pass    bool        `json:"pass"`
	Data    []jsonDatum `json:"data"`
	Config  []jsonDatum `json:"config"`
}

type jsonReport struct {
	Version    string        `json:"version"`
	SystemInfo string        `json:"system_info"`
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
	jr := jsonReport{Version: r.Version, SystemInfo: r.SystemInfo, Backends: []jsonBackend{}}
	for _, b := range r.Backends {
		jr.Backends = append(jr.Backends, jsonBackend{Backend: b.Name, Pass: b.Pass(), Data: toJSON(b.Data), Config: toJSON(b.Config)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(jr)
}
