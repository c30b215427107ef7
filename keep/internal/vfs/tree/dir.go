package tree

import (
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// WASI preview 1 rights (the fd package names only those of streams).
const (
	rightFdDatasync           uint64 = 1 << 0
	rightFdRead               uint64 = 1 << 1
	rightFdSeek               uint64 = 1 << 2
	rightFdFdstatSetFlags     uint64 = 1 << 3
	rightFdSync               uint64 = 1 << 4
	rightFdTell               uint64 = 1 << 5
	rightFdWrite              uint64 = 1 << 6
	rightFdAdvise             uint64 = 1 << 7
	rightFdAllocate           uint64 = 1 << 8
	rightPathCreateDirectory  uint64 = 1 << 9
	rightPathCreateFile       uint64 = 1 << 10
	rightPathLinkSource       uint64 = 1 << 11
	rightPathLinkTarget       uint64 = 1 << 12
	rightPathOpen             uint64 = 1 << 13
	rightFdReaddir            uint64 = 1 << 14
	rightPathReadlink         uint64 = 1 << 15
	rightPathRenameSource     uint64 = 1 << 16
	rightPathRenameTarget     uint64 = 1 << 17
	rightPathFilestatGet      uint64 = 1 << 18
	rightPathFilestatSetSize  uint64 = 1 << 19
	rightPathFilestatSetTimes uint64 = 1 << 20
	rightFdFilestatGet        uint64 = 1 << 21
	rightFdFilestatSetSize    uint64 = 1 << 22
	rightFdFilestatSetTimes   uint64 = 1 << 23
	rightPathSymlink          uint64 = 1 << 24
	rightPathRemoveDirectory  uint64 = 1 << 25
	rightPathUnlinkFile       uint64 = 1 << 26
	rightPollFdReadwrite      uint64 = 1 << 27

	dirRightsRead = rightFdFdstatSetFlags | rightPathOpen | rightFdReaddir | rightPathReadlink |
		rightPathFilestatGet | rightFdFilestatGet
	dirRightsWrite = rightFdDatasync | rightFdSync | rightPathCreateDirectory | rightPathCreateFile |
		rightPathLinkSource | rightPathLinkTarget | rightPathRenameSource | rightPathRenameTarget |
		rightPathFilestatSetSize | rightPathFilestatSetTimes | rightFdFilestatSetTimes |
		rightPathSymlink | rightPathRemoveDirectory | rightPathUnlinkFile
	fileRightsRead = rightFdRead | rightFdSeek | rightFdFdstatSetFlags | rightFdTell | rightFdAdvise |
		rightFdFilestatGet | rightPollFdReadwrite | rightFdSync | rightFdDatasync
	fileRightsWrite = rightFdWrite | rightFdAllocate | rightFdFilestatSetSize | rightFdFilestatSetTimes
)

// Dir is an open directory of a tree; it implements vfs.Dir. Paths are
// relative to it and never resolve above it.
type Dir struct {
	t      *Tree
	n      *node
	closed atomic.Bool
}

var _ vfs.Dir = (*Dir)(nil)

// TreeDir is implemented by a vfs.Dir backed by a Tree (a *Dir, or a
// source's wrapper of one), so that Rename and Link can tell a directory
// of the same tree from another source's (EXDEV).
type TreeDir interface {
	TreeDir() *Dir
}

// TreeDir implements TreeDir.
func (d *Dir) TreeDir() *Dir { return d }

// Tree returns the tree d belongs to.
func (d *Dir) Tree() *Tree { return d.t }

// Ino returns the directory's inode number.
func (d *Dir) Ino() uint64 { return d.n.ino }

// Filetype implements fd.File.
func (d *Dir) Filetype() fd.Filetype { return fd.FiletypeDirectory }

// Rights implements fd.File.
func (d *Dir) Rights() uint64 {
	if d.t.readonly {
		return dirRightsRead
	}
	return dirRightsRead | dirRightsWrite
}

// Close implements fd.File.
func (d *Dir) Close() error {
	if d.closed.Swap(true) {
		return errBadf
	}
	return nil
}

// lock takes the tree's lock unless d is closed.
func (d *Dir) lock() error {
	if d.closed.Load() {
		return errBadf
	}
	d.t.mu.Lock()
	return nil
}

func (d *Dir) unlock() { d.t.mu.Unlock() }

// writable refuses changes to a read-only tree or a removed directory
// (t.mu held).
func (d *Dir) writable(dir *node) error {
	if d.t.readonly {
		return errROFS
	}
	if dir.removed() {
		return errNoEnt
	}
	return nil
}

// Open implements vfs.Dir.
func (d *Dir) Open(path string, o vfs.OpenOptions) (fd.File, error) {
	if err := d.lock(); err != nil {
		return nil, err
	}
	defer d.unlock()
	t := d.t
	// O_CREAT|O_EXCL never follows a final symlink, dangling or not.
	follow := (o.Follow && !(o.Create && o.Excl)) || strings.HasSuffix(path, "/")
	f, err := t.resolve(d.n, path, follow)
	if err != nil {
		return nil, err
	}
	n := f.node
	if n == nil {
		if !o.Create {
			return nil, errNoEnt
		}
		switch {
		case o.Directory:
			// O_CREAT|O_DIRECTORY makes nothing (EINVAL, as Linux).
			return nil, errInval
		case f.slash:
			// open("new/", O_CREAT) makes no directory.
			return nil, errIsDir
		}
		if err := d.writable(f.dir); err != nil {
			return nil, err
		}
		n, err = t.create(f.dir, f.name, fd.FiletypeRegularFile, "")
		if err != nil {
			return nil, err
		}
	} else {
		if o.Create && o.Excl {
			return nil, errExist
		}
		switch n.kind {
		case fd.FiletypeSymbolicLink:
			// Only a final symlink that was not to be followed is left.
			if o.Directory {
				return nil, errNotDir
			}
			return nil, syscall.ELOOP
		case fd.FiletypeDirectory:
			if o.Write || o.Trunc || o.Append {
				return nil, errIsDir
			}
			return &Dir{t: t, n: n}, nil
		}
		if o.Directory || f.slash {
			return nil, errNotDir
		}
		if (o.Write || o.Trunc) && t.readonly {
			return nil, errROFS
		}
	}
	file := &File{t: t, n: n, read: o.Read, write: o.Write, sync: o.Sync || o.Dsync}
	file.append.Store(o.Append)
	n.opens++
	if o.Trunc {
		// Truncating under the tree's lock keeps O_TRUNC atomic with the
		// lookup; it only frees memory or shortens a host file.
		n.io.Lock()
		var err error
		if n.content.Size() != 0 {
			err = n.content.Truncate(0)
		}
		n.io.Unlock()
		if err != nil {
			n.opens--
			t.drop(n)
			return nil, err
		}
		t.touch(n, t.now())
	}
	return file, nil
}

// create makes a new node named name in dir (t.mu held, dir writable,
// name absent). A symlink's target is given.
func (t *Tree) create(dir *node, name string, kind fd.Filetype, target string) (*node, error) {
	if err := vfs.ValidName(name); err != nil {
		return nil, err
	}
	cost := InodeCost + int64(len(target)) + entryCost(name)
	if err := t.store.Charge(cost); err != nil {
		return nil, err
	}
	now := t.now()
	n := t.newNode(kind, now)
	switch kind {
	case fd.FiletypeRegularFile:
		c, err := t.store.New(n.ino)
		if err != nil {
			t.store.Charge(-cost)
			return nil, err
		}
		n.content = c
		n.nlink = 1
	case fd.FiletypeDirectory:
		n.nlink = 2
	case fd.FiletypeSymbolicLink:
		n.target = target
		n.nlink = 1
	}
	dir.link(name, n)
	t.touch(dir, now)
	return n, nil
}

// Stat implements vfs.Dir.
func (d *Dir) Stat() (vfs.Stat, error) {
	if err := d.lock(); err != nil {
		return vfs.Stat{}, err
	}
	defer d.unlock()
	return d.t.stat(d.n), nil
}

// lookup resolves path to an existing node, following a final symlink if
// follow (or if path ends in '/') (t.mu held).
func (d *Dir) lookup(path string, follow bool) (*node, error) {
	f, err := d.t.resolve(d.n, path, follow || strings.HasSuffix(path, "/"))
	if err != nil {
		return nil, err
	}
	if f.node == nil {
		return nil, errNoEnt
	}
	if f.slash && f.node.kind != fd.FiletypeDirectory {
		return nil, errNotDir
	}
	return f.node, nil
}

// StatAt implements vfs.Dir.
func (d *Dir) StatAt(path string, follow bool) (vfs.Stat, error) {
	if err := d.lock(); err != nil {
		return vfs.Stat{}, err
	}
	defer d.unlock()
	n, err := d.lookup(path, follow)
	if err != nil {
		return vfs.Stat{}, err
	}
	return d.t.stat(n), nil
}

// SetTimes implements vfs.Dir.
func (d *Dir) SetTimes(tm vfs.Times) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	return d.t.setTimes(d.n, tm)
}

