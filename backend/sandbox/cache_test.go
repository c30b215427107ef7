package sandbox

import (
	"context"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// TestKeepGetsItsCache: the module's compilation cache reaches the Keep
// (mounted at keepCacheDir) when the cache lies beneath a directory the
// empty root's tmpfs is mounted on, as testCacheDir does under /tmp: it is
// opened before the tmpfs hides it.
func TestKeepGetsItsCache(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	l := &backend.Launch{Workload: keep.Workload{Wasm: fakeWasm}, Options: keep.Options{Args: []string{"cachedir"}, CacheDir: testCacheDir}}
	_, err := Backend{}.Run(context.Background(), l)
	if want := `cachedir="` + keepCacheDir + `"`; err == nil || err.Error() != want {
		t.Fatalf("cache dir %q (under %s): the Keep reports %v, want %s", testCacheDir, "/tmp", err, want)
	}
}
