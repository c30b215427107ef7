package sealed

import (
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// failSyncDir is a backing directory whose next Sync fails when armed: a
// commit that fails after its rename (the directory's sync).
type failSyncDir struct {
	vfs.Dir
	fail atomic.Bool
}

func (d *failSyncDir) Sync() error {
	if d.fail.Swap(false) {
		return syscall.EIO
	}
	return d.Dir.Sync()
}

func (d *failSyncDir) Rename(oldPath string, newDir vfs.Dir, newPath string) error {
	if newDir == vfs.Dir(d) {
		newDir = d.Dir
	}
	return d.Dir.Rename(oldPath, newDir, newPath)
}

// TestCommitFailsAfterRename: a commit whose directory sync fails after
// the new manifest was renamed into place may have made that manifest
// the durable one. Its slots must then be kept until a later commit
// succeeds: rewriting the file twice (which reuses a slot no committed
// manifest references) and crashing must leave a volume that opens and
// reads whole, at the older or the newer content.
func TestCommitFailsAfterRename(t *testing.T) {
	dir := t.TempDir()
	b := &failSyncDir{Dir: backing(t, dir, false)}
	v, err := Open(t.Context(), b, keySource(t, testKey), Options{Name: "data", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	root := v.Root()
	const cs = 1 << 16
	a, bb := pattern(50, cs), pattern(51, cs)
	f := openFile(t, root, "f", vfs.OpenOptions{Create: true, Write: true, Read: true})
	if _, err := f.WriteAt(a, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	// The rewrite's commit renames its manifest over the old one, then
	// fails to sync the directory.
	if _, err := f.WriteAt(bb, 0); err != nil {
		t.Fatal(err)
	}
	b.fail.Store(true)
	if err := f.Sync(); err == nil {
		t.Fatal("sync succeeded although the directory sync failed")
	}
	// Two more whole-chunk rewrites, not committed: the second takes a
	// free slot.
	for i := range 2 {
		if _, err := f.WriteAt(pattern(uint64(52+i), cs), 0); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	abandon(v) // a crash

	_, root = mustOpen(t, dir, Options{})
	defer root.Close()
	got, err := readFile(root, "f")
	if err != nil {
		t.Fatalf("read after a failed commit and a crash: %v", err)
	}
	if string(got) != string(a) && string(got) != string(bb) {
		t.Fatal("the file is neither its committed content nor the one of the failed commit")
	}
}
