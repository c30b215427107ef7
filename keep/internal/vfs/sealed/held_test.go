package sealed

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// setMaxHeld sets maxHeld for the test.
func setMaxHeld(t *testing.T, n int) {
	old := maxHeld
	maxHeld = n
	t.Cleanup(func() { maxHeld = old })
}

// holding counts v's files that hold an open object and those that hold
// buffers (a scratch buffer or cached chunks).
func holding(v *Volume) (objs, bufs int) {
	v.mu.Lock()
	files := slices.Collect(maps.Values(v.files))
	v.mu.Unlock()
	for _, c := range files {
		c.mu.Lock()
		if c.obj != nil {
			objs++
		}
		if c.scratch != nil || c.scratches != nil || len(c.cache) > 0 {
			bufs++
		}
		c.mu.Unlock()
	}
	return objs, bufs
}

// TestIdleFilesReleased: files written, read and closed do not each keep
// their host object open and their buffers (a remote backing refuses
// handles past a few thousand: every commit then failed with EMFILE);
// the least recently used are written, synced and released, and nothing
// is lost.
func TestIdleFilesReleased(t *testing.T) {
	const bound = 16
	setMaxHeld(t, bound)
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	const n = 200
	// One file stays open and is written between the others: released
	// and reopened under the handle.
	long := openFile(t, root, "long", vfs.OpenOptions{Create: true, Write: true, Read: true})
	want := map[string][]byte{"long": make([]byte, n*10)}
	for i := range n {
		name := fmt.Sprint(i)
		data := pattern(uint64(i), 1000+i*300) // partial chunks: cached, dirty
		writeFile(t, root, name, data, false)
		want[name] = data
		if i%3 == 0 {
			checkFile(t, root, name, data)
		}
		b := pattern(uint64(n+i), 10)
		if _, err := long.WriteAt(b, int64(i*10)); err != nil {
			t.Fatal(err)
		}
		copy(want["long"][i*10:], b)
		if objs, bufs := holding(v); objs > bound+1 || bufs > bound+1 {
			t.Fatalf("after %d files: %d hold their object open, %d their buffers; want at most %d", i+1, objs, bufs, bound+1)
		}
	}
	for name, data := range want {
		checkFile(t, root, name, data)
	}
	if err := root.Sync(); err != nil {
		t.Fatal(err)
	}
	if objs, bufs := holding(v); objs > bound+1 || bufs > bound+1 {
		t.Fatalf("after the commit: %d files hold their object open, %d their buffers", objs, bufs)
	}
	long.Close()
	root.Close()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	v2, root2 := mustOpen(t, dir, Options{})
	defer v2.Close()
	for name, data := range want {
		checkFile(t, root2, name, data)
	}
	if objs, bufs := holding(v2); objs > bound+1 || bufs > bound+1 {
		t.Fatalf("after reading back: %d files hold their object open, %d their buffers", objs, bufs)
	}
}

// TestNewFileHoldsNothing: creating or loading a file allocates no chunk
// buffer; only its reads and writes do.
func TestNewFileHoldsNothing(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	for i := range 50 {
		f := openFile(t, root, fmt.Sprint(i), vfs.OpenOptions{Create: true, Write: true})
		f.Close()
	}
	if objs, bufs := holding(v); objs != 0 || bufs != 0 {
		t.Fatalf("50 empty files: %d hold an object, %d buffers", objs, bufs)
	}
	writeFile(t, root, "data", pattern(1, 100_000), true)
	root.Close()
	v.Close()
	v2, root2 := mustOpen(t, dir, Options{})
	defer v2.Close()
	defer root2.Close()
	if objs, bufs := holding(v2); objs != 0 || bufs != 0 {
		t.Fatalf("a loaded volume: %d files hold an object, %d buffers", objs, bufs)
	}
}

// TestModelEvicting runs the model with every file but the one in use
// released at each step: writes, syncs, crashes and truncations stay
// right across releases.
func TestModelEvicting(t *testing.T) {
	setMaxHeld(t, 1)
	for seed := range uint64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, 100+seed) })
	}
}
