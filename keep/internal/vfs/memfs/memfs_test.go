package memfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"sync"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/memfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

var create = vfs.OpenOptions{Read: true, Write: true, Create: true, Follow: true}

func newFS(t testing.TB, capBytes int64) *memfs.FS {
	t.Helper()
	fs, err := memfs.NewFS(capBytes, false)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func open(t testing.TB, d vfs.Dir, path string) vfs.File {
	t.Helper()
	f, err := d.Open(path, create)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	return f.(vfs.File)
}

func TestNew(t *testing.T) {
	if _, err := memfs.New(0, false); err == nil {
		t.Error("cap 0 accepted")
	}
	if _, err := memfs.New(-1, false); err == nil {
		t.Error("negative cap accepted")
	}
	if _, err := memfs.New(tree.InodeCost-1, false); err == nil {
		t.Error("cap below one inode accepted")
	}
	ro, err := memfs.New(1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.Mkdir("x"); !errors.Is(err, syscall.EROFS) {
		t.Errorf("read-only mkdir: %v", err)
	}
	if _, err := ro.Open("f", create); !errors.Is(err, syscall.EROFS) {
		t.Errorf("read-only create: %v", err)
	}
	a, _ := memfs.New(1<<20, false)
	b, _ := memfs.New(1<<20, false)
	sa, _ := a.Stat()
	sb, _ := b.Stat()
	if sa.Dev == sb.Dev {
		t.Error("two file systems share a device number")
	}
}

// TestCapData fills a file system with data: the write that does not fit
// fails whole, truncation and unlinking give the memory back.
func TestCapData(t *testing.T) {
	const capBytes = 1 << 20
	fs := newFS(t, capBytes)
	root := fs.Root()
	f := open(t, root, "big")
	chunk := bytes.Repeat([]byte{7}, 100000)
	var written int64
	for {
		_, err := f.Write(chunk, false)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		written += int64(len(chunk))
		if written > capBytes {
			t.Fatal("wrote past the cap")
		}
	}
	if written < capBytes-2*memfs.PageSize-int64(len(chunk)) {
		t.Fatalf("only %d bytes fit in a %d-byte cap", written, capBytes)
	}
	if fs.Used() > fs.Cap() {
		t.Fatalf("used %d > cap %d", fs.Used(), fs.Cap())
	}
	st, _ := f.Stat()
	if int64(st.Size) != written {
		t.Fatalf("failed write changed the size: %d, wrote %d", st.Size, written)
	}
	buf := make([]byte, 1)
	if _, err := f.ReadAt(buf, written-1); err != nil || buf[0] != 7 {
		t.Fatal("data before ENOSPC lost")
	}
	h, err := root.Open("other", create)
	if err == nil {
		h.Close()
		// The metadata may still fit; data cannot.
		g := open(t, root, "other")
		if _, err := g.Write(chunk, false); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("second file write: %v", err)
		}
		g.Close()
	}
	if err := f.Allocate(written, capBytes); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("allocate past the cap: %v", err)
	}
	used := fs.Used()
	if err := f.Truncate(written / 2); err != nil {
		t.Fatal(err)
	}
	if fs.Used() > used-int64(written)/2+memfs.PageSize {
		t.Fatalf("truncate freed %d of %d bytes", used-fs.Used(), written/2)
	}
	if _, err := f.WriteAt(chunk, written/2); err != nil {
		t.Fatalf("write after truncate: %v", err)
	}
	f.Close()
	if err := root.Unlink("big"); err != nil {
		t.Fatal(err)
	}
	root.Unlink("other")
	base := newFS(t, capBytes).Used()
	if fs.Used() != base {
		t.Fatalf("after unlinking everything %d bytes used, an empty fs %d", fs.Used(), base)
	}
}

