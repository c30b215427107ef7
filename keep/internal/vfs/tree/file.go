package tree

import (
	"io"
	"math"
	"sync"
	"sync/atomic"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// File is an open regular file of a tree; it implements vfs.File. It
// stays usable after its last name is removed, until it is closed.
type File struct {
	t           *Tree
	n           *node
	read, write bool
	sync        bool // O_SYNC / O_DSYNC: commit after each write
	append      atomic.Bool

	mu     sync.Mutex // off
	off    int64
	closed atomic.Bool
}

var _ vfs.File = (*File)(nil)

// Ino returns the file's inode number.
func (f *File) Ino() uint64 { return f.n.ino }

// Content returns the file's content (for a store's own use).
func (f *File) Content() Content { return f.n.content }

// Filetype implements fd.File.
func (f *File) Filetype() fd.Filetype { return fd.FiletypeRegularFile }

// Rights implements fd.File.
func (f *File) Rights() uint64 {
	r := fileRightsRead
	if f.write {
		r |= fileRightsWrite
	}
	if !f.read {
		r &^= rightFdRead
	}
	return r
}

// PollFD implements fd.Poller: a file is always ready.
func (f *File) PollFD(bool) (int, bool) { return -1, true }

// Close implements fd.File. The last close of a file without a name
// frees its content.
func (f *File) Close() error {
	if f.closed.Swap(true) {
		return errBadf
	}
	t := f.t
	t.mu.Lock()
	f.n.opens--
	t.drop(f.n)
	t.mu.Unlock()
	return nil
}

func (f *File) check(write bool) error {
	switch {
	case f.closed.Load():
		return errBadf
	case write && !f.write, !write && !f.read:
		return errBadf
	}
	return nil
}

// Read implements fd.Stream: it reads at the file's offset and advances
// it; 0, io.EOF at the end.
func (f *File) Read(p []byte, _ bool) (int, error) {
	if err := f.check(false); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	if n > 0 && err == io.EOF {
		err = nil
	}
	return n, err
}

// ReadAt implements vfs.File (io.ReaderAt semantics: io.EOF with a short
// count at the end of the file).
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check(false); err != nil {
		return 0, err
	}
	return f.readAt(p, off)
}

func (f *File) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errInval
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := f.n
	n.io.RLock()
	defer n.io.RUnlock()
	if n.content == nil { // closed meanwhile
		return 0, errBadf
	}
	return n.content.ReadAt(p, off)
}

// Write implements fd.Stream: it writes at the file's offset (at the end
// with Append) and advances it.
func (f *File) Write(p []byte, _ bool) (int, error) {
	if err := f.check(true); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, off, err := f.writeAt(p, f.off, f.append.Load())
	f.off = off + int64(n)
	return n, err
}

// WriteAt implements vfs.File (pwrite: the offset is used even with
// Append, as WASI fd_pwrite specifies).
func (f *File) WriteAt(p []byte, off int64) (int, error) {
	if err := f.check(true); err != nil {
		return 0, err
	}
	n, _, err := f.writeAt(p, off, false)
	return n, err
}

// writeAt writes p at off, or at the end if appending; it returns the
// offset used.
func (f *File) writeAt(p []byte, off int64, appending bool) (int, int64, error) {
	if off < 0 {
		return 0, off, errInval
	}
	if f.t.readonly {
		return 0, off, errROFS
	}
	n := f.n
	n.io.Lock()
	if n.content == nil {
		n.io.Unlock()
		return 0, off, errBadf
	}
	if appending {
		off = n.content.Size()
	}
	if int64(len(p)) > math.MaxInt64-off {
		n.io.Unlock()
		return 0, off, errFBig
	}
	var w int
	var err error
	if len(p) > 0 {
		w, err = n.content.WriteAt(p, off)
	}
	n.io.Unlock()
	if w > 0 {
		f.modified()
	}
	if err == nil && f.sync {
		err = f.syncData()
	}
	return w, off, err
}

// modified updates mtim and ctim after a data change.
func (f *File) modified() {
	t := f.t
	t.mu.Lock()
	t.touch(f.n, t.now())
	t.mu.Unlock()
}

// Seek implements vfs.File.
func (f *File) Seek(off int64, whence int) (int64, error) {
	if f.closed.Load() {
		return 0, errBadf
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.off
	case io.SeekEnd:
		n := f.n
		n.io.RLock()
		if n.content != nil {
			base = n.content.Size()
		}
		n.io.RUnlock()
	default:
		return 0, errInval
	}
	if (off > 0 && base > math.MaxInt64-off) || base+off < 0 {
		return 0, errInval
	}
	f.off = base + off
	return f.off, nil
}

// Stat implements vfs.File.
func (f *File) Stat() (vfs.Stat, error) {
	if f.closed.Load() {
		return vfs.Stat{}, errBadf
	}
	t := f.t
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stat(f.n), nil
}

// Truncate implements vfs.File.
func (f *File) Truncate(size int64) error {
	if err := f.check(true); err != nil {
		return err
	}
	if size < 0 {
		return errInval
	}
	if f.t.readonly {
		return errROFS
	}
	n := f.n
	n.io.Lock()
	var err error = errBadf
	if n.content != nil {
		err = n.content.Truncate(size)
	}
	n.io.Unlock()
	if err != nil {
		return err
	}
	f.modified()
	return nil
}

// Allocate implements vfs.File.
func (f *File) Allocate(off, size int64) error {
	if err := f.check(true); err != nil {
		return err
	}
	if off < 0 || size <= 0 {
		return errInval
	}
	if size > math.MaxInt64-off {
		return errFBig
	}
	if f.t.readonly {
		return errROFS
	}
	n := f.n
	n.io.Lock()
	var err error
	grew := false
	if n.content == nil {
		err = errBadf
	} else if a, ok := n.content.(Allocator); ok {
		old := n.content.Size()
		err = a.Allocate(off, size)
		grew = n.content.Size() != old
	} else if n.content.Size() < off+size {
		err = n.content.Truncate(off + size)
		grew = err == nil
	}
	n.io.Unlock()
	if grew {
		f.modified()
	}
	return err
}

// SetTimes implements vfs.File.
func (f *File) SetTimes(tm vfs.Times) error {
	if f.closed.Load() {
		return errBadf
	}
	t := f.t
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.setTimes(f.n, tm)
}

// SetAppend implements vfs.File.
func (f *File) SetAppend(on bool) error {
	if f.closed.Load() {
		return errBadf
	}
	f.append.Store(on)
	return nil
}

// Sync implements vfs.File: the content's Sync, then the store's Commit.
func (f *File) Sync() error {
	if f.closed.Load() {
		return errBadf
	}
	return f.syncData()
}

// Datasync implements vfs.File (as Sync: the namespace is small).
func (f *File) Datasync() error { return f.Sync() }

func (f *File) syncData() error {
	if f.t.readonly {
		return nil
	}
	n := f.n
	n.io.Lock()
	var err error = errBadf
	if n.content != nil {
		err = n.content.Sync()
	}
	n.io.Unlock()
	if err != nil {
		return err
	}
	return f.t.commit()
}
