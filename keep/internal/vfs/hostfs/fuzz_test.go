package hostfs

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// FuzzPaths: whatever path a guest passes, and whatever symlink target it
// stores first, no call creates, changes or opens anything outside the
// directory. A sentinel tree outside must stay unchanged (names, types,
// modes, times, contents), and every object an Open or StatAt reaches
// must be one found inside the directory. Seeds: testdata/fuzz/FuzzPaths.
func FuzzPaths(f *testing.F) {
	f.Fuzz(func(t *testing.T, path, target string) {
		e := newEnv(t, false, hostileTree(t))
		before := e.snapshot(t)
		e.d.Symlink(target, "fz")
		checkReach(t, e, path)
		pathOps(e.d, path)
		checkReach(t, e, "fz")
		checkReach(t, e, "fz/"+path)
		if after := e.snapshot(t); after != before {
			t.Fatalf("path %q, symlink target %q: the outside changed:\n%s\n%s", path, target, before, after)
		}
	})
}

// checkReach opens and stats p every way and fails if anything reached
// is not inside e.root.
func checkReach(t *testing.T, e *env, p string) {
	t.Helper()
	for _, o := range []vfs.OpenOptions{rd, dirO, create, {Read: true}} {
		f, err := e.d.Open(p, o)
		if err != nil {
			continue
		}
		var st vfs.Stat
		switch x := f.(type) {
		case vfs.File:
			st, err = x.Stat()
		case vfs.Dir:
			st, err = x.Stat()
		}
		f.Close()
		if err != nil {
			t.Fatalf("Stat of opened %q: %v", p, err)
		}
		if !inside(t, e, st) {
			t.Fatalf("Open(%q, %+v) reached %+v, which is not inside the directory", p, o, st)
		}
	}
	for _, follow := range []bool{false, true} {
		st, err := e.d.StatAt(p, follow)
		if err == nil && !inside(t, e, st) {
			t.Fatalf("StatAt(%q, %v) reached %+v, which is not inside the directory", p, follow, st)
		}
	}
}

// inside reports whether st is the root or an object beneath it (found
// by walking root without following symlinks).
func inside(t *testing.T, e *env, st vfs.Stat) bool {
	found := false
	filepath.WalkDir(e.root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		var hst syscall.Stat_t
		if syscall.Lstat(p, &hst) == nil && hst.Ino == st.Ino && uint64(hst.Dev) == st.Dev {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	if !found && st.Type == fd.FiletypeUnknown {
		t.Logf("unknown-type object %+v", st)
	}
	return found
}
