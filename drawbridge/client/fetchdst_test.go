package client

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestFetchTreeTrailingSlash: `enarx package fetch SPEC out/` (a shell
// completing a directory name adds the slash) fetches into out. It used to
// put its staging directory inside out ("out/" is its own parent to
// filepath.Dir), which does not exist yet, and failed with "creating out/:
// mkdir out/.out.partial-…: no such file or directory".
func TestFetchTreeTrailingSlash(t *testing.T) {
	c, repo := startRegistry(t)
	spec := PackageSpec{RepoSpec: repo, Tag: "1.0.0"}
	publishFiles(t, c, spec, map[string]string{"main.wasm": "wasm", "sub/data": "d"})
	parent := t.TempDir()
	dst := filepath.Join(parent, "pkg")
	if _, err := c.FetchTree(context.Background(), spec, dst+string(filepath.Separator)); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"main.wasm": "wasm", "sub/data": "d"} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	// Nothing but the package is left beside it.
	if des, _ := os.ReadDir(parent); len(des) != 1 {
		t.Errorf("%s holds %d entries, want only pkg", parent, len(des))
	}
}