// TestCapInodes fills a file system with empty files and directories:
// the metadata charge makes it run out.
func TestCapInodes(t *testing.T) {
	const capBytes = 1 << 20
	fs := newFS(t, capBytes)
	root := fs.Root()
	n := 0
	for ; ; n++ {
		var err error
		if n%2 == 0 {
			var f interface{ Close() error }
			f, err = root.Open(fmt.Sprintf("f%d", n), create)
			if err == nil {
				f.Close()
			}
		} else {
			err = root.Mkdir(fmt.Sprintf("d%d", n))
		}
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n > capBytes/tree.InodeCost {
			t.Fatal("no ENOSPC from empty files")
		}
	}
	perNode := int64(tree.InodeCost + tree.EntryCost + 6)
	if int64(n) < (capBytes-tree.InodeCost)/perNode-1 {
		t.Fatalf("only %d empty files fit in %d bytes", n, capBytes)
	}
	if err := root.Symlink("target", "s"); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("symlink when full: %v", err)
	}
	// A full file system still renames to a name no longer than the old.
	if err := root.Rename("f0", root, "g0"); err != nil {
		t.Fatalf("rename when full: %v", err)
	}
	if err := root.Rename("g0", root, "f0"); err != nil {
		t.Fatalf("rename when full: %v", err)
	}
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			root.Unlink(fmt.Sprintf("f%d", i))
		} else {
			root.Rmdir(fmt.Sprintf("d%d", i))
		}
	}
	if fs.Used() != tree.InodeCost {
		t.Fatalf("empty again, %d bytes used", fs.Used())
	}
	// Long names cost more than short ones.
	long := fmt.Sprintf("%0255d", 0)
	if err := root.Mkdir(long); err != nil {
		t.Fatal(err)
	}
	if got := fs.Used() - tree.InodeCost; got != tree.InodeCost+tree.EntryCost+255 {
		t.Fatalf("a directory with a 255-byte name costs %d", got)
	}
}

func TestSmallAndSparse(t *testing.T) {
	fs := newFS(t, 1<<30)
	root := fs.Root()
	base := fs.Used()
	f := open(t, root, "small")
	f.Write([]byte("0123456789"), false)
	meta := int64(tree.InodeCost + tree.EntryCost + len("small"))
	if data := fs.Used() - base - meta; data > 64+24 { // a 64-byte page and its slot
		t.Fatalf("a 10-byte file holds %d bytes", data)
	}
	for i := 0; i < 100; i++ {
		f.Write([]byte("0123456789"), false)
	}
	if data := fs.Used() - base - meta; data > 2*1010 {
		t.Fatalf("a 1010-byte file holds %d bytes", data)
	}
	f.Close()

	g := open(t, root, "sparse")
	defer g.Close()
	before := fs.Used()
	if _, err := g.WriteAt([]byte("x"), 1<<30-1); err != nil {
		t.Fatal(err)
	}
	// One page, and the page table (a slice header per 64 KiB).
	if got := fs.Used() - before; got > memfs.PageSize+(1<<30)/memfs.PageSize*24 {
		t.Fatalf("a 1 GiB sparse file holds %d bytes", got)
	}
	buf := make([]byte, 3*memfs.PageSize)
	for i := range buf {
		buf[i] = 0xff
	}
	n, err := g.ReadAt(buf, 1<<29)
	if n != len(buf) || err != nil || !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("hole does not read as zeros")
	}
	// A write far out is charged for the page table it needs.
	small := newFS(t, 64<<20)
	h := open(t, small.Root(), "far")
	if _, err := h.WriteAt([]byte("x"), 1<<40-memfs.PageSize); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write at 1 TiB in a 64 MiB file system: %v", err)
	}
	if small.Used() > small.Cap() {
		t.Fatalf("used %d of %d", small.Used(), small.Cap())
	}
	before = small.Used()
	if _, err := h.WriteAt([]byte("x"), 16<<30); err != nil {
		t.Fatal(err)
	}
	if err := h.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if small.Used() != before {
		t.Fatalf("truncating a sparse file left %d bytes charged", small.Used()-before)
	}
	h.Close()
	if _, err := g.WriteAt([]byte("x"), 1<<62); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("write at 4 EiB: %v", err)
	}
	if err := g.Truncate(1 << 62); !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("truncate to 4 EiB: %v", err)
	}
}

