package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/enarx-go/enarx/internal/atomicfile"
)

// Binary is the QEMU system emulator's name.
const Binary = "qemu-system-x86_64"

// EnvQEMU overrides where the QEMU binary is.
const EnvQEMU = "ENARX_QEMU"

// installHint says how to get QEMU.
const installHint = "install QEMU (`apt-get install qemu-system-x86` on Debian/Ubuntu, `dnf install qemu-system-x86-core` on Fedora) or set " + EnvQEMU + " to its path"

// Minimum QEMU versions for confidential VMs: the sev-snp-guest object
// arrived in 9.1 and tdx-guest in 10.1 (their QAPI "Since:" tags).
var (
	MinSNP = Version{9, 1, 0}
	MinTDX = Version{10, 1, 0}
)

// Version is a QEMU release. Development snapshots are x.y.50 and release
// candidates of the next release x.y.90 and up; they compare below that
// release, so a feature gate never admits a snapshot.
type Version struct{ Major, Minor, Micro int }

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Micro) }

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Micro < w.Micro
}

// AtLeast reports whether v is w or newer.
func (v Version) AtLeast(w Version) bool { return !v.Less(w) }

// maxComponent bounds each version number; QEMU's are small.
const maxComponent = 9999

// ParseVersion reads the version from `qemu-system-x86_64 --version`
// output: the first line that has "version " followed by
// MAJOR.MINOR[.MICRO], e.g. "QEMU emulator version 7.2.22 (Debian
// 1:7.2+dfsg-7+deb12u18+b3)".
func ParseVersion(out string) (Version, error) {
	for _, line := range strings.Split(out, "\n") {
		i := strings.Index(line, "version ")
		if i < 0 {
			continue
		}
		rest := line[i+len("version "):]
		if j := strings.IndexAny(rest, " \t\r("); j >= 0 {
			rest = rest[:j]
		}
		v, err := parseTriple(rest)
		if err != nil {
			return Version{}, fmt.Errorf("QEMU version %q: %w", truncate(rest, 40), err)
		}
		return v, nil
	}
	return Version{}, fmt.Errorf("no QEMU version in %q", truncate(out, 80))
}

func parseTriple(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, errors.New("want MAJOR.MINOR[.MICRO]")
	}
	var n [3]int
	for i, p := range parts {
		if p == "" || len(p) > 4 || strings.TrimLeft(p, "0123456789") != "" {
			return Version{}, fmt.Errorf("%q is not a number up to %d", p, maxComponent)
		}
		x, err := strconv.Atoi(p)
		if err != nil {
			return Version{}, err
		}
		n[i] = x
	}
	return Version{n[0], n[1], n[2]}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Info is what Probe learnt of a QEMU binary.
type Info struct {
	// Path is the binary's absolute path.
	Path string
	// Version is its release.
	Version Version
	// Banner is the first line of its --version output.
	Banner string
	// Sandbox reports that the binary accepts the -sandbox options the
	// launcher uses (QEMU built with libseccomp).
	Sandbox bool
}

// SupportsSNP reports whether this QEMU can start SEV-SNP VMs (>= 9.1).
func (i *Info) SupportsSNP() bool { return i.Version.AtLeast(MinSNP) }

// SupportsTDX reports whether this QEMU can start TDX VMs (>= 10.1).
func (i *Info) SupportsTDX() bool { return i.Version.AtLeast(MinTDX) }

// LookPath finds the QEMU binary: $ENARX_QEMU when set (getenv may be nil
// for os.Getenv), else qemu-system-x86_64 on PATH. The error says how to
// install it.
func LookPath(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if p := getenv(EnvQEMU); p != "" {
		abs, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvQEMU, p, err)
		}
		return filepath.Abs(abs)
	}
	p, err := exec.LookPath(Binary)
	if err != nil {
		return "", fmt.Errorf("%s is not on PATH: %s", Binary, installHint)
	}
	return filepath.Abs(p)
}

// probeTimeout bounds each run of the binary during Probe (a variable for
// tests).
var probeTimeout = 10 * time.Second

// maxProbeOutput bounds what Probe reads of the binary's output.
const maxProbeOutput = 64 << 10

