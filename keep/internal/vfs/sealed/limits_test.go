package sealed

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// setMaxManifest lowers the manifest bound for a test.
func setMaxManifest(t *testing.T, n int64) {
	old := maxManifest
	maxManifest = n
	t.Cleanup(func() { maxManifest = old })
}

// TestManifestLimit: a commit never writes a manifest larger than the
// one an open accepts (that would make the volume unopenable: every
// file in it lost). Past the bound the commit fails with ENOSPC, like a
// full disk, and the volume opens at its last commit.
func TestManifestLimit(t *testing.T) { forFormats(t, testManifestLimit) }

func testManifestLimit(t *testing.T) {
	setMaxManifest(t, 16<<10)
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	var committed []string
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		name := fmt.Sprintf("%03d-%s", i, strings.Repeat("n", 200))
		writeFile(t, root, name, []byte(name), false)
		if err = root.Sync(); err == nil {
			committed = append(committed, name)
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("200 files of 200-byte names: last commit %v, want ENOSPC (the manifest is over %d bytes)", err, maxManifest)
	}
	abandon(v)
	v, err = openVolume(t, dir, Options{})
	if err != nil {
		t.Fatalf("open after the last successful commit: %v", err)
	}
	root = v.Root()
	defer root.Close()
	for _, name := range committed {
		checkFile(t, root, name, []byte(name))
	}
}
