package microvm

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/microvm/vmm"
)

// TestCacheScopeDir: the host keys the compilation cache a kvm Keep sends
// back by module, VM shape and cache scope (keep.Options.CacheScope: the
// containerd shim's Kubernetes namespaces). A guest whose workload escaped
// wasm in one namespace must not send back machine code that another
// namespace's Keep of the same (public) module gets at its launch; the
// Keeps of one scope share their cache, and without a scope the directory
// keeps the name it had before scopes, so existing caches stay valid.
func TestCacheScopeDir(t *testing.T) {
	base := t.TempDir()
	w := keep.Workload{Wasm: []byte("\x00asm\x01\x00\x00\x00 cache scope test")}
	dirOf := func(scope string) string {
		t.Helper()
		r, wr, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); wr.Close() })
		l := &backend.Launch{Workload: w, Options: keep.Options{CacheDir: base, CacheScope: scope}}
		s, err := KVM.newSession(r, l, vmm.AccelKVM, vmm.Spec{CPU: "host"}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		if s.cacheDir == "" {
			t.Fatalf("scope %q: no compilation cache directory", scope)
		}
		return s.cacheDir
	}
	a, b, none := dirOf("tenant-a"), dirOf("tenant-b"), dirOf("")
	if a == b || a == none || b == none {
		t.Fatalf("Keeps of one module in different scopes share a compilation cache: tenant-a %s, tenant-b %s, no scope %s", a, b, none)
	}
	if again := dirOf("tenant-a"); again != a {
		t.Errorf("two Keeps of one module and scope have different caches, %s and %s", a, again)
	}
	sum := sha256.Sum256(w.Wasm)
	if old := filepath.Join(base, "microvm", string(vmm.AccelKVM)+"-host-default", hex.EncodeToString(sum[:])); none != old {
		t.Errorf("the cache without a scope is %s, want %s (its name before scopes)", none, old)
	}
	if filepath.Dir(a) != filepath.Dir(none) {
		t.Errorf("a scope's cache %s is not beside the unscoped one, %s", a, none)
	}
}
