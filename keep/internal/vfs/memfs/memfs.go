// Package memfs is the "memory" source of the Keep's file systems (issue
// 12): a Keep-private directory tree whose files are held in Keep memory,
// gone when the Keep exits, never touching the host. The namespace is a
// vfs/tree; this package is its content store and its size cap.
//
// The cap counts the memory file data holds (allocated pages, so a hole
// costs only its page-table slots and a page partly written counts whole)
// plus a fixed
// charge per inode and per directory entry (tree.InodeCost, tree.EntryCost
// plus the name's length, a symlink's target), so that a million empty
// files exhaust it as surely as one large file: past it, a change fails
// with ENOSPC and leaves nothing half-done.
//
// File data lives in pages of PageSize bytes allocated on first write
// (holes read as zero); the first page of a small file grows by doubling
// from a few bytes, so a small file costs about its size. Writing 256 MiB
// sequentially allocates each page once and copies each byte once;
// shrinking a file frees its pages past the new end.
//
// Trust: everything here is Keep memory; the guest is untrusted and bound
// by the cap, and paths are resolved by vfs/tree beneath each directory.
package memfs

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

// PageSize is the unit file data is allocated in.
const PageSize = 64 << 10

// minAlloc is the smallest allocation of a small file's first page.
const minAlloc = 64

// FS is one memory file system.
type FS struct {
	t     *tree.Tree
	store *store
}

// devs numbers the file systems (Stat.Dev).
var devs atomic.Uint64

// NewFS returns an empty file system holding at most capBytes bytes of
// data and metadata; read-only refuses every change (EROFS).
func NewFS(capBytes int64, readonly bool) (*FS, error) {
	if capBytes <= 0 {
		return nil, fmt.Errorf("memfs: size %d: give the memory directory a positive size cap", capBytes)
	}
	s := &store{limit: capBytes}
	t, err := tree.New(tree.Options{Store: s, ReadOnly: readonly, Dev: devs.Add(1)})
	if err != nil {
		return nil, fmt.Errorf("memfs: size %d bytes is too small for the root directory: %w", capBytes, err)
	}
	return &FS{t: t, store: s}, nil
}

// New returns the root directory of a new memory file system (see NewFS).
func New(capBytes int64, readonly bool) (vfs.Dir, error) {
	fs, err := NewFS(capBytes, readonly)
	if err != nil {
		return nil, err
	}
	return fs.Root(), nil
}

// Root returns an open handle on the root directory.
func (fs *FS) Root() *tree.Dir { return fs.t.Root() }

// Tree returns the namespace.
func (fs *FS) Tree() *tree.Tree { return fs.t }

// Used returns the bytes charged against the cap.
func (fs *FS) Used() int64 { return fs.store.used.Load() }

// Cap returns the cap.
func (fs *FS) Cap() int64 { return fs.store.limit }

// store is the tree.Store of a memory file system: contents in memory,
// every allocation and every metadata charge counted against limit.
type store struct {
	limit int64
	used  atomic.Int64
}

var _ tree.Store = (*store)(nil)

// reserve takes n bytes of the cap, or fails with ENOSPC taking nothing.
func (s *store) reserve(n int64) error {
	for {
		u := s.used.Load()
		if n > s.limit-u {
			return syscall.ENOSPC
		}
		if s.used.CompareAndSwap(u, u+n) {
			return nil
		}
	}
}

func (s *store) release(n int64) { s.used.Add(-n) }

func (s *store) New(uint64) (tree.Content, error) { return &content{s: s}, nil }

var errNoLoad = errors.New("memfs: a memory file system is never loaded from a snapshot")

func (s *store) Open(uint64, int64) (tree.Content, error) { return nil, errNoLoad }

func (s *store) Free(_ uint64, c tree.Content) {
	if mc, ok := c.(*content); ok {
		mc.free()
	}
}

func (s *store) Charge(n int64) error {
	if n < 0 {
		s.release(-n)
		return nil
	}
	return s.reserve(n)
}

func (s *store) Commit(*tree.Tree) error { return nil }

// content is a file's data: pages[i] holds bytes [i*PageSize,
// i*PageSize+len(pages[i])); a nil page, and whatever lies past a page's
// length, reads as zero. Invariant: pages[i][len:cap] is zero, so a page
// grows by reslicing. charged is the sum of the pages' capacities and of
// the page table's (slotSize per slot: a sparse file's table costs memory
// too, so a write far out is charged for it).
// The tree serializes writers and keeps readers from running with them.
type content struct {
	s       *store
	size    int64
	pages   [][]byte
	charged int64
}

var _ tree.Allocator = (*content)(nil)

func (c *content) Size() int64 { return c.size }

func (c *content) Sync() error { return nil }

