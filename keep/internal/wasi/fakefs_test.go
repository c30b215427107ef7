package wasi

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// fakeFS is a small in-memory file system written to the vfs interface
// doc, for the WASI layer's own tests: it lets them check argument
// validation and errno mapping without a real source (those have their own
// tests, and wasi tests over them too where they build). Paths resolve
// beneath the root: "..", absolute paths and symlinks never leave it
// (vfs.ErrNotCapable).
type fakeFS struct {
	root  *fnode
	ino   uint64
	clock int64
	// fail, when set, is returned by every call that reaches the fs.
	fail error
}

// snapshot describes the whole tree (names, types, contents, targets,
// times), to compare before and after a call.
func (fs *fakeFS) snapshot() string {
	var b strings.Builder
	seen := map[*fnode]bool{}
	var walk func(n *fnode, path string)
	walk = func(n *fnode, path string) {
		fmt.Fprintf(&b, "%s %d %d %q %q %d %d\n", path, n.typ, n.ino, n.data, n.target, n.atim, n.mtim)
		if seen[n] {
			return
		}
		seen[n] = true
		names := make([]string, 0, len(n.kids))
		for name := range n.kids {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			walk(n.kids[name], path+"/"+name)
		}
	}
	walk(fs.root, "")
	return b.String()
}

type fnode struct {
	typ              fd.Filetype
	ino, nlink       uint64
	data             []byte
	target           string
	kids             map[string]*fnode
	parent           *fnode
	atim, mtim, ctim int64
}

func newFakeFS() *fakeFS {
	fs := &fakeFS{}
	fs.root = fs.node(fd.FiletypeDirectory)
	fs.root.parent = fs.root
	return fs
}

func (fs *fakeFS) node(t fd.Filetype) *fnode {
	fs.ino++
	fs.clock += 1000
	n := &fnode{typ: t, ino: fs.ino, nlink: 1, atim: fs.clock, mtim: fs.clock, ctim: fs.clock}
	if t == fd.FiletypeDirectory {
		n.kids = map[string]*fnode{}
		n.nlink = 2
	}
	return n
}

// preopen returns the fs root as a preopen named name.
func (fs *fakeFS) preopen(name string) *vfs.Preopen {
	return &vfs.Preopen{Dir: &fakeDir{fs: fs, n: fs.root}, Name: name}
}

// walk resolves path beneath dir: the final component's parent and name,
// and its node (nil if it does not exist). A symlink in the final
// component is followed if follow (or the path ends in '/'). ".." never
// goes above dir.
func (fs *fakeFS) walk(dir *fnode, path string, follow bool, depth int) (parent *fnode, name string, n *fnode, err error) {
	if fs.fail != nil {
		return nil, "", nil, fs.fail
	}
	ps, name, n, err := fs.resolve([]*fnode{dir}, path, follow, depth)
	if err != nil {
		return nil, "", nil, err
	}
	return ps[len(ps)-1], name, n, nil
}

// resolve walks path from the top of stack (the directories from the base
// down), returning the parent's stack.
func (fs *fakeFS) resolve(stack []*fnode, path string, follow bool, depth int) ([]*fnode, string, *fnode, error) {
	if depth > vfs.MaxSymlinks {
		return nil, "", nil, syscall.ELOOP
	}
	if path == "" {
		return nil, "", nil, syscall.ENOENT
	}
	if path[0] == '/' {
		return nil, "", nil, vfs.ErrNotCapable
	}
	trailing := strings.HasSuffix(path, "/")
	var comps []string
	for _, c := range strings.Split(path, "/") {
		if c != "" {
			comps = append(comps, c)
		}
	}
	stack = append([]*fnode(nil), stack...)
	for i, c := range comps {
		if len(c) > vfs.MaxName {
			return nil, "", nil, syscall.ENAMETOOLONG
		}
		cur := stack[len(stack)-1]
		if cur.typ != fd.FiletypeDirectory {
			return nil, "", nil, syscall.ENOTDIR
		}
		last := i == len(comps)-1
		var child *fnode
		var childStack []*fnode
		switch c {
		case ".":
			child, childStack = cur, stack
		case "..":
			if len(stack) == 1 {
				return nil, "", nil, vfs.ErrNotCapable
			}
			childStack = stack[:len(stack)-1]
			child = childStack[len(childStack)-1]
		default:
			child = cur.kids[c]
			childStack = append(append([]*fnode(nil), stack...), child)
		}
		if child != nil && child.typ == fd.FiletypeSymbolicLink && (!last || follow || trailing) {
			ps, _, t, err := fs.resolve(stack, child.target, true, depth+1)
			if err != nil {
				return nil, "", nil, err
			}
			if t == nil {
				if !last {
					return nil, "", nil, syscall.ENOENT
				}
				// A dangling symlink: creating through it is not supported.
				return stack, c, child, nil
			}
			child = t
			childStack = append(ps, t)
		}
		if last {
			if trailing && child != nil && child.typ != fd.FiletypeDirectory {
				return nil, "", nil, syscall.ENOTDIR
			}
			return stack, c, child, nil
		}
		if child == nil {
			return nil, "", nil, syscall.ENOENT
		}
		stack = childStack
	}
	// Only slashes: the base itself.
	return stack, ".", stack[len(stack)-1], nil
}

