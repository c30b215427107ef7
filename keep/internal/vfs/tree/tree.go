package tree

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// Content holds a regular file's bytes. Its methods have io.ReaderAt and
// io.WriterAt semantics (ReadAt returns io.EOF when it returns fewer bytes
// than asked; ranges past the size that were never written read as zero).
// The tree serializes writes, truncation and Sync of one file with its
// per-file lock; reads of one file may run concurrently with each other
// (never with a write), and Size may be called concurrently with reads.
type Content interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Truncate sets the size; growing adds zeros, shrinking frees data.
	Truncate(size int64) error
	Size() int64
	// Sync makes the data durable (a store in memory does nothing).
	Sync() error
}

// Allocator is implemented by Content that can reserve space for
// fd_allocate: [off, off+n) is backed afterwards and the size is at least
// off+n, or ENOSPC. Content without it grows with Truncate.
type Allocator interface {
	Allocate(off, n int64) error
}

// Store supplies and accounts the tree's file contents and metadata.
type Store interface {
	// New returns the (empty) content of a new regular file.
	New(ino uint64) (Content, error)
	// Open returns the content of regular file ino of a snapshot being
	// loaded (see Load); size is the size the snapshot records.
	Open(ino uint64, size int64) (Content, error)
	// Free is called once when file ino is gone (no name and no open
	// handle left); the tree does not use c afterwards.
	Free(ino uint64, c Content)
	// Charge adds n bytes of namespace metadata (negative n returns them)
	// to the store's accounting; an error (ENOSPC) refuses the change.
	// Returning bytes never fails.
	Charge(n int64) error
	// Commit is called after File.Sync, File.Datasync (after Content.Sync)
	// and Dir.Sync, one call at a time, without the tree's lock held; a
	// persistent store writes the namespace (Tree.Snapshot) there.
	Commit(t *Tree) error
}

// Metadata costs charged to the Store (see Store.Charge), so that a cap
// counts empty files and long names, not only file data.
const (
	// InodeCost is charged per inode (file, directory or symlink).
	InodeCost = 256
	// EntryCost plus the name's length is charged per directory entry.
	EntryCost = 64
)

// Options configure a tree.
type Options struct {
	// Store holds file contents; required.
	Store Store
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// Dev is the device number Stat reports.
	Dev uint64
	// Now returns the time in nanoseconds since the Unix epoch; nil means
	// the wall clock.
	Now func() int64
}

// Tree is a directory namespace. Its methods and those of its Dir and
// File handles are safe for concurrent use.
type Tree struct {
	mu       sync.Mutex
	commitMu sync.Mutex // orders Store.Commit calls
	store    Store
	readonly bool
	dev      uint64
	now      func() int64
	root     *node
	nextIno  uint64
	gen      uint64
}

// node is an inode.
type node struct {
	ino              uint64
	kind             fd.Filetype
	nlink            uint64 // directories: 2 + subdirectories while linked; 0 once removed
	atim, mtim, ctim int64

	// directories
	parent  *node // ".."; the root's is itself
	entries map[string]*entry
	order   []*entry // by seq; removed entries stay (dead) until compacted
	dead    int      // dead entries in order
	nextSeq uint64

	// regular files
	content Content
	io      sync.RWMutex // data lock: write/truncate/sync exclusive, reads shared
	opens   int          // open File handles
	freed   bool

	// symlinks
	target string
}

type entry struct {
	name string
	node *node
	seq  uint64
	dead bool
}

// firstSeq is the readdir cookie after "." (1) and ".." (2): entries are
// numbered from here, per directory, and never reuse a number.
const firstSeq = 3

// New returns a tree with an empty root directory.
func New(o Options) (*Tree, error) {
	t, err := newTree(o)
	if err != nil {
		return nil, err
	}
	if err := t.store.Charge(InodeCost); err != nil {
		return nil, fmt.Errorf("tree: root directory: %w", err)
	}
	now := t.now()
	t.root = t.newNode(fd.FiletypeDirectory, now)
	t.root.parent = t.root
	t.root.nlink = 2
	return t, nil
}

func newTree(o Options) (*Tree, error) {
	if o.Store == nil {
		return nil, errors.New("tree: no content store")
	}
	t := &Tree{store: o.Store, readonly: o.ReadOnly, dev: o.Dev, now: o.Now, nextIno: 1}
	if t.now == nil {
		t.now = func() int64 { return time.Now().UnixNano() }
	}
	return t, nil
}

