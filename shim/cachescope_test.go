package shim

import (
	"bytes"
	"log/slog"
	"testing"
)

// TestLaunchCacheScope: the shim runs every tenant's Keeps as root with
// one cache root, so the Keep of a pod gets its Kubernetes namespace (the
// CRI annotation) as its cache scope, through the launch message to the
// keep host's keep.Options: a Keep whose workload escaped wasm in one
// namespace then cannot plant machine code that another namespace's Keep
// of the same module runs. A container without a namespace (ctr run) gets
// a scope no namespace has, and a namespace annotation that is not a
// namespace's name one of its own.
func TestLaunchCacheScope(t *testing.T) {
	bundle, spec := bundleWith(t, map[string]string{"main.wasm": wasmMagic}, "/main.wasm")
	w, err := loadWorkload(bundle, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	scopeOf := func(annotations map[string]string) string {
		t.Helper()
		spec.Annotations = annotations
		var b bytes.Buffer
		if err := writeLaunch(&b, keepLaunch(w, spec, &Options{CacheDir: DefaultCacheDir}, slog.LevelInfo)); err != nil {
			t.Fatal(err)
		}
		m, err := readLaunch(&b)
		if err != nil {
			t.Fatal(err)
		}
		return m.options(nil, nil, false).CacheScope
	}
	pod := func(ns string) map[string]string {
		return map[string]string{criContainerType: "container", criSandboxNamespace: ns}
	}
	if got := scopeOf(pod("tenant-a")); got != "tenant-a" {
		t.Errorf("a Keep of namespace tenant-a has the cache scope %q, want its namespace", got)
	}
	if a, b := scopeOf(pod("tenant-a")), scopeOf(pod("tenant-b")); a == b {
		t.Errorf("the Keeps of namespaces tenant-a and tenant-b share the cache scope %q", a)
	}
	none := scopeOf(nil)
	if none == "" || none != noNamespaceScope {
		t.Errorf("a container without a namespace has the cache scope %q, want %q", none, noNamespaceScope)
	}
	// A namespace could be called no-namespace; none has the scope of
	// containers without one, nor of a bogus annotation.
	for _, ns := range []string{"no-namespace", "default"} {
		if scopeOf(pod(ns)) == none {
			t.Errorf("namespace %s has the cache scope of containers without a namespace", ns)
		}
	}
	for _, bogus := range []string{noNamespaceScope, "", "Tenant-A"} {
		got := scopeOf(pod(bogus))
		if got == none || got == "tenant-a" || got == "" {
			t.Errorf("the namespace annotation %q gives the cache scope %q, which another Keep has", bogus, got)
		}
	}
}
