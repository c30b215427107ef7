package image

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InitPackage is the Go package built as the Keep's /init.
const InitPackage = "github.com/enarx-go/enarx/cmd/enarx-keep-init"

// InitBuildEnv and InitBuildFlags are the pinned settings the init is built
// with: a static linux/amd64 binary for the baseline x86-64 ISA (the guest
// CPU model is the host's choice), without paths, VCS stamps, symbols or a
// build ID, so the same source and Go version give the same bytes.
var (
	InitBuildEnv   = []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOAMD64=v1", "GOFLAGS=", "GOEXPERIMENT="}
	InitBuildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}
)

// InitBuildCommand is the environment and flags BuildInit uses, as
// recorded in the manifest (Spec.InitBuild).
func InitBuildCommand() []string {
	return append(append([]string(nil), InitBuildEnv...), InitBuildFlags...)
}

// BuildInit builds InitPackage into outPath with the pinned settings. It runs
// `go build` in the current directory, which must be inside this module's
// source tree.
func BuildInit(ctx context.Context, outPath string) error {
	return BuildStatic(ctx, "", InitPackage, outPath)
}

// BuildStatic builds the main package pkg (an import path, or a ./path
// relative to dir; dir "" is the current directory) into outPath with
// InitBuildEnv and InitBuildFlags, then checks that the result is a static
// x86-64 ELF executable.
func BuildStatic(ctx context.Context, dir, pkg, outPath string) error {
	goCmd, err := findGo()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(outPath)
	if err != nil {
		return err
	}
	args := append([]string{"build"}, InitBuildFlags...)
	args = append(args, "-o", abs, pkg)
	cmd := exec.CommandContext(ctx, goCmd, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), InitBuildEnv...)
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", pkg, err, strings.TrimSpace(stderr.String()))
	}
	return CheckStaticELF(abs)
}

// findGo returns the go command: go on PATH, else $GOROOT/bin/go, else the
// usual install location.
func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	var tried []string
	for _, root := range []string{os.Getenv("GOROOT"), "/usr/local/go"} {
		if root == "" {
			continue
		}
		p := filepath.Join(root, "bin", "go")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("the go command is not on PATH (also tried %s); install Go or add it to PATH", strings.Join(tried, ", "))
}

// CheckStaticELF reports whether path is an x86-64 ELF executable that the
// kernel can run as /init without a dynamic loader: no PT_INTERP program
// header (a dynamically linked init fails with "No working init found").
func CheckStaticELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("init %s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return fmt.Errorf("init %s is built for %v/%v, the Keep needs x86-64", path, f.Machine, f.Class)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("init %s is %v, not an executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("init %s is dynamically linked (has PT_INTERP); build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// InitInfo describes the init binary in the manifest.
type InitInfo struct {
	// SHA256 is the hex SHA-256 of /init.
	SHA256 string `json:"sha256"`
	// Size is its size in bytes.
	Size int64 `json:"size"`
	// BuildCommand is how the init was built, as the builder reported it
	// (Spec.InitBuild).
	BuildCommand []string `json:"build_command,omitempty"`
	// GoVersion, Path and BuildSettings come from the Go build information
	// embedded in the binary (go version -m); empty for a non-Go init.
	GoVersion     string   `json:"go_version,omitempty"`
	Path          string   `json:"path,omitempty"`
	BuildSettings []string `json:"build_settings,omitempty"`
}

// readGoBuildInfo fills the Go fields of InitInfo from the binary itself, so
// the manifest says how the init really was built, not how it was meant to be.
func readGoBuildInfo(path string, info *InitInfo) error {
	bi, err := buildinfo.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err != nil {
		return nil // not a Go binary: nothing to record
	}
	info.GoVersion = bi.GoVersion
	info.Path = bi.Path
	for _, s := range bi.Settings {
		info.BuildSettings = append(info.BuildSettings, s.Key+"="+s.Value)
	}
	return nil
}