// TestRandomIO checks reads and writes at random offsets and sizes,
// truncations included, against a plain byte slice.
func TestRandomIO(t *testing.T) {
	fs := newFS(t, 1<<30)
	f := open(t, fs.Root(), "f")
	defer f.Close()
	var ref []byte
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		off := rng.Int63n(5 * memfs.PageSize)
		n := rng.Intn(2 * memfs.PageSize)
		switch rng.Intn(4) {
		case 0, 1:
			p := make([]byte, n)
			rng.Read(p)
			if _, err := f.WriteAt(p, off); err != nil {
				t.Fatal(err)
			}
			if end := int(off) + n; end > len(ref) {
				ref = append(ref, make([]byte, end-len(ref))...)
			}
			copy(ref[off:], p)
		case 2:
			if err := f.Truncate(off); err != nil {
				t.Fatal(err)
			}
			if int(off) < len(ref) {
				ref = ref[:off]
			} else {
				ref = append(ref, make([]byte, int(off)-len(ref))...)
			}
		case 3:
			p := make([]byte, n)
			got, err := f.ReadAt(p, off)
			want := 0
			if int(off) < len(ref) {
				want = copy(make([]byte, n), ref[off:])
			}
			if got != want || (got < n && err != io.EOF) || (got > 0 && !bytes.Equal(p[:got], ref[off:int(off)+got])) {
				t.Fatalf("step %d: read %d at %d: got %d %v, want %d", i, n, off, got, err, want)
			}
		}
		if st, _ := f.Stat(); st.Size != uint64(len(ref)) {
			t.Fatalf("step %d: size %d, want %d", i, st.Size, len(ref))
		}
	}
}

// TestConcurrentCap fills one file system from several goroutines: the
// cap holds, and removing everything returns every byte.
func TestConcurrentCap(t *testing.T) {
	const capBytes = 4 << 20
	fs := newFS(t, capBytes)
	root := fs.Root()
	base := fs.Used()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 3000)
			for i := 0; ; i++ {
				h, err := root.Open(fmt.Sprintf("w%d-%d", w, i), create)
				if err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Error(err)
					}
					return
				}
				f := h.(vfs.File)
				_, err = f.Write(buf, false)
				f.Close()
				if fs.Used() > capBytes {
					t.Errorf("used %d > cap", fs.Used())
				}
				if err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Error(err)
					}
					return
				}
			}
		}(w)
	}
	wg.Wait()
	ents, err := root.ReadDir(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents[2:] {
		if err := root.Unlink(e.Name); err != nil {
			t.Fatal(err)
		}
	}
	if fs.Used() != base {
		t.Fatalf("%d bytes used after removing everything, %d before", fs.Used(), base)
	}
}

func TestSequentialLarge(t *testing.T) {
	fs := newFS(t, 64<<20)
	f := open(t, fs.Root(), "f")
	defer f.Close()
	chunk := make([]byte, 4096)
	for i := 0; i < (32<<20)/len(chunk); i++ {
		for j := range chunk {
			chunk[j] = byte(i + j)
		}
		if _, err := f.Write(chunk, false); err != nil {
			t.Fatal(err)
		}
	}
	if data := fs.Used(); data > 32<<20+memfs.PageSize+4096 {
		t.Fatalf("32 MiB written sequentially hold %d bytes", data)
	}
	f.Seek(0, io.SeekStart)
	for i := 0; i < (32<<20)/len(chunk); i++ {
		n, err := f.Read(chunk, false)
		if n != len(chunk) || err != nil {
			t.Fatal(n, err)
		}
		for j := range chunk {
			if chunk[j] != byte(i+j) {
				t.Fatalf("byte %d of chunk %d", j, i)
			}
		}
	}
}

// TestTruncateHuge: a size whose page count overflows int64 arithmetic
// (near math.MaxInt64) is refused like any size beyond the 1 TiB bound,
// never accepted as a file of 8 EiB.
func TestTruncateHuge(t *testing.T) {
	fs := newFS(t, 1<<20)
	f := open(t, fs.Root(), "f")
	defer f.Close()
	for _, size := range []int64{1 << 62, math.MaxInt64 - memfs.PageSize + 2, math.MaxInt64} {
		if err := f.Truncate(size); !errors.Is(err, syscall.EFBIG) {
			t.Errorf("truncate to %d: %v, want EFBIG", size, err)
		}
	}
	if st, err := f.Stat(); err != nil || st.Size != 0 {
		t.Fatalf("size after refused truncations: %d, %v", st.Size, err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Fatalf("truncate to the 1 TiB bound: %v", err)
	}
}
