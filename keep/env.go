package keep

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/enarx-go/enarx/config"
)

// Bounds of Options.Env, which comes from the host: it crosses into the
// sandbox and microVM Keeps inside their 64 KiB launch messages, next to
// the args.
const (
	// MaxEnvEntries bounds the number of Options.Env entries.
	MaxEnvEntries = 1024
	// MaxEnvBytes bounds the size of Options.Env: the entries' lengths
	// plus one each (a C environment block's NULs).
	MaxEnvBytes = 32 << 10
)

// ValidateEnv checks Options.Env: every entry is "NAME=value" with a
// non-empty NAME (the name ends at the first '='), no NUL anywhere, and
// the whole within MaxEnvEntries and MaxEnvBytes. Run calls it; a host may
// call it first to refuse bad input before it starts a Keep.
func ValidateEnv(env []string) error {
	if len(env) > MaxEnvEntries {
		return fmt.Errorf("the host's environment for the workload has %d entries, more than the %d allowed", len(env), MaxEnvEntries)
	}
	size := 0
	for i, kv := range env {
		size += len(kv) + 1
		if size > MaxEnvBytes {
			return fmt.Errorf("the host's environment for the workload is more than the %d bytes allowed (at entry %d)", MaxEnvBytes, i)
		}
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" {
			return fmt.Errorf("the host's environment entry %d (%.64q) is not NAME=value with a non-empty NAME", i, kv)
		}
		if strings.IndexByte(kv, 0) >= 0 {
			return fmt.Errorf("the host's environment entry %d (%.64q) contains a NUL character", i, kv)
		}
	}
	return nil
}

// environ is the workload's environment: FD_COUNT and FD_NAMES, the
// config's [env] (as upstream; a user FD_COUNT is a second entry, not an
// override), then the host's extra (Options.Env, validated) without the
// names [env] sets and without FD_COUNT and FD_NAMES, which the Keep
// derives from [[files]] — Enarx.toml, which the Keep's certificate
// covers, wins over the host (a second FD_NAMES from the host would be
// what a workload that reads environ last-wins, such as Rust's
// env::vars() collected into a map, takes as its fd map) — and with the
// last of a name extra repeats, as os/exec takes it.
func environ(cfg *config.Config, extra []string) []string {
	env := []string{
		"FD_COUNT=" + strconv.Itoa(len(cfg.Files)),
		"FD_NAMES=" + strings.Join(cfg.FDNames(), ":"),
	}
	fromConfig := make(map[string]bool, len(cfg.Env)+2)
	fromConfig["FD_COUNT"], fromConfig["FD_NAMES"] = true, true
	for _, e := range cfg.Env {
		env = append(env, e.Name+"="+e.Value)
		fromConfig[e.Name] = true
	}
	last := make(map[string]int, len(extra))
	for i, kv := range extra {
		name, _, _ := strings.Cut(kv, "=")
		last[name] = i
	}
	for i, kv := range extra {
		name, _, _ := strings.Cut(kv, "=")
		if !fromConfig[name] && last[name] == i {
			env = append(env, kv)
		}
	}
	return env
}
