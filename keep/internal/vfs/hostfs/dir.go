package hostfs

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// The rights a directory and a file report, split as vfs/tree splits
// them (a read-only source has no write rights), so that a guest sees the
// same rights whatever the source.
const (
	dirRightsRead = fd.RightFdFdstatSetFlags | fd.RightPathOpen | fd.RightFdReaddir | fd.RightPathReadlink |
		fd.RightPathFilestatGet | fd.RightFdFilestatGet
	dirRightsWrite = fd.RightFdDatasync | fd.RightFdSync | fd.RightPathCreateDirectory | fd.RightPathCreateFile |
		fd.RightPathLinkSource | fd.RightPathLinkTarget | fd.RightPathRenameSource | fd.RightPathRenameTarget |
		fd.RightPathFilestatSetSize | fd.RightPathFilestatSetTimes | fd.RightFdFilestatSetTimes |
		fd.RightPathSymlink | fd.RightPathRemoveDirectory | fd.RightPathUnlinkFile
	fileRightsRead = fd.RightFdRead | fd.RightFdSeek | fd.RightFdFdstatSetFlags | fd.RightFdTell | fd.RightFdAdvise |
		fd.RightFdFilestatGet | fd.RightPollFdReadwrite | fd.RightFdSync | fd.RightFdDatasync
	fileRightsWrite = fd.RightFdWrite | fd.RightFdAllocate | fd.RightFdFilestatSetSize | fd.RightFdFilestatSetTimes
)

// dir is an open host directory; it implements vfs.Dir.
type dir struct {
	h    hostFD
	root *root
	rd   readdirState
}

var _ vfs.Dir = (*dir)(nil)

func newDir(fd int, r *root) *dir {
	d := &dir{h: hostFD{fd: fd}, root: r}
	d.rd.fd = -1
	return d
}

// Filetype implements fd.File.
func (d *dir) Filetype() fd.Filetype { return fd.FiletypeDirectory }

// Rights implements fd.File.
func (d *dir) Rights() uint64 {
	if d.root.readonly {
		return dirRightsRead
	}
	return dirRightsRead | dirRightsWrite
}

// Close implements fd.File.
func (d *dir) Close() error {
	err := d.h.close()
	d.rd.close()
	return err
}

// parentOf opens parent (a split path's parent, "" for dfd itself)
// beneath dfd as an O_PATH directory; owned says whether to close it.
func parentOf(dfd int, parent string) (pfd int, owned bool, err error) {
	if parent == "" {
		return dfd, false, nil
	}
	pfd, err = openat2(dfd, parent, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, false, err
	}
	return pfd, true, nil
}

func closeIf(fd int, owned bool) {
	if owned {
		unix.Close(fd)
	}
}

// split checks path and opens its parent beneath dfd. The final
// component is returned as is ("." and ".." included, for the caller to
// refuse); pfd is not open for those.
func split(dfd int, path string) (pfd int, owned bool, name string, slash bool, err error) {
	if err = checkPath(path); err != nil {
		return -1, false, "", false, err
	}
	var parent string
	parent, name, slash = splitPath(path)
	if isDot(name) {
		return -1, false, name, slash, nil
	}
	if err = vfs.ValidName(name); err != nil {
		return -1, false, "", false, err
	}
	pfd, owned, err = parentOf(dfd, parent)
	return pfd, owned, name, slash, err
}

