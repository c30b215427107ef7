package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/keep"
)

// TestCacheScopeDir: the Keeps of one module in different cache scopes
// (keep.Options.CacheScope: the containerd shim's Kubernetes namespaces)
// get different compilation cache directories, so that a Keep whose
// workload escaped wasm in one namespace cannot plant machine code that
// another namespace's Keep of the same (public) module runs; the Keeps of
// one scope share theirs, and without a scope the directory keeps the name
// it had before scopes (<sum>), so existing caches stay valid.
func TestCacheScopeDir(t *testing.T) {
	wasm := []byte("\x00asm\x01\x00\x00\x00 cache scope test")
	dirOf := func(scope string) string {
		t.Helper()
		l := &backend.Launch{Workload: keep.Workload{Wasm: wasm}, Options: keep.Options{CacheDir: testCacheDir, CacheScope: scope}}
		hdr := newLaunch(context.Background(), l)
		if err := prepareLaunch(l, hdr, nil); err != nil {
			t.Fatal(err)
		}
		if hdr.CacheDir == "" {
			t.Fatalf("scope %q: no compilation cache directory", scope)
		}
		t.Cleanup(func() { os.RemoveAll(hdr.CacheDir) })
		return hdr.CacheDir
	}
	a, b, none := dirOf("tenant-a"), dirOf("tenant-b"), dirOf("")
	if a == b || a == none || b == none {
		t.Fatalf("Keeps of one module in different scopes share a compilation cache: tenant-a %s, tenant-b %s, no scope %s", a, b, none)
	}
	if again := dirOf("tenant-a"); again != a {
		t.Errorf("two Keeps of one module and scope have different caches, %s and %s", a, again)
	}
	if want := filepath.Join(testCacheDir, "sandbox", digest(wasm)); none != want {
		t.Errorf("the cache without a scope is %s, want %s (its name before scopes)", none, want)
	}
	if filepath.Dir(a) != filepath.Join(testCacheDir, "sandbox") {
		t.Errorf("a scope's cache %s is not a module directory of %s", a, filepath.Join(testCacheDir, "sandbox"))
	}
}