func (c *content) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if off >= c.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > c.size-off {
		n = int(c.size - off)
	}
	done := 0
	for done < n {
		pos := off + int64(done)
		i, o := int(pos/PageSize), int(pos%PageSize)
		k := min(PageSize-o, n-done)
		dst := p[done : done+k]
		var src []byte
		if i < len(c.pages) {
			if pg := c.pages[i]; o < len(pg) {
				src = pg[o:min(len(pg), o+k)]
			}
		}
		m := copy(dst, src)
		clear(dst[m:])
		done += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// growth is the capacity page i needs to hold bytes up to end (an offset
// within the page), or its capacity if it already does.
func (c *content) growth(i, end int) int {
	var have int
	if i < len(c.pages) {
		have = cap(c.pages[i])
	}
	if end <= have {
		return have
	}
	// A file with more than one page gets whole pages; the first page of
	// a small file doubles.
	if i > 0 || len(c.pages) > 1 || end > PageSize/2 {
		return PageSize
	}
	return min(PageSize, max(end, 2*have, minAlloc))
}

// prepare makes pages cover [off, off+n): it reserves what the growth
// costs first (ENOSPC: nothing changes), then grows.
func (c *content) prepare(off, n int64) error {
	if n == 0 {
		return nil
	}
	first, last := off/PageSize, (off+n-1)/PageSize
	if last >= int64(maxPages) {
		return syscall.EFBIG
	}
	var need int64
	tableCap := cap(c.pages)
	if int(last) >= tableCap {
		tableCap = max(int(last)+1, 2*cap(c.pages))
		need += int64(tableCap-cap(c.pages)) * slotSize
	}
	for i := first; i <= last; i++ {
		end := PageSize
		if i == last {
			end = int((off+n-1)%PageSize) + 1
		}
		var have int
		if int(i) < len(c.pages) {
			have = cap(c.pages[i])
		}
		need += int64(c.growth(int(i), end) - have)
	}
	if need > 0 {
		if err := c.s.reserve(need); err != nil {
			return err
		}
		c.charged += need
	}
	if tableCap > cap(c.pages) {
		t := make([][]byte, len(c.pages), tableCap)
		copy(t, c.pages)
		c.pages = t
	}
	if int(last) >= len(c.pages) {
		c.pages = c.pages[:last+1]
	}
	for i := first; i <= last; i++ {
		end := PageSize
		if i == last {
			end = int((off+n-1)%PageSize) + 1
		}
		pg := c.pages[i]
		if end <= len(pg) {
			continue
		}
		if end > cap(pg) {
			np := make([]byte, end, c.growth(int(i), end))
			copy(np, pg)
			pg = np
		}
		c.pages[i] = pg[:end]
	}
	return nil
}

// slotSize is what one page-table slot (a slice header) is charged.
const slotSize = 24

// maxPages bounds a file (1 TiB at 64 KiB pages), far beyond any cap, so
// that an offset near MaxInt64 cannot size the page table.
const maxPages = 1 << 24

func (c *content) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if err := c.prepare(off, int64(len(p))); err != nil {
		return 0, err
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		i, o := int(pos/PageSize), int(pos%PageSize)
		done += copy(c.pages[i][o:], p[done:])
	}
	if end := off + int64(len(p)); end > c.size {
		c.size = end
	}
	return len(p), nil
}

func (c *content) Allocate(off, n int64) error {
	if err := c.prepare(off, n); err != nil {
		return err
	}
	if end := off + n; end > c.size {
		c.size = end
	}
	return nil
}

func (c *content) Truncate(size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	if size > maxPages*PageSize {
		// Compared as a size: rounding size up to whole pages would
		// overflow near math.MaxInt64 and let any such size through.
		return syscall.EFBIG
	}
	if size < c.size {
		keep := int((size + PageSize - 1) / PageSize)
		if keep < len(c.pages) {
			for i := keep; i < len(c.pages); i++ {
				c.charged -= int64(cap(c.pages[i]))
				c.s.release(int64(cap(c.pages[i])))
				c.pages[i] = nil
			}
			c.pages = c.pages[:keep]
		}
		if keep > 0 && keep <= len(c.pages) {
			o := int(size - int64(keep-1)*PageSize)
			if pg := c.pages[keep-1]; o < len(pg) {
				clear(pg[o:])
				c.pages[keep-1] = pg[:o]
			}
		}
		if len(c.pages) == 0 || len(c.pages) < cap(c.pages)/4 {
			// Give back most of a page table that shrank.
			var t [][]byte
			if len(c.pages) > 0 {
				t = make([][]byte, len(c.pages))
				copy(t, c.pages)
			}
			freed := int64(cap(c.pages)-cap(t)) * slotSize
			c.pages = t
			c.charged -= freed
			c.s.release(freed)
		}
	}
	c.size = size
	return nil
}

// free returns all the file's memory (the file is gone).
func (c *content) free() {
	c.s.release(c.charged)
	c.charged = 0
	c.pages = nil
	c.size = 0
}