func (n *fnode) stat() vfs.Stat {
	return vfs.Stat{Dev: 1, Ino: n.ino, Type: n.typ, Nlink: n.nlink, Size: uint64(len(n.data) + len(n.target)), Atim: n.atim, Mtim: n.mtim, Ctim: n.ctim}
}

func (fs *fakeFS) setTimes(n *fnode, t vfs.Times) {
	fs.clock += 1000
	switch {
	case t.SetAtim:
		n.atim = t.Atim
	case t.AtimNow:
		n.atim = fs.clock
	}
	switch {
	case t.SetMtim:
		n.mtim = t.Mtim
	case t.MtimNow:
		n.mtim = fs.clock
	}
}

type fakeDir struct {
	fs     *fakeFS
	n      *fnode
	closed bool
}

func (d *fakeDir) Filetype() fd.Filetype { return fd.FiletypeDirectory }
func (d *fakeDir) Rights() uint64        { return fd.RightsDir }
func (d *fakeDir) Close() error {
	if d.closed {
		return syscall.EBADF
	}
	d.closed = true
	return nil
}

func (d *fakeDir) Open(path string, o vfs.OpenOptions) (fd.File, error) {
	parent, name, n, err := d.fs.walk(d.n, path, o.Follow, 0)
	if err != nil {
		return nil, err
	}
	switch {
	case n == nil && !o.Create:
		return nil, syscall.ENOENT
	case n == nil:
		if strings.HasSuffix(path, "/") {
			return nil, syscall.EISDIR
		}
		n = d.fs.node(fd.FiletypeRegularFile)
		parent.kids[name] = n
	case o.Create && o.Excl:
		return nil, syscall.EEXIST
	case n.typ == fd.FiletypeSymbolicLink:
		return nil, syscall.ELOOP
	case n.typ == fd.FiletypeDirectory:
		if o.Write {
			return nil, syscall.EISDIR
		}
		return &fakeDir{fs: d.fs, n: n}, nil
	case o.Directory:
		return nil, syscall.ENOTDIR
	}
	if o.Trunc {
		n.data = nil
	}
	return &fakeFile{fs: d.fs, n: n, read: o.Read, write: o.Write, append: o.Append}, nil
}

func (d *fakeDir) Stat() (vfs.Stat, error) { return d.n.stat(), nil }

func (d *fakeDir) StatAt(path string, follow bool) (vfs.Stat, error) {
	_, _, n, err := d.fs.walk(d.n, path, follow, 0)
	if err != nil {
		return vfs.Stat{}, err
	}
	if n == nil {
		return vfs.Stat{}, syscall.ENOENT
	}
	return n.stat(), nil
}

func (d *fakeDir) SetTimes(t vfs.Times) error {
	d.fs.setTimes(d.n, t)
	return nil
}

func (d *fakeDir) SetTimesAt(path string, follow bool, t vfs.Times) error {
	_, _, n, err := d.fs.walk(d.n, path, follow, 0)
	if err != nil {
		return err
	}
	if n == nil {
		return syscall.ENOENT
	}
	d.fs.setTimes(n, t)
	return nil
}