// SetTimesAt implements vfs.Dir.
func (d *Dir) SetTimesAt(path string, follow bool, tm vfs.Times) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	n, err := d.lookup(path, follow)
	if err != nil {
		return err
	}
	return d.t.setTimes(n, tm)
}

// setTimes applies tm to n (t.mu held).
func (t *Tree) setTimes(n *node, tm vfs.Times) error {
	if (tm.SetAtim && tm.AtimNow) || (tm.SetMtim && tm.MtimNow) {
		return errInval
	}
	if t.readonly {
		return errROFS
	}
	now := t.now()
	switch {
	case tm.SetAtim:
		n.atim = tm.Atim
	case tm.AtimNow:
		n.atim = now
	}
	switch {
	case tm.SetMtim:
		n.mtim = tm.Mtim
	case tm.MtimNow:
		n.mtim = now
	}
	n.ctim = now
	t.gen++
	return nil
}

// Mkdir implements vfs.Dir.
func (d *Dir) Mkdir(path string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	f, err := d.t.resolve(d.n, path, false)
	if err != nil {
		return err
	}
	if f.node != nil {
		return errExist
	}
	if err := d.writable(f.dir); err != nil {
		return err
	}
	_, err = d.t.create(f.dir, f.name, fd.FiletypeDirectory, "")
	return err
}

