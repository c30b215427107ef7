package sandbox

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// TestBundleCacheDir: a package bundle's launch has no module of its own
// (the Keep takes it out of the bundle, and keep.Run refuses a bundle with
// a module beside it), so the host names its compilation cache after the
// bundle. Named after the launch's (empty) module, every package would
// share one directory, in which a Keep whose workload escaped wasm could
// plant machine code that a later run of another package loads under its
// module's digest; and the bundle's cache would have the budget of an
// empty module (1 MiB), which the engines' output for any real module
// exceeds, so the host would remove it after every run.
func TestBundleCacheDir(t *testing.T) {
	// testCacheDir: a base the Keep user may search, as a root test's
	// must be (else the host takes the system's cache).
	base := testCacheDir
	dirOf := func(w keep.Workload) string {
		t.Helper()
		l := &backend.Launch{Workload: w, Options: keep.Options{CacheDir: base}}
		hdr := newLaunch(context.Background(), l)
		if err := prepareLaunch(l, hdr, nil); err != nil {
			t.Fatal(err)
		}
		if hdr.CacheDir == "" {
			t.Fatal("no compilation cache directory")
		}
		t.Cleanup(func() { os.RemoveAll(hdr.CacheDir) })
		return hdr.CacheDir
	}
	a := []byte("package bundle A")
	b := []byte("package bundle B")
	dirA, dirB := dirOf(keep.Workload{Bundle: a}), dirOf(keep.Workload{Bundle: b})
	if dirA == dirB {
		t.Fatalf("two package bundles share the compilation cache %s", dirA)
	}
	if want := filepath.Join(base, "sandbox", digest(a)); dirA != want {
		t.Errorf("bundle A's cache is %s, want %s (named after the bundle)", dirA, want)
	}
	if empty := filepath.Join(base, "sandbox", digest(nil)); dirA == empty || dirB == empty {
		t.Errorf("a bundle's cache is the empty module's, %s", empty)
	}
}

// TestBundleCacheBudget: what a Keep of a package bundle leaves in its
// cache is measured against the bundle's size (which holds the module),
// not the empty module's budget of 1 MiB. The bundle here is not one keep.Run
// accepts: the Keep fails at once, and the host checks the directory it
// gave it, which holds an engine entry of 2 MiB from an earlier run.
func TestBundleCacheBudget(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	const entry = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	bundle := append([]byte("not a bundle "), bytes.Repeat([]byte{'x'}, 3<<20)...)
	dir := filepath.Join(testCacheDir, "sandbox", digest(bundle))
	empty := filepath.Join(testCacheDir, "sandbox", digest(nil))
	os.RemoveAll(dir)
	os.RemoveAll(empty)
	defer os.RemoveAll(dir)
	sub := filepath.Join(dir, "wasmtime-v44.0.0-0123abcd")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, entry+".cwasm"), make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	l := &backend.Launch{Workload: keep.Workload{Bundle: bundle}, Options: keep.Options{
		CacheDir: testCacheDir,
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}}
	_, _, err := run(context.Background(), l, hostOptions{})
	if err == nil || !strings.Contains(err.Error(), "bundle") {
		t.Fatalf("the Keep ran a bundle that is none: %v", err)
	}
	t.Logf("Keep: %v; log: %s", err, strings.TrimSpace(logs.String()))
	if _, err := os.Stat(filepath.Join(sub, entry+".cwasm")); err != nil {
		t.Errorf("the bundle's cache entry within its budget is gone: %v", err)
	}
	if _, err := os.Lstat(empty); !os.IsNotExist(err) {
		t.Errorf("the bundle's Keep got the empty module's cache %s (%v)", empty, err)
	}
}