// newNode makes a node with the next inode number (t.mu held or t not yet
// shared).
func (t *Tree) newNode(kind fd.Filetype, now int64) *node {
	n := &node{ino: t.nextIno, kind: kind, atim: now, mtim: now, ctim: now}
	t.nextIno++
	if kind == fd.FiletypeDirectory {
		n.entries = make(map[string]*entry)
		n.nextSeq = firstSeq
	}
	return n
}

// Root returns an open handle on the root directory.
func (t *Tree) Root() *Dir { return &Dir{t: t, n: t.root} }

// Gen counts the changes made to the tree (namespace, metadata and file
// data through its handles).
func (t *Tree) Gen() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gen
}

// ReadOnly reports whether the tree refuses changes.
func (t *Tree) ReadOnly() bool { return t.readonly }

// commit runs Store.Commit.
func (t *Tree) commit() error {
	t.commitMu.Lock()
	defer t.commitMu.Unlock()
	return t.store.Commit(t)
}

// link adds name → n to directory d (t.mu held; charge already taken).
func (d *node) link(name string, n *node) {
	e := &entry{name: name, node: n, seq: d.nextSeq}
	d.nextSeq++
	d.entries[name] = e
	d.order = append(d.order, e)
	if n.kind == fd.FiletypeDirectory {
		n.parent = d
		d.nlink++
	}
}

// unlink removes name from directory d (t.mu held).
func (d *node) unlink(name string) *entry {
	e := d.entries[name]
	delete(d.entries, name)
	e.dead = true
	d.dead++
	if e.node.kind == fd.FiletypeDirectory {
		d.nlink--
	}
	if d.dead > 16 && d.dead > len(d.order)/2 {
		live := d.order[:0]
		for _, x := range d.order {
			if !x.dead {
				live = append(live, x)
			}
		}
		clear(d.order[len(live):])
		d.order = live
		d.dead = 0
	}
	return e
}

// entryCost is what a directory entry named name is charged.
func entryCost(name string) int64 { return EntryCost + int64(len(name)) }

// nodeCost is what an inode is charged beyond InodeCost.
func nodeCost(n *node) int64 { return InodeCost + int64(len(n.target)) }

// drop is called when n lost a link or an open handle (t.mu held): an
// inode with neither is released.
func (t *Tree) drop(n *node) {
	if n.nlink > 0 || n.opens > 0 || n.freed {
		return
	}
	n.freed = true
	t.store.Charge(-nodeCost(n))
	if n.kind == fd.FiletypeRegularFile && n.content != nil {
		n.io.Lock()
		c := n.content
		n.content = nil
		n.io.Unlock()
		t.store.Free(n.ino, c)
	}
}

// removed reports whether directory d was removed (t.mu held).
func (d *node) removed() bool { return d.nlink == 0 }

// stat returns n's filestat (t.mu held).
func (t *Tree) stat(n *node) vfs.Stat {
	s := vfs.Stat{Dev: t.dev, Ino: n.ino, Type: n.kind, Nlink: n.nlink, Atim: n.atim, Mtim: n.mtim, Ctim: n.ctim}
	switch n.kind {
	case fd.FiletypeRegularFile:
		if n.content != nil {
			n.io.RLock()
			s.Size = uint64(n.content.Size())
			n.io.RUnlock()
		}
	case fd.FiletypeSymbolicLink:
		s.Size = uint64(len(n.target))
	case fd.FiletypeDirectory:
		s.Size = uint64(len(n.entries))
	}
	return s
}

// touch records a change of n's contents (t.mu held).
func (t *Tree) touch(n *node, now int64) {
	n.mtim, n.ctim = now, now
	t.gen++
}

var (
	errNotDir   = syscall.ENOTDIR
	errIsDir    = syscall.EISDIR
	errNoEnt    = syscall.ENOENT
	errExist    = syscall.EEXIST
	errInval    = syscall.EINVAL
	errROFS     = syscall.EROFS
	errBadf     = syscall.EBADF
	errNotEmpty = syscall.ENOTEMPTY
	errPerm     = syscall.EPERM
	errXDev     = syscall.EXDEV
	errFBig     = syscall.EFBIG
)