// Rmdir implements vfs.Dir.
func (d *Dir) Rmdir(path string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	t := d.t
	f, err := t.resolve(d.n, path, false)
	if err != nil {
		return err
	}
	switch {
	case f.node == nil:
		return errNoEnt
	case f.dir == nil && f.name == ".":
		return errInval
	case f.dir == nil:
		return errNotEmpty
	case f.node.kind != fd.FiletypeDirectory:
		return errNotDir
	case len(f.node.entries) != 0:
		return errNotEmpty
	}
	if err := d.writable(f.dir); err != nil {
		return err
	}
	if f.node == t.root {
		return syscall.EBUSY
	}
	t.remove(f.dir, f.name)
	return nil
}

// remove unlinks name from dir and updates link counts and times (t.mu
// held).
func (t *Tree) remove(dir *node, name string) {
	e := dir.unlink(name)
	n := e.node
	now := t.now()
	if n.kind == fd.FiletypeDirectory {
		n.nlink = 0
	} else {
		n.nlink--
	}
	n.ctim = now
	t.touch(dir, now)
	t.store.Charge(-entryCost(name))
	t.drop(n)
}

// Unlink implements vfs.Dir.
func (d *Dir) Unlink(path string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	t := d.t
	f, err := t.resolve(d.n, path, false)
	if err != nil {
		return err
	}
	switch {
	case f.node == nil:
		return errNoEnt
	case f.dir == nil || f.node.kind == fd.FiletypeDirectory:
		return errIsDir
	case f.slash:
		// "file/" or "symlink/": a directory was asked for.
		if f.node.kind == fd.FiletypeSymbolicLink {
			if n, err := d.lookup(path, true); err == nil && n.kind == fd.FiletypeDirectory {
				return errIsDir
			}
		}
		return errNotDir
	}
	if err := d.writable(f.dir); err != nil {
		return err
	}
	t.remove(f.dir, f.name)
	return nil
}

