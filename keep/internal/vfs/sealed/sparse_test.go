package sealed

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/format"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

func contentOf(f vfs.File) *content {
	return f.(interface{ Content() tree.Content }).Content().(*content)
}

// allocated returns the bytes allocated by fn.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestSparseFarWrite: a byte written far into a file (up to its 8 TiB
// bound) costs one chunk table entry, not one per chunk before it, to
// write, commit and load; the holes read as zeros.
func TestSparseFarWrite(t *testing.T) { forFormats(t, testSparseFarWrite) }

func testSparseFarWrite(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	f := openFile(t, root, "far", vfs.OpenOptions{Create: true, Write: true, Read: true})
	c := contentOf(f)
	const mid = 64 << 30
	const limit = 16 << 20 // the chunk table of a dense 64 GiB file is 40 MiB
	write := func(off int64, b byte) {
		t.Helper()
		var err error
		n := allocated(func() {
			if _, err = f.WriteAt([]byte{b}, off); err == nil {
				err = f.Sync() // seals the chunk and commits the manifest
			}
		})
		if err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		if n > limit {
			t.Fatalf("writing and committing 1 byte at %d allocated %d bytes", off, n)
		}
	}
	write(mid, 'm')
	if n := len(c.chunks); n != 1 {
		t.Fatalf("chunk table of a file with 1 chunk written has %d entries", n)
	}
	write(int64(format.MaxFileSize)-1, 'z')
	write(5, 'a')
	if n := len(c.chunks); n != 3 {
		t.Fatalf("chunk table of a file with 3 chunks written has %d entries", n)
	}
	var x format.Node
	c.mu.Lock()
	c.record(&x)
	c.mu.Unlock()
	cs := uint32(c.chunkSize())
	want := []uint32{0, uint32(mid / int64(cs)), uint32((format.MaxFileSize - 1) / uint64(cs))}
	if len(x.Chunks) != len(want) {
		t.Fatalf("recorded %d chunks, want %d", len(x.Chunks), len(want))
	}
	for i, ch := range x.Chunks {
		if ch.Index != want[i] {
			t.Fatalf("recorded chunk %d has index %d, want %d (in increasing order)", i, ch.Index, want[i])
		}
	}
	f.Close()
	root.Close()
	v.Close()

	var root2 vfs.Dir
	var f2 vfs.File
	if n := allocated(func() {
		_, root2 = mustOpen(t, dir, Options{})
		f2 = openFile(t, root2, "far", vfs.OpenOptions{Read: true, Write: true})
	}); n > limit {
		t.Fatalf("opening a volume with a sparse 8 TiB file allocated %d bytes", n)
	}
	defer root2.Close()
	defer f2.Close()
	if n := len(contentOf(f2).chunks); n != 3 {
		t.Fatalf("loaded chunk table has %d entries, want 3", n)
	}
	if st, err := f2.Stat(); err != nil || st.Size != format.MaxFileSize {
		t.Fatalf("stat: size %d, %v; want %d", st.Size, err, format.MaxFileSize)
	}
	for _, r := range []struct {
		off  int64
		want []byte
	}{
		{0, []byte{0, 0, 0, 0, 0, 'a', 0}},
		{mid - 2, []byte{0, 0, 'm', 0}},
		{1 << 40, make([]byte, 3<<16)}, // a run of holes
		{int64(format.MaxFileSize) - 3, []byte{0, 0, 'z'}},
	} {
		got := bytes.Repeat([]byte{0xee}, len(r.want))
		if _, err := f2.ReadAt(got, r.off); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read at %d: %v", r.off, err)
		}
		if !bytes.Equal(got, r.want) {
			t.Fatalf("read at %d: %q, want %q", r.off, got, r.want)
		}
	}
	// Shrinking drops the chunks past the new end.
	if err := f2.Truncate(mid + 1); err != nil {
		t.Fatal(err)
	}
	if n := len(contentOf(f2).chunks); n != 2 {
		t.Fatalf("chunk table after truncation has %d entries, want 2", n)
	}
	if err := f2.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestFileTooBig: growing a file past format.MaxFileSize fails with
// EFBIG, as POSIX and WASI have it, whichever call grows it.
func TestFileTooBig(t *testing.T) {
	dir := t.TempDir()
	v, root := mustOpen(t, dir, Options{})
	defer v.Close()
	f := openFile(t, root, "big", vfs.OpenOptions{Create: true, Write: true, Read: true})
	defer f.Close()
	const max = int64(format.MaxFileSize)
	c := contentOf(f)
	for name, err := range map[string]error{
		"content truncate":     c.Truncate(max + 1),
		"content allocate":     c.Allocate(max, 1),
		"content allocate end": c.Allocate(max-10, 11),
		"truncate":             f.Truncate(max + 1),
		"allocate":             f.Allocate(max-1, 2),
	} {
		if !errors.Is(err, syscall.EFBIG) {
			t.Errorf("%s past %d: %v, want EFBIG", name, max, err)
		}
	}
	if _, err := f.WriteAt([]byte("xy"), max-1); !errors.Is(err, syscall.EFBIG) {
		t.Errorf("write past %d: %v, want EFBIG", max, err)
	}
	if err := c.Truncate(-1); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("truncate to -1: %v, want EINVAL", err)
	}
	if st, _ := f.Stat(); st.Size != 0 {
		t.Fatalf("size %d after failed growth", st.Size)
	}
	// Up to the bound is allowed.
	if err := f.Allocate(max-1, 1); err != nil {
		t.Fatalf("allocate up to %d: %v", max, err)
	}
	if err := f.Truncate(max); err != nil {
		t.Fatalf("truncate to %d: %v", max, err)
	}
}