func (d *fakeDir) Mkdir(path string) error {
	parent, name, n, err := d.fs.walk(d.n, path, false, 0)
	if err != nil {
		return err
	}
	if n != nil {
		return syscall.EEXIST
	}
	c := d.fs.node(fd.FiletypeDirectory)
	c.parent = parent
	parent.kids[name] = c
	return nil
}

func (d *fakeDir) Rmdir(path string) error {
	parent, name, n, err := d.fs.walk(d.n, path, false, 0)
	switch {
	case err != nil:
		return err
	case n == nil:
		return syscall.ENOENT
	case name == "." || name == "..":
		return syscall.EINVAL
	case n.typ != fd.FiletypeDirectory:
		return syscall.ENOTDIR
	case len(n.kids) > 0:
		return syscall.ENOTEMPTY
	}
	delete(parent.kids, name)
	return nil
}

func (d *fakeDir) Unlink(path string) error {
	if strings.HasSuffix(path, "/") {
		if _, _, n, err := d.fs.walk(d.n, path, false, 0); err == nil && n != nil && n.typ == fd.FiletypeDirectory {
			return syscall.EISDIR
		}
		return syscall.ENOTDIR
	}
	parent, name, n, err := d.fs.walk(d.n, path, false, 0)
	switch {
	case err != nil:
		return err
	case n == nil:
		return syscall.ENOENT
	case n.typ == fd.FiletypeDirectory:
		return syscall.EISDIR
	}
	n.nlink--
	delete(parent.kids, name)
	return nil
}

func (d *fakeDir) Rename(oldPath string, newDir vfs.Dir, newPath string) error {
	nd, ok := newDir.(*fakeDir)
	if !ok || nd.fs != d.fs {
		return syscall.EXDEV
	}
	op, oname, on, err := d.fs.walk(d.n, oldPath, false, 0)
	if err != nil {
		return err
	}
	if on == nil {
		return syscall.ENOENT
	}
	np, nname, nn, err := d.fs.walk(nd.n, newPath, false, 0)
	if err != nil {
		return err
	}
	if nn != nil {
		switch {
		case nn == on:
			return nil
		case on.typ == fd.FiletypeDirectory && nn.typ != fd.FiletypeDirectory:
			return syscall.ENOTDIR
		case on.typ != fd.FiletypeDirectory && nn.typ == fd.FiletypeDirectory:
			return syscall.EISDIR
		case nn.typ == fd.FiletypeDirectory && len(nn.kids) > 0:
			return syscall.ENOTEMPTY
		}
	}
	delete(op.kids, oname)
	np.kids[nname] = on
	if on.typ == fd.FiletypeDirectory {
		on.parent = np
	}
	return nil
}

func (d *fakeDir) Link(oldPath string, follow bool, newDir vfs.Dir, newPath string) error {
	nd, ok := newDir.(*fakeDir)
	if !ok || nd.fs != d.fs {
		return syscall.EXDEV
	}
	_, _, on, err := d.fs.walk(d.n, oldPath, follow, 0)
	if err != nil {
		return err
	}
	if on == nil || follow && on.typ == fd.FiletypeSymbolicLink {
		return syscall.ENOENT
	}
	if on.typ == fd.FiletypeDirectory {
		return syscall.EPERM
	}
	np, nname, nn, err := d.fs.walk(nd.n, newPath, false, 0)
	if err != nil {
		return err
	}
	if nn != nil {
		return syscall.EEXIST
	}
	if strings.HasSuffix(newPath, "/") {
		return syscall.ENOENT
	}
	on.nlink++
	np.kids[nname] = on
	return nil
}

func (d *fakeDir) Symlink(target, path string) error {
	parent, name, n, err := d.fs.walk(d.n, path, false, 0)
	if err != nil {
		return err
	}
	if n != nil {
		return syscall.EEXIST
	}
	if strings.HasSuffix(path, "/") {
		return syscall.ENOENT
	}
	c := d.fs.node(fd.FiletypeSymbolicLink)
	c.target = target
	parent.kids[name] = c
	return nil
}