// treeDir returns the *Dir behind v if it belongs to tree t, or EXDEV.
func (t *Tree) treeDir(v vfs.Dir) (*Dir, error) {
	td, ok := v.(TreeDir)
	if !ok {
		return nil, errXDev
	}
	d := td.TreeDir()
	if d == nil || d.t != t {
		return nil, errXDev
	}
	if d.closed.Load() {
		return nil, errBadf
	}
	return d, nil
}

// Rename implements vfs.Dir.
func (d *Dir) Rename(oldPath string, newDir vfs.Dir, newPath string) error {
	nd, err := d.t.treeDir(newDir)
	if err != nil {
		return err
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	t := d.t
	of, err := t.resolve(d.n, oldPath, false)
	if err != nil {
		return err
	}
	nf, err := t.resolve(nd.n, newPath, false)
	if err != nil {
		return err
	}
	src := of.node
	switch {
	case src == nil:
		return errNoEnt
	case of.dir == nil || nf.dir == nil:
		// ".", ".." or a path ending in one of them.
		if nf.dir == nil && nf.node != nil && src.kind != fd.FiletypeDirectory {
			return errIsDir
		}
		return syscall.EBUSY
	case src.kind != fd.FiletypeDirectory && (of.slash || nf.slash):
		return errNotDir
	}
	dst := nf.node
	if dst != nil {
		if dst == src {
			// Two names of one file (or the same name): nothing to do.
			return nil
		}
		switch {
		case src.kind == fd.FiletypeDirectory && dst.kind != fd.FiletypeDirectory:
			return errNotDir
		case src.kind != fd.FiletypeDirectory && dst.kind == fd.FiletypeDirectory:
			return errIsDir
		case dst.kind == fd.FiletypeDirectory && len(dst.entries) != 0:
			return errNotEmpty
		}
	}
	if src.kind == fd.FiletypeDirectory {
		// The new parent must not be the directory itself or beneath it.
		for p := nf.dir; ; p = p.parent {
			if p == src {
				return errInval
			}
			if p == t.root || p.parent == p || p.removed() {
				break
			}
		}
	}
	if err := d.writable(of.dir); err != nil {
		return err
	}
	if err := d.writable(nf.dir); err != nil {
		return err
	}
	if err := vfs.ValidName(nf.name); err != nil {
		return err
	}
	if src == t.root {
		return syscall.EBUSY
	}
	// Only a longer name costs more (a full file system can still rename).
	delta := entryCost(nf.name) - entryCost(of.name)
	if delta > 0 {
		if err := t.store.Charge(delta); err != nil {
			return err
		}
	}
	if dst != nil {
		t.remove(nf.dir, nf.name)
	}
	now := t.now()
	of.dir.unlink(of.name)
	if delta < 0 {
		t.store.Charge(delta)
	}
	nf.dir.link(nf.name, src)
	src.ctim = now
	t.touch(of.dir, now)
	t.touch(nf.dir, now)
	return nil
}

// Link implements vfs.Dir.
func (d *Dir) Link(oldPath string, follow bool, newDir vfs.Dir, newPath string) error {
	nd, err := d.t.treeDir(newDir)
	if err != nil {
		return err
	}
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	t := d.t
	src, err := d.lookup(oldPath, follow)
	if err != nil {
		return err
	}
	if src.kind == fd.FiletypeDirectory {
		return errPerm
	}
	nf, err := t.resolve(nd.n, newPath, false)
	if err != nil {
		return err
	}
	switch {
	case nf.node != nil:
		return errExist
	case nf.slash:
		return errNoEnt
	}
	if err := d.writable(nf.dir); err != nil {
		return err
	}
	if err := vfs.ValidName(nf.name); err != nil {
		return err
	}
	if src.nlink == 0 {
		// linkat of an unlinked (but open) file: ENOENT as in Linux.
		return errNoEnt
	}
	if err := t.store.Charge(entryCost(nf.name)); err != nil {
		return err
	}
	now := t.now()
	nf.dir.link(nf.name, src)
	src.nlink++
	src.ctim = now
	t.touch(nf.dir, now)
	return nil
}

// Symlink implements vfs.Dir.
func (d *Dir) Symlink(target, path string) error {
	if err := d.lock(); err != nil {
		return err
	}
	defer d.unlock()
	switch {
	case target == "":
		return errNoEnt
	case len(target) > vfs.MaxPath:
		return syscall.ENAMETOOLONG
	case strings.IndexByte(target, 0) >= 0:
		return errInval
	}
	f, err := d.t.resolve(d.n, path, false)
	if err != nil {
		return err
	}
	switch {
	case f.node != nil:
		return errExist
	case f.slash:
		return errNoEnt
	}
	if err := d.writable(f.dir); err != nil {
		return err
	}
	_, err = d.t.create(f.dir, f.name, fd.FiletypeSymbolicLink, target)
	return err
}

// Readlink implements vfs.Dir.
func (d *Dir) Readlink(path string) (string, error) {
	if err := d.lock(); err != nil {
		return "", err
	}
	defer d.unlock()
	f, err := d.t.resolve(d.n, path, false)
	if err != nil {
		return "", err
	}
	switch {
	case f.node == nil:
		return "", errNoEnt
	case f.node.kind != fd.FiletypeSymbolicLink:
		return "", errInval
	case f.slash:
		return "", errNotDir
	}
	return f.node.target, nil
}

// ReadDir implements vfs.Dir. Cookies: "." is followed by 1, ".." by 2,
// and each entry by its per-directory sequence number (from 3, never
// reused), so a listing continues where it stopped whatever was created
// or removed meanwhile: removed entries are skipped, entries created after
// the cookie are listed, and none is listed twice.
func (d *Dir) ReadDir(cookie uint64, max int) ([]vfs.Dirent, error) {
	if err := d.lock(); err != nil {
		return nil, err
	}
	defer d.unlock()
	n := d.n
	if n.removed() || max <= 0 {
		return nil, nil
	}
	var out []vfs.Dirent
	if cookie == 0 {
		out = append(out, vfs.Dirent{Next: 1, Ino: n.ino, Name: ".", Type: fd.FiletypeDirectory})
	}
	if cookie <= 1 && len(out) < max {
		out = append(out, vfs.Dirent{Next: 2, Ino: n.parent.ino, Name: "..", Type: fd.FiletypeDirectory})
	}
	// The first entry with seq > cookie (order is sorted by seq).
	lo, hi := 0, len(n.order)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.order[m].seq <= cookie {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for _, e := range n.order[lo:] {
		if len(out) >= max {
			break
		}
		if e.dead {
			continue
		}
		out = append(out, vfs.Dirent{Next: e.seq, Ino: e.node.ino, Name: e.name, Type: e.node.kind})
	}
	return out, nil
}

// Sync implements vfs.Dir: the store commits the namespace.
func (d *Dir) Sync() error {
	if d.closed.Load() {
		return errBadf
	}
	if d.t.readonly {
		return nil
	}
	return d.t.commit()
}
