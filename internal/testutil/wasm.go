// Package testutil holds helpers shared by tests: building real wasm
// workloads from Go sources (GOOS=wasip1 GOARCH=wasm).
package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// BuildWasm builds the Go main package in dir (relative to the calling test's
// working directory, or absolute) for wasip1/wasm and returns the path of the
// .wasm file. Results are cached across test binaries by a hash of the
// package's sources and the Go version, so each workload is built once per
// machine; writes are atomic (temp file + rename), so concurrent test
// packages are safe.
func BuildWasm(t testing.TB, dir string) string {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	key := sourceKey(t, abs)
	cacheDir := filepath.Join(os.TempDir(), "enarx-test-wasm")
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	out := filepath.Join(cacheDir, filepath.Base(abs)+"-"+key+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	// Not *.wasm until renamed: readers glob the directory for modules.
	tmp, err := os.CreateTemp(cacheDir, "build-*.tmp")
	if err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(goBin(), "build", "-trimpath", "-o", tmp.Name(), ".")
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("BuildWasm %s: %v\n%s", dir, err, b)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	return out
}

func goBin() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}

// sourceKey hashes every file under dir plus the Go version.
func sourceKey(t testing.TB, dir string) string {
	h := sha256.New()
	h.Write([]byte(runtime.Version()))
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasSuffix(p, ".wasm") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("BuildWasm: %v", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("BuildWasm: %v", err)
		}
		rel, _ := filepath.Rel(dir, f)
		h.Write([]byte(rel))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
