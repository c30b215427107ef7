package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var enarxBuilds struct {
	sync.Mutex
	bins map[bool]string
}

// BuildEnarx builds the module's cmd/enarx once per test binary and
// returns its path: with the wasmtime engine (-tags wasmtime, cgo) when
// wasmtime is set — callers pass whether their own binary has it, so the
// CLI runs the engines the test does — otherwise the default pure-Go
// build (CGO_ENABLED=0).
func BuildEnarx(t testing.TB, wasmtime bool) string {
	t.Helper()
	enarxBuilds.Lock()
	defer enarxBuilds.Unlock()
	if bin, ok := enarxBuilds.bins[wasmtime]; ok {
		return bin
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("building enarx: %v", err)
	}
	dir, err := os.MkdirTemp("", "enarx-test-bin-")
	if err != nil {
		t.Fatalf("building enarx: %v", err)
	}
	bin := filepath.Join(dir, "enarx")
	args := []string{"build", "-o", bin}
	env := "CGO_ENABLED=0"
	if wasmtime {
		args, env = append(args, "-tags", "wasmtime"), "CGO_ENABLED=1"
	}
	cmd := exec.Command(goBin(), append(args, "./cmd/enarx")...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building enarx: %v\n%s", err, out)
	}
	if enarxBuilds.bins == nil {
		enarxBuilds.bins = map[bool]string{}
	}
	enarxBuilds.bins[wasmtime] = bin
	return bin
}

// ModuleRoot is the directory of the go.mod above the working directory
// (a test's package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", fmt.Errorf("no go.mod above %s", dir)
		}
		dir = up
	}
}