func (d *fakeDir) Readlink(path string) (string, error) {
	_, _, n, err := d.fs.walk(d.n, path, false, 0)
	switch {
	case err != nil:
		return "", err
	case n == nil:
		return "", syscall.ENOENT
	case n.typ != fd.FiletypeSymbolicLink:
		return "", syscall.EINVAL
	}
	return n.target, nil
}

// ReadDir lists ".", ".." and the entries in name order; cookie i is the
// position of the next entry.
func (d *fakeDir) ReadDir(cookie uint64, max int) ([]vfs.Dirent, error) {
	if d.fs.fail != nil {
		return nil, d.fs.fail
	}
	names := make([]string, 0, len(d.n.kids))
	for name := range d.n.kids {
		names = append(names, name)
	}
	sort.Strings(names)
	all := []vfs.Dirent{{Name: ".", Ino: d.n.ino, Type: fd.FiletypeDirectory}, {Name: "..", Ino: d.n.parent.ino, Type: fd.FiletypeDirectory}}
	for _, name := range names {
		k := d.n.kids[name]
		all = append(all, vfs.Dirent{Name: name, Ino: k.ino, Type: k.typ})
	}
	var out []vfs.Dirent
	for i := cookie; i < uint64(len(all)) && len(out) < max; i++ {
		de := all[i]
		de.Next = i + 1
		out = append(out, de)
	}
	return out, nil
}

func (d *fakeDir) Sync() error { return d.fs.fail }

// fakeMaxSize caps a file, as a memory source's size cap would.
const fakeMaxSize = 1 << 20

type fakeFile struct {
	fs                  *fakeFS
	n                   *fnode
	off                 int64
	read, write, append bool
	closed              bool
}

func (f *fakeFile) Filetype() fd.Filetype { return f.n.typ }
func (f *fakeFile) Rights() uint64        { return fd.RightsFile }
func (f *fakeFile) Close() error {
	if f.closed {
		return syscall.EBADF
	}
	f.closed = true
	return nil
}
func (f *fakeFile) PollFD(bool) (int, bool) { return -1, true }

func (f *fakeFile) Read(p []byte, _ bool) (int, error) {
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *fakeFile) Write(p []byte, _ bool) (int, error) {
	if f.append {
		f.off = int64(len(f.n.data))
	}
	n, err := f.WriteAt(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *fakeFile) ReadAt(p []byte, off int64) (int, error) {
	if !f.read {
		return 0, syscall.EBADF
	}
	if f.fs.fail != nil {
		return 0, f.fs.fail
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	return copy(p, f.n.data[off:]), nil
}

func (f *fakeFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.write {
		return 0, syscall.EBADF
	}
	if f.fs.fail != nil {
		return 0, f.fs.fail
	}
	if end := off + int64(len(p)); end > fakeMaxSize {
		return 0, syscall.ENOSPC
	} else if end > int64(len(f.n.data)) {
		f.n.data = append(f.n.data, make([]byte, end-int64(len(f.n.data)))...)
	}
	return copy(f.n.data[off:], p), nil
}

func (f *fakeFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += f.off
	case io.SeekEnd:
		off += int64(len(f.n.data))
	}
	if off < 0 {
		return 0, syscall.EINVAL
	}
	f.off = off
	return off, nil
}

func (f *fakeFile) Stat() (vfs.Stat, error) { return f.n.stat(), f.fs.fail }

func (f *fakeFile) Truncate(size int64) error {
	if !f.write {
		return syscall.EINVAL
	}
	if size > fakeMaxSize {
		return syscall.ENOSPC
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

func (f *fakeFile) Allocate(off, n int64) error {
	if end := off + n; end > int64(len(f.n.data)) {
		return f.Truncate(end)
	}
	return nil
}

func (f *fakeFile) SetTimes(t vfs.Times) error {
	f.fs.setTimes(f.n, t)
	return nil
}

func (f *fakeFile) SetAppend(on bool) error {
	f.append = on
	return nil
}

func (f *fakeFile) Sync() error     { return f.fs.fail }
func (f *fakeFile) Datasync() error { return f.fs.fail }