// Probe runs binary ("" finds it with LookPath) with --version and with
// the launcher's -sandbox options, each bounded in time, and reports what
// it found.
func Probe(ctx context.Context, binary string) (*Info, error) {
	if binary == "" {
		p, err := LookPath(nil)
		if err != nil {
			return nil, err
		}
		binary = p
	} else {
		p, err := exec.LookPath(binary)
		if err != nil {
			if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("QEMU binary %s not found: %s", binary, installHint)
			}
			return nil, fmt.Errorf("QEMU binary %s: %w", binary, err)
		}
		if binary, err = filepath.Abs(p); err != nil {
			return nil, err
		}
	}
	out, err := runBounded(ctx, binary, "--version")
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", binary, err)
	}
	v, err := ParseVersion(out)
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", binary, err)
	}
	banner, _, _ := strings.Cut(out, "\n")
	info := &Info{Path: binary, Version: v, Banner: strings.TrimSpace(banner)}
	// -version exits while the options are parsed; a QEMU without
	// libseccomp rejects -sandbox before it gets there, and one with
	// libseccomp checks the option names. Only that refusal (an exit
	// status) means no sandbox: a run that timed out or never started
	// says nothing, and the answer is cached for as long as the binary
	// stays the same.
	_, err = runBounded(ctx, binary, "-sandbox", sandboxOpts, "-version")
	var ee *exec.ExitError
	switch {
	case err == nil:
		info.Sandbox = true
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case !errors.As(err, &ee) || !ee.Exited():
		return nil, fmt.Errorf("%s -sandbox (checking for QEMU's seccomp sandbox): %w; try again", binary, err)
	}
	return info, nil
}

// runBounded runs binary with args, no stdin and the minimal environment,
// for at most probeTimeout, and returns its stdout; the error carries the
// start of its stderr.
func runBounded(parent context.Context, binary string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(parent, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = minimalEnv()
	var stdout, stderr limitedBuffer
	stdout.max, stderr.max = maxProbeOutput, 4096
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if parent.Err() != nil {
		return "", parent.Err()
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("no answer within %v", probeTimeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("%w: %s", err, truncate(msg, 400))
		}
		return "", err
	}
	return stdout.String(), nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// probeCache remembers Probe results by binary path, size and mtime, so
// that starting many VMs runs the binary once.
var probeCache struct {
	sync.Mutex
	m map[probeKey]*Info
}

type probeKey struct {
	path  string
	size  int64
	mtime time.Time
}

// ProbeCached is Probe that runs each binary (by path, size and mtime)
// once per process; binary "" finds it with LookPath.
func ProbeCached(ctx context.Context, binary string) (*Info, error) {
	if binary == "" {
		p, err := LookPath(nil)
		if err != nil {
			return nil, err
		}
		binary = p
	}
	return cachedProbe(ctx, binary)
}

// cachedProbe is Probe with probeCache, and with a file cache across
// processes (each probe runs QEMU twice, ~120 ms that every `enarx run`
// would otherwise pay).
func cachedProbe(ctx context.Context, binary string) (*Info, error) {
	st, err := os.Stat(binary)
	if err != nil {
		return Probe(ctx, binary)
	}
	k := probeKey{binary, st.Size(), st.ModTime()}
	probeCache.Lock()
	info := probeCache.m[k]
	probeCache.Unlock()
	if info != nil {
		c := *info
		return &c, nil
	}
	if info = readProbeFile(k); info == nil {
		if info, err = Probe(ctx, binary); err != nil {
			return nil, err
		}
		writeProbeFile(k, info)
	}
	probeCache.Lock()
	if probeCache.m == nil {
		probeCache.m = map[probeKey]*Info{}
	}
	c := *info
	probeCache.m[k] = &c
	probeCache.Unlock()
	return info, nil
}

// probeFile is the cross-process probe cache: the user's cache directory,
// one JSON record per binary (path, size and modification time must all
// match). It holds only what QEMU printed about itself; a stale or broken
// file is ignored and rewritten. The name carries a format version:
// v1's records could say "no seccomp sandbox" because a check timed out,
// so they are not read.
func probeFile() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "enarx", "qemu-probe-v2.json")
}

type probeRecord struct {
	Path    string    `json:"path"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	Info    Info      `json:"info"`
}

func readProbeFile(k probeKey) *Info {
	p := probeFile()
	if p == "" {
		return nil
	}
	b, err := os.ReadFile(p)
	if err != nil || len(b) > 64<<10 {
		return nil
	}
	var recs []probeRecord
	if json.Unmarshal(b, &recs) != nil {
		return nil
	}
	for _, r := range recs {
		if r.Path == k.path && r.Size == k.size && r.ModTime.Equal(k.mtime) && r.Info.Path == k.path {
			info := r.Info
			return &info
		}
	}
	return nil
}

func writeProbeFile(k probeKey, info *Info) {
	p := probeFile()
	if p == "" {
		return
	}
	var recs []probeRecord
	if b, err := os.ReadFile(p); err == nil && len(b) <= 64<<10 {
		json.Unmarshal(b, &recs)
	}
	out := []probeRecord{{Path: k.path, Size: k.size, ModTime: k.mtime, Info: *info}}
	for _, r := range recs {
		if r.Path != k.path && len(out) < 16 {
			out = append(out, r)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return
	}
	if os.MkdirAll(filepath.Dir(p), 0o700) == nil {
		atomicfile.Write(p, b, 0o600)
	}
}