// dotErr resolves path, which ends in "." or "..", beneath dfd: an escape
// is ErrNotCapable, a missing directory ENOENT; otherwise it returns e.
func dotErr(dfd int, path string, e error) error {
	fd, err := openat2(dfd, path, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return e
}

// target is what lookup resolved: the object named name in directory
// pfd, or, when name is "", the directory pfd itself.
type target struct {
	pfd     int
	owned   bool
	name    string
	st      unix.Stat_t // the object's lstat, when statted
	statted bool
}

func (t *target) release() { closeIf(t.pfd, t.owned) }

// lookup resolves path beneath dfd to the object a call acts on. Unless
// follow is set or path ends with '/', the final component is not
// followed. Otherwise a symlink there is read and its target resolved
// again from dfd (beneath it, so a link leading out is ErrNotCapable),
// at most vfs.MaxSymlinks times (ELOOP): the result is then not a
// symlink, and a directory if path ended with '/' (ENOTDIR). A final "."
// or ".." gives the directory itself, opened with dotFlags.
func lookup(dfd int, path string, follow bool, dotFlags uint64) (target, error) {
	if err := checkPath(path); err != nil {
		return target{}, err
	}
	for n := 0; ; n++ {
		parent, name, slash := splitPath(path)
		if isDot(name) {
			fd, err := openat2(dfd, path, dotFlags|unix.O_DIRECTORY, 0)
			if err != nil {
				return target{}, err
			}
			return target{pfd: fd, owned: true}, nil
		}
		if err := vfs.ValidName(name); err != nil {
			return target{}, err
		}
		pfd, owned, err := parentOf(dfd, parent)
		if err != nil {
			return target{}, err
		}
		t := target{pfd: pfd, owned: owned, name: name}
		if !follow && !slash {
			return t, nil
		}
		if err := fstatat(pfd, name, &t.st); err != nil {
			t.release()
			return target{}, err
		}
		if t.st.Mode&unix.S_IFMT != unix.S_IFLNK {
			if slash && t.st.Mode&unix.S_IFMT != unix.S_IFDIR {
				t.release()
				return target{}, syscall.ENOTDIR
			}
			t.statted = true
			return t, nil
		}
		if n >= vfs.MaxSymlinks {
			t.release()
			return target{}, syscall.ELOOP
		}
		link, err := readlink(pfd, name)
		t.release()
		switch {
		case err != nil:
			return target{}, err
		case link == "":
			return target{}, syscall.ENOENT
		case link[0] == '/':
			return target{}, vfs.ErrNotCapable
		}
		// The link is relative to its directory, which parent names from
		// dfd; the kernel resolves any ".." in it physically, beneath dfd.
		path = parent + link
		if slash {
			path += "/"
		}
		if len(path) > vfs.MaxPath {
			return target{}, syscall.ENAMETOOLONG
		}
	}
}

func fstatat(dfd int, name string, st *unix.Stat_t) error {
	return unix.Fstatat(dfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

func readlink(dfd int, name string) (string, error) {
	buf := make([]byte, vfs.MaxPath)
	n, err := unix.Readlinkat(dfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// Open implements vfs.Dir.
func (d *dir) Open(path string, o vfs.OpenOptions) (fd.File, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	dfd, err := d.h.get()
	if err != nil {
		return nil, err
	}
	defer d.h.put()
	ro := d.root.readonly
	// O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
	// refused below); it changes nothing for regular files and
	// directories. O_NOCTTY: a host tty never becomes the Keep's.
	flags := uint64(unix.O_NONBLOCK | unix.O_NOCTTY)
	switch {
	case ro:
		flags |= unix.O_RDONLY
	case o.Read && o.Write:
		flags |= unix.O_RDWR
	case o.Write:
		flags |= unix.O_WRONLY
	default:
		flags |= unix.O_RDONLY
	}
	if !ro {
		if o.Create {
			flags |= unix.O_CREAT
			if o.Excl {
				flags |= unix.O_EXCL
			}
		}
		if o.Trunc {
			flags |= unix.O_TRUNC
		}
		if o.Append {
			flags |= unix.O_APPEND
		}
		if o.Sync {
			flags |= unix.O_SYNC
		}
		if o.Dsync {
			flags |= unix.O_DSYNC
		}
	}
	if o.Directory {
		flags |= unix.O_DIRECTORY
	}
	if !o.Follow {
		flags |= unix.O_NOFOLLOW
	}
	var mode uint64
	if flags&unix.O_CREAT != 0 {
		mode = 0o666 // openat2 refuses a mode without O_CREAT (EINVAL)
	}
	nfd, err := openat2(dfd, path, flags, mode)
	if err != nil {
		if ro && o.Create && err == syscall.ENOENT {
			return nil, syscall.EROFS
		}
		return nil, err
	}
	if ro && o.Create && o.Excl {
		unix.Close(nfd)
		return nil, syscall.EEXIST
	}
	if o.Create && o.Excl {
		// O_CREAT|O_EXCL succeeded: a new regular file, no need to look.
		return newFile(nfd, d.root, o.Read, o.Write), nil
	}
	if o.Directory && !(ro && (o.Write || o.Trunc)) {
		// O_DIRECTORY succeeded: a directory.
		return newDir(nfd, d.root), nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(nfd, &st); err != nil {
		unix.Close(nfd)
		return nil, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if ro && (o.Write || o.Trunc) {
			// As the kernel answers on a writable one.
			unix.Close(nfd)
			return nil, syscall.EISDIR
		}
		return newDir(nfd, d.root), nil
	case unix.S_IFREG:
		if ro && (o.Write || o.Trunc) {
			unix.Close(nfd)
			return nil, syscall.EROFS
		}
		return newFile(nfd, d.root, o.Read, o.Write), nil
	}
	// A FIFO, socket or device the host put there: not for the Keep.
	unix.Close(nfd)
	return nil, syscall.EACCES
}

// Stat implements vfs.Dir.
func (d *dir) Stat() (vfs.Stat, error) {
	dfd, err := d.h.get()
	if err != nil {
		return vfs.Stat{}, err
	}
	defer d.h.put()
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return vfs.Stat{}, err
	}
	return toStat(&st), nil
}

// StatAt implements vfs.Dir. A single component is statted in d (one
// fstatat); anything longer, or a symlink to follow, is opened by the
// kernel beneath d with O_PATH (which opens nothing for reading, and with
// O_NOFOLLOW opens a final symlink itself) and statted through that.
func (d *dir) StatAt(path string, follow bool) (vfs.Stat, error) {
	if err := checkPath(path); err != nil {
		return vfs.Stat{}, err
	}
	dfd, err := d.h.get()
	if err != nil {
		return vfs.Stat{}, err
	}
	defer d.h.put()
	var st unix.Stat_t
	parent, name, slash := splitPath(path)
	if parent == "" && !slash && !isDot(name) {
		if err := vfs.ValidName(name); err != nil {
			return vfs.Stat{}, err
		}
		if err := fstatat(dfd, name, &st); err != nil {
			return vfs.Stat{}, err
		}
		if !follow || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return toStat(&st), nil
		}
	}
	flags := uint64(unix.O_PATH)
	if !follow && !slash {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openat2(dfd, path, flags, 0)
	if err != nil {
		return vfs.Stat{}, err
	}
	err = unix.Fstat(fd, &st)
	unix.Close(fd)
	if err != nil {
		return vfs.Stat{}, err
	}
	return toStat(&st), nil
}

// SetTimes implements vfs.Dir.
func (d *dir) SetTimes(tm vfs.Times) error {
	dfd, err := d.h.get()
	if err != nil {
		return err
	}
	defer d.h.put()
	if d.root.readonly {
		return syscall.EROFS
	}
	return futimens(dfd, tm)
}

// SetTimesAt implements vfs.Dir.
func (d *dir) SetTimesAt(path string, follow bool, tm vfs.Times) error {
	dfd, err := d.h.get()
	if err != nil {
		return err
	}
	defer d.h.put()
	// A final "." or ".." is opened for reading: futimens refuses O_PATH
	// descriptors.
	t, err := lookup(dfd, path, follow, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return err
	}
	defer t.release()
	if d.root.readonly {
		return syscall.EROFS
	}
	if t.name == "" {
		return futimens(t.pfd, tm)
	}
	ts := timespecs(tm)
	return unix.UtimesNanoAt(t.pfd, t.name, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// change acts on the final component of path, a single name in its parent
// opened beneath d: op gets the parent and the name (with its trailing
// slash, for the kernel's rules). A final "." or ".." is answered with
// onDot or onDotDot once path is known to resolve beneath d; a read-only
// directory refuses with EROFS after the path resolved.
func (d *dir) change(path string, onDot, onDotDot error, op func(pfd int, name string) error) error {
	dfd, err := d.h.get()
	if err != nil {
		return err
	}
	defer d.h.put()
	pfd, owned, name, slash, err := split(dfd, path)
	if err != nil {
		return err
	}
	switch name {
	case ".":
		return dotErr(dfd, path, onDot)
	case "..":
		return dotErr(dfd, path, onDotDot)
	}
	defer closeIf(pfd, owned)
	if d.root.readonly {
		return syscall.EROFS
	}
	return op(pfd, withSlash(name, slash))
}

// Mkdir implements vfs.Dir.
func (d *dir) Mkdir(path string) error {
	return d.change(path, syscall.EEXIST, syscall.EEXIST, func(pfd int, name string) error {
		return unix.Mkdirat(pfd, name, 0o777)
	})
}

// Rmdir implements vfs.Dir.
func (d *dir) Rmdir(path string) error {
	return d.change(path, syscall.EINVAL, syscall.ENOTEMPTY, func(pfd int, name string) error {
		return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
	})
}

// Unlink implements vfs.Dir.
func (d *dir) Unlink(path string) error {
	return d.change(path, syscall.EISDIR, syscall.EISDIR, func(pfd int, name string) error {
		return unix.Unlinkat(pfd, name, 0)
	})
}

// other returns newDir as a host directory and its descriptor (dfd when
// it is d itself; otherwise read-locked until done is called).
func (d *dir) other(dfd int, newDir vfs.Dir) (nd *dir, nfd int, done func(), err error) {
	nd, ok := newDir.(*dir)
	if !ok || nd == nil {
		return nil, -1, nil, syscall.EXDEV
	}
	if nd == d {
		return nd, dfd, func() {}, nil
	}
	nfd, err = nd.h.get()
	if err != nil {
		return nil, -1, nil, err
	}
	return nd, nfd, nd.h.put, nil
}

// Rename implements vfs.Dir. newDir may be any directory of this source,
// of this preopen or another: the kernel refuses (EXDEV) what crosses
// file systems.
func (d *dir) Rename(oldPath string, newDir vfs.Dir, newPath string) error {
	dfd, err := d.h.get()
	if err != nil {
		return err
	}
	defer d.h.put()
	nd, ndfd, done, err := d.other(dfd, newDir)
	if err != nil {
		return err
	}
	defer done()
	opfd, oowned, oname, oslash, err := split(dfd, oldPath)
	if err != nil {
		return err
	}
	if isDot(oname) {
		return dotErr(dfd, oldPath, syscall.EBUSY)
	}
	defer closeIf(opfd, oowned)
	npfd, nowned, nname, nslash, err := split(ndfd, newPath)
	if err != nil {
		return err
	}
	if isDot(nname) {
		return dotErr(ndfd, newPath, syscall.EBUSY)
	}
	defer closeIf(npfd, nowned)
	if d.root.readonly || nd.root.readonly {
		return syscall.EROFS
	}
	return unix.Renameat(opfd, withSlash(oname, oslash), npfd, withSlash(nname, nslash))
}

// Link implements vfs.Dir. With follow, a final symlink of oldPath is
// resolved beneath d (never with AT_SYMLINK_FOLLOW, which the kernel
// would follow anywhere).
func (d *dir) Link(oldPath string, follow bool, newDir vfs.Dir, newPath string) error {
	dfd, err := d.h.get()
	if err != nil {
		return err
	}
	defer d.h.put()
	nd, ndfd, done, err := d.other(dfd, newDir)
	if err != nil {
		return err
	}
	defer done()
	t, err := lookup(dfd, oldPath, follow, unix.O_PATH)
	if err != nil {
		return err
	}
	defer t.release()
	npfd, nowned, nname, nslash, err := split(ndfd, newPath)
	if err != nil {
		return err
	}
	if isDot(nname) {
		return dotErr(ndfd, newPath, syscall.EEXIST)
	}
	defer closeIf(npfd, nowned)
	if d.root.readonly || nd.root.readonly {
		return syscall.EROFS
	}
	if t.name == "" {
		return syscall.EPERM // a hard link to a directory
	}
	return unix.Linkat(t.pfd, t.name, npfd, withSlash(nname, nslash), 0)
}

// Symlink implements vfs.Dir. target is stored as given.
func (d *dir) Symlink(target, path string) error {
	return d.change(path, syscall.EEXIST, syscall.EEXIST, func(pfd int, name string) error {
		return unix.Symlinkat(target, pfd, name)
	})
}

// Readlink implements vfs.Dir.
func (d *dir) Readlink(path string) (string, error) {
	dfd, err := d.h.get()
	if err != nil {
		return "", err
	}
	defer d.h.put()
	t, err := lookup(dfd, path, false, unix.O_PATH)
	if err != nil {
		return "", err
	}
	defer t.release()
	if t.name == "" || t.statted {
		// A directory ("." or "..", or a path ending in '/').
		return "", syscall.EINVAL
	}
	return readlink(t.pfd, t.name)
}

// Sync implements vfs.Dir.
func (d *dir) Sync() error {
	dfd, err := d.h.get()
	if err != nil {
		return err
	}
	defer d.h.put()
	return unix.Fsync(dfd)
}

// timespecs converts a Times request for utimensat(2).
func timespecs(t vfs.Times) [2]unix.Timespec {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_OMIT}}
	switch {
	case t.AtimNow:
		ts[0].Nsec = unix.UTIME_NOW
	case t.SetAtim:
		ts[0] = unix.NsecToTimespec(t.Atim)
	}
	switch {
	case t.MtimNow:
		ts[1].Nsec = unix.UTIME_NOW
	case t.SetMtim:
		ts[1] = unix.NsecToTimespec(t.Mtim)
	}
	return ts
}

// futimens is utimensat(fd, NULL, ts, 0): x/sys/unix has no futimens,
// and its UtimesNanoAt cannot pass a NULL path.
func futimens(fd int, t vfs.Times) error {
	ts := timespecs(t)
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// toStat converts a host stat. Sizes are never negative on Linux.
func toStat(st *unix.Stat_t) vfs.Stat {
	return vfs.Stat{
		Dev:   uint64(st.Dev),
		Ino:   st.Ino,
		Type:  filetype(st.Mode),
		Nlink: uint64(st.Nlink),
		Size:  uint64(st.Size),
		Atim:  st.Atim.Nano(),
		Mtim:  st.Mtim.Nano(),
		Ctim:  st.Ctim.Nano(),
	}
}

func filetype(mode uint32) fd.Filetype {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return fd.FiletypeRegularFile
	case unix.S_IFDIR:
		return fd.FiletypeDirectory
	case unix.S_IFLNK:
		return fd.FiletypeSymbolicLink
	case unix.S_IFCHR:
		return fd.FiletypeCharacterDevice
	case unix.S_IFBLK:
		return fd.FiletypeBlockDevice
	case unix.S_IFSOCK:
		return fd.FiletypeSocketStream
	}
	return fd.FiletypeUnknown
}
