package wasi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"unicode/utf8"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// This file holds the file-system calls: path_* and the fd_* calls on
// files and directories (package vfs). The guest's strings, flags and
// rights are checked here; resolving a path beneath its directory is the
// source's job (vfs.Dir).

// WASI oflags, lookupflags and fstflags.
const (
	oflagCreat     = 1 << 0
	oflagDirectory = 1 << 1
	oflagExcl      = 1 << 2
	oflagTrunc     = 1 << 3
	allOflags      = oflagCreat | oflagDirectory | oflagExcl | oflagTrunc

	lookupSymlinkFollow = 1 << 0

	fstAtim    = 1 << 0
	fstAtimNow = 1 << 1
	fstMtim    = 1 << 2
	fstMtimNow = 1 << 3
)

// Layouts (WASI preview1).
const (
	direntSize   = 24
	filestatSize = 64
)

// syncFlags are the fdflags a file keeps from path_open (they cannot be
// changed afterwards).
const syncFlags = fd.FlagDsync | fd.FlagRsync | fd.FlagSync

// rightsOf returns an entry's rights: those recorded at path_open or
// fd_fdstat_set_rights, or the defaults of its kind of file.
func rightsOf(e *fd.Entry) (base, inheriting uint64) {
	if e.Limited {
		return e.Base, e.Inheriting
	}
	switch e.File.(type) {
	case vfs.Dir: // *vfs.Preopen included
		return fd.RightsDir, fd.RightsAll
	case vfs.File:
		return fd.RightsFile, 0
	case fd.Listener:
		return e.File.Rights(), fd.RightsSocket
	}
	return e.File.Rights(), 0
}

// need checks that e holds every right in r (ENOTCAPABLE otherwise).
func need(e *fd.Entry, r uint64) Errno {
	if base, _ := rightsOf(e); base&r != r {
		return ENOTCAPABLE
	}
	return ESUCCESS
}

// dirOf returns the directory behind a descriptor for a path call. A
// preopen is unwrapped so that sources always see their own Dir (Rename
// and Link compare the two directories' sources).
func dirOf(e *fd.Entry) (vfs.Dir, Errno) {
	switch f := e.File.(type) {
	case *vfs.Preopen:
		return f.Dir, ESUCCESS
	case vfs.Dir:
		return f, ESUCCESS
	}
	// A file, stream or socket: openat(2) on a non-directory fd.
	return nil, ENOTDIR
}

// dirArg looks up descriptor n as a directory that holds the rights r
// (EBADF, ENOTDIR, ENOTCAPABLE, in that order).
func (s *System) dirArg(n uint64, r uint64) (*fd.Entry, vfs.Dir, Errno) {
	e, errno := s.entry(n)
	if errno != ESUCCESS {
		return nil, nil, errno
	}
	d, errno := dirOf(e)
	if errno != ESUCCESS {
		return nil, nil, errno
	}
	if errno := need(e, r); errno != ESUCCESS {
		return nil, nil, errno
	}
	return e, d, ESUCCESS
}

// fileArg looks up descriptor n as a regular file for a positioned call:
// ESPIPE for a stream or socket (as on a pipe), EBADF for a directory
// (as wasmtime), ENOTCAPABLE without the rights r.
func (s *System) fileArg(n uint64, r uint64) (*fd.Entry, vfs.File, Errno) {
	e, errno := s.entry(n)
	if errno != ESUCCESS {
		return nil, nil, errno
	}
	switch f := e.File.(type) {
	case vfs.Dir:
		return nil, nil, EBADF
	case vfs.File:
		if errno := need(e, r); errno != ESUCCESS {
			return nil, nil, errno
		}
		return e, f, ESUCCESS
	}
	return nil, nil, ESPIPE
}

// pathArg reads a path (or symlink target) from guest memory: in bounds
// (EFAULT), at most vfs.MaxPath bytes (ENAMETOOLONG), no NUL (EINVAL),
// valid UTF-8 (EILSEQ, as wasmtime).
func pathArg(mem []byte, ptr, n uint32) (string, Errno) {
	b := view(mem, ptr, n)
	switch {
	case b == nil:
		return "", EFAULT
	case n > vfs.MaxPath:
		return "", ENAMETOOLONG
	case bytes.IndexByte(b, 0) >= 0:
		return "", EINVAL
	case !utf8.Valid(b):
		return "", EILSEQ
	case n == 0:
		return "", ENOENT // as open("") on POSIX
	}
	return string(b), ESUCCESS
}

// putFilestat writes st into b (filestatSize bytes).
func putFilestat(b []byte, st vfs.Stat) {
	clear(b)
	le.PutUint64(b[0:], st.Dev)
	le.PutUint64(b[8:], st.Ino)
	b[16] = byte(st.Type)
	le.PutUint64(b[24:], st.Nlink)
	le.PutUint64(b[32:], st.Size)
	le.PutUint64(b[40:], uint64(st.Atim))
	le.PutUint64(b[48:], uint64(st.Mtim))
	le.PutUint64(b[56:], uint64(st.Ctim))
}

// timesArg validates fd/path_filestat_set_times arguments.
func timesArg(atim, mtim uint64, flags uint32) (vfs.Times, Errno) {
	if flags&^(fstAtim|fstAtimNow|fstMtim|fstMtimNow) != 0 ||
		flags&(fstAtim|fstAtimNow) == fstAtim|fstAtimNow ||
		flags&(fstMtim|fstMtimNow) == fstMtim|fstMtimNow {
		return vfs.Times{}, EINVAL
	}
	t := vfs.Times{
		SetAtim: flags&fstAtim != 0, AtimNow: flags&fstAtimNow != 0,
		SetMtim: flags&fstMtim != 0, MtimNow: flags&fstMtimNow != 0,
	}
	if t.SetAtim && atim > math.MaxInt64 || t.SetMtim && mtim > math.MaxInt64 {
		return vfs.Times{}, EINVAL
	}
	t.Atim, t.Mtim = int64(atim), int64(mtim)
	return t, ESUCCESS
}

// fdPrestatGet is fd_prestat_get: a preopen is a directory (tag 0) whose
// name is pr_name_len bytes long. Every other descriptor answers EBADF,
// which ends wasi-libc's, Rust's and Go's preopen scans: they find only
// the preopens before the first descriptor that is not one.
func (s *System) fdPrestatGet(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	p, ok := e.File.(*vfs.Preopen)
	if !ok {
		return EBADF
	}
	b := view(c.Memory(), uint32(stk[1]), 8)
	if b == nil {
		return EFAULT
	}
	clear(b)
	le.PutUint32(b[4:], uint32(len(p.Name)))
	return ESUCCESS
}

// fdPrestatDirName is fd_prestat_dir_name: the preopen's name, without a
// NUL; a buffer shorter than the name is ENAMETOOLONG (as wasmtime).
func (s *System) fdPrestatDirName(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	p, ok := e.File.(*vfs.Preopen)
	if !ok {
		return EBADF
	}
	if uint64(len(p.Name)) > uint64(uint32(stk[2])) {
		return ENAMETOOLONG
	}
	b := view(c.Memory(), uint32(stk[1]), uint32(len(p.Name)))
	if b == nil {
		return EFAULT
	}
	copy(b, p.Name)
	return ESUCCESS
}

// openOptions derives the vfs request from path_open's arguments and the
// rights the new descriptor gets.
func openOptions(lookup, oflags uint32, fdflags uint16, base uint64) vfs.OpenOptions {
	o := vfs.OpenOptions{
		Follow:    lookup&lookupSymlinkFollow != 0,
		Create:    oflags&oflagCreat != 0,
		Excl:      oflags&oflagExcl != 0,
		Trunc:     oflags&oflagTrunc != 0,
		Directory: oflags&oflagDirectory != 0,
		// Writing: FD_WRITE, and FD_ALLOCATE, which only a writer can do.
		// FD_FILESTAT_SET_SIZE is not counted: Go's runtime asks for it on
		// every open, read-only ones included (fd_filestat_set_size on a
		// descriptor not open for writing fails in the source, as
		// ftruncate(2) does).
		Write:  base&(fd.RightFdWrite|fd.RightFdAllocate) != 0,
		Append: fdflags&fd.FlagAppend != 0,
		Dsync:  fdflags&fd.FlagDsync != 0,
		Sync:   fdflags&(fd.FlagSync|fd.FlagRsync) != 0,
	}
	// A descriptor that is not for writing is for reading (O_RDONLY),
	// whatever its rights.
	o.Read = base&(fd.RightFdRead|fd.RightFdReaddir) != 0 || !o.Write
	return o
}

func (s *System) pathOpen(_ context.Context, c engine.Caller, stk []uint64) Errno {
	// The rights path_open needs depend on its flags: checked below.
	e, dir, errno := s.dirArg(stk[0], 0)
	if errno != ESUCCESS {
		return errno
	}
	lookup, oflags, fdflags := uint32(stk[1]), uint32(stk[4]), uint32(stk[7])
	reqBase, reqInh := stk[5], stk[6]
	mem := c.Memory()
	res := view(mem, uint32(stk[8]), 4)
	if res == nil {
		return EFAULT
	}
	path, errno := pathArg(mem, uint32(stk[2]), uint32(stk[3]))
	if errno != ESUCCESS {
		return errno
	}
	if lookup&^lookupSymlinkFollow != 0 || oflags&^allOflags != 0 || fdflags&^uint32(allFdflags) != 0 {
		return EINVAL
	}
	if oflags&oflagDirectory != 0 && oflags&(oflagCreat|oflagTrunc) != 0 {
		return EINVAL
	}
	// The rights the directory must hold for this open, as wasi-common
	// checked them (the test suite's truncation_rights depends on it).
	want := fd.RightPathOpen
	if oflags&oflagCreat != 0 {
		want |= fd.RightPathCreateFile
	}
	if oflags&oflagTrunc != 0 {
		want |= fd.RightPathFilestatSetSize
	}
	if errno := need(e, want); errno != ESUCCESS {
		return errno
	}
	// The new descriptor gets what it asked for, within what the
	// directory passes on.
	_, inh := rightsOf(e)
	base, inh := reqBase&inh, reqInh&inh
	o := openOptions(lookup, oflags, uint16(fdflags), base)
	if o.Directory && o.Write {
		// A directory is never open for writing (open(2) says EISDIR).
		return EISDIR
	}
	if s.Files.Full() {
		// Before the open, which may create or truncate the file.
		return EMFILE
	}
	f, err := dir.Open(path, o)
	if err != nil {
		return errnoOf(err)
	}
	switch f.(type) {
	case vfs.Dir:
		if o.Write {
			f.Close()
			return EISDIR
		}
		base &= fd.RightsDir
	case vfs.File:
		if o.Directory {
			f.Close()
			return ENOTDIR
		}
		base &= fd.RightsFile
	default:
		// A source returned something the WASI layer cannot serve.
		f.Close()
		return EIO
	}
	n, err := s.Files.InsertLimited(f, uint16(fdflags), base, inh)
	if err != nil {
		f.Close()
		return errnoOf(err)
	}
	le.PutUint32(res, n)
	return ESUCCESS
}

// pathOp is a call whose arguments are a directory fd, which must hold
// the right r, and a path and whose work is op on them:
// path_create_directory (vfs.Dir.Mkdir, PATH_CREATE_DIRECTORY),
// path_remove_directory (Rmdir, PATH_REMOVE_DIRECTORY) and
// path_unlink_file (Unlink, PATH_UNLINK_FILE).
func (s *System) pathOp(r uint64, op func(vfs.Dir, string) error) hostFunc {
	return func(_ context.Context, c engine.Caller, stk []uint64) Errno {
		_, dir, errno := s.dirArg(stk[0], r)
		if errno != ESUCCESS {
			return errno
		}
		path, errno := pathArg(c.Memory(), uint32(stk[1]), uint32(stk[2]))
		if errno != ESUCCESS {
			return errno
		}
		return errnoOf(op(dir, path))
	}
}

func (s *System) pathFilestatGet(_ context.Context, c engine.Caller, stk []uint64) Errno {
	return s.pathFilestat(c, stk, filestatSize, putFilestat)
}

// pathFilestat is path_filestat_get with the filestat layout of size
// bytes that put writes (preview 1's, or wasi_unstable's: legacy.go).
func (s *System) pathFilestat(c engine.Caller, stk []uint64, size uint32, put func([]byte, vfs.Stat)) Errno {
	_, dir, errno := s.dirArg(stk[0], fd.RightPathFilestatGet)
	if errno != ESUCCESS {
		return errno
	}
	flags := uint32(stk[1])
	if flags&^lookupSymlinkFollow != 0 {
		return EINVAL
	}
	mem := c.Memory()
	res := view(mem, uint32(stk[4]), size)
	if res == nil {
		return EFAULT
	}
	path, errno := pathArg(mem, uint32(stk[2]), uint32(stk[3]))
	if errno != ESUCCESS {
		return errno
	}
	st, err := dir.StatAt(path, flags&lookupSymlinkFollow != 0)
	if err != nil {
		return errnoOf(err)
	}
	put(res, st)
	return ESUCCESS
}

func (s *System) pathFilestatSetTimes(_ context.Context, c engine.Caller, stk []uint64) Errno {
	_, dir, errno := s.dirArg(stk[0], fd.RightPathFilestatSetTimes)
	if errno != ESUCCESS {
		return errno
	}
	flags := uint32(stk[1])
	if flags&^lookupSymlinkFollow != 0 {
		return EINVAL
	}
	path, errno := pathArg(c.Memory(), uint32(stk[2]), uint32(stk[3]))
	if errno != ESUCCESS {
		return errno
	}
	t, errno := timesArg(stk[4], stk[5], uint32(stk[6]))
	if errno != ESUCCESS {
		return errno
	}
	return errnoOf(dir.SetTimesAt(path, flags&lookupSymlinkFollow != 0, t))
}

func (s *System) pathRename(_ context.Context, c engine.Caller, stk []uint64) Errno {
	_, oldDir, errno := s.dirArg(stk[0], fd.RightPathRenameSource)
	if errno != ESUCCESS {
		return errno
	}
	_, newDir, errno := s.dirArg(stk[3], fd.RightPathRenameTarget)
	if errno != ESUCCESS {
		return errno
	}
	mem := c.Memory()
	oldPath, errno := pathArg(mem, uint32(stk[1]), uint32(stk[2]))
	if errno != ESUCCESS {
		return errno
	}
	newPath, errno := pathArg(mem, uint32(stk[4]), uint32(stk[5]))
	if errno != ESUCCESS {
		return errno
	}
	return errnoOf(oldDir.Rename(oldPath, newDir, newPath))
}

func (s *System) pathLink(_ context.Context, c engine.Caller, stk []uint64) Errno {
	_, oldDir, errno := s.dirArg(stk[0], fd.RightPathLinkSource)
	if errno != ESUCCESS {
		return errno
	}
	_, newDir, errno := s.dirArg(stk[4], fd.RightPathLinkTarget)
	if errno != ESUCCESS {
		return errno
	}
	flags := uint32(stk[1])
	if flags&^lookupSymlinkFollow != 0 {
		return EINVAL
	}
	mem := c.Memory()
	oldPath, errno := pathArg(mem, uint32(stk[2]), uint32(stk[3]))
	if errno != ESUCCESS {
		return errno
	}
	newPath, errno := pathArg(mem, uint32(stk[5]), uint32(stk[6]))
	if errno != ESUCCESS {
		return errno
	}
	return errnoOf(oldDir.Link(oldPath, flags&lookupSymlinkFollow != 0, newDir, newPath))
}

func (s *System) pathSymlink(_ context.Context, c engine.Caller, stk []uint64) Errno {
	_, dir, errno := s.dirArg(stk[2], fd.RightPathSymlink)
	if errno != ESUCCESS {
		return errno
	}
	mem := c.Memory()
	target, errno := pathArg(mem, uint32(stk[0]), uint32(stk[1]))
	if errno != ESUCCESS {
		return errno
	}
	path, errno := pathArg(mem, uint32(stk[3]), uint32(stk[4]))
	if errno != ESUCCESS {
		return errno
	}
	if target[0] == '/' {
		// It could never resolve beneath the preopen: refused when made,
		// as wasmtime (cap-std) does.
		return EPERM
	}
	return errnoOf(dir.Symlink(target, path))
}

// pathReadlink is path_readlink: the target, truncated to buf_len (as
// wasmtime and readlink(2)); bufused is what was written.
func (s *System) pathReadlink(_ context.Context, c engine.Caller, stk []uint64) Errno {
	_, dir, errno := s.dirArg(stk[0], fd.RightPathReadlink)
	if errno != ESUCCESS {
		return errno
	}
	mem := c.Memory()
	buf := view(mem, uint32(stk[3]), uint32(stk[4]))
	res := view(mem, uint32(stk[5]), 4)
	if buf == nil || res == nil {
		return EFAULT
	}
	path, errno := pathArg(mem, uint32(stk[1]), uint32(stk[2]))
	if errno != ESUCCESS {
		return errno
	}
	target, err := dir.Readlink(path)
	if err != nil {
		return errnoOf(err)
	}
	n := copy(buf, target)
	le.PutUint32(res, uint32(n))
	return ESUCCESS
}

// fdReaddir is fd_readdir: entries from cookie on, each a 24-byte dirent
// and its name, until buf is full. The last entry is cut off where buf
// ends, as the spec asks, so that a caller that finds bufused == buf_len
// knows to read on (with a bigger buffer if no entry fitted whole).
func (s *System) fdReaddir(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	d, errno := dirOf(e)
	if errno != ESUCCESS {
		return errno
	}
	if errno := need(e, fd.RightFdReaddir); errno != ESUCCESS {
		return errno
	}
	mem := c.Memory()
	buf := view(mem, uint32(stk[1]), uint32(stk[2]))
	res := view(mem, uint32(stk[4]), 4)
	if buf == nil || res == nil {
		return EFAULT
	}
	cookie := stk[3]
	used := 0
	var hdr [direntSize]byte
	for used < len(buf) {
		// Every entry takes at least direntSize+1 bytes.
		want := min((len(buf)-used)/(direntSize+1)+1, 1024)
		ents, err := d.ReadDir(cookie, want)
		if err != nil {
			// Even after some entries: a buffer returned short would tell
			// the caller the directory ended there. It can list again from
			// its last cookie.
			return errnoOf(err)
		}
		if len(ents) == 0 {
			break
		}
		for _, de := range ents {
			le.PutUint64(hdr[0:], de.Next)
			le.PutUint64(hdr[8:], de.Ino)
			le.PutUint32(hdr[16:], uint32(len(de.Name)))
			hdr[20] = byte(de.Type)
			hdr[21], hdr[22], hdr[23] = 0, 0, 0
			used += copy(buf[used:], hdr[:])
			used += copy(buf[used:], de.Name)
			if used == len(buf) {
				break
			}
			cookie = de.Next
		}
	}
	le.PutUint32(res, uint32(used))
	return ESUCCESS
}

// fdStat is the filestat of descriptor e: a file's or directory's own;
// a stream or socket has only its type and one link.
func fdStat(e *fd.Entry) (vfs.Stat, Errno) {
	var st vfs.Stat
	var err error
	switch f := e.File.(type) {
	case vfs.Dir:
		st, err = f.Stat()
	case vfs.File:
		st, err = f.Stat()
	default:
		return vfs.Stat{Type: e.File.Filetype(), Nlink: 1}, ESUCCESS
	}
	if err != nil {
		return vfs.Stat{}, errnoOf(err)
	}
	return st, ESUCCESS
}

func (s *System) fdSeek(_ context.Context, c engine.Caller, stk []uint64) Errno {
	off, whence := int64(stk[1]), uint32(stk[2])
	e, f, errno := s.fileArg(stk[0], 0)
	if errno != ESUCCESS {
		return errno
	}
	// lseek(fd, 0, SEEK_CUR) is a tell (FD_TELL suffices).
	if need(e, fd.RightFdSeek) != ESUCCESS && (off != 0 || whence != io.SeekCurrent || need(e, fd.RightFdTell) != ESUCCESS) {
		return ENOTCAPABLE
	}
	if whence > io.SeekEnd {
		return EINVAL
	}
	res := view(c.Memory(), uint32(stk[3]), 8)
	if res == nil {
		return EFAULT
	}
	pos, err := f.Seek(off, int(whence))
	if err != nil {
		return errnoOf(err)
	}
	if pos < 0 {
		return EINVAL
	}
	le.PutUint64(res, uint64(pos))
	return ESUCCESS
}

func (s *System) fdTell(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, f, errno := s.fileArg(stk[0], 0)
	if errno != ESUCCESS {
		return errno
	}
	if need(e, fd.RightFdTell) != ESUCCESS && need(e, fd.RightFdSeek) != ESUCCESS {
		return ENOTCAPABLE
	}
	res := view(c.Memory(), uint32(stk[1]), 8)
	if res == nil {
		return EFAULT
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return errnoOf(err)
	}
	le.PutUint64(res, uint64(pos))
	return ESUCCESS
}

// positioned validates fd_pread / fd_pwrite arguments: the iovecs (their
// copy is returned, see iovecs), the result pointer, and an offset range
// that fits in an int64.
func (s *System) positioned(mem []byte, iovs, count uint32, off uint64, result uint32) (res, arr []byte, _ Errno) {
	res = view(mem, result, 4)
	if res == nil {
		return nil, nil, EFAULT
	}
	arr, total, errno := s.iovecs(mem, iovs, count)
	if errno != ESUCCESS {
		return nil, nil, errno
	}
	if total > 1<<31 || off > math.MaxInt64 || off+total > math.MaxInt64 {
		return nil, nil, EINVAL
	}
	return res, arr, ESUCCESS
}

// fdPread reads at an offset straight into the guest's buffers (one
// ReadAt per iovec, no copy in between).
func (s *System) fdPread(_ context.Context, c engine.Caller, stk []uint64) Errno {
	return s.positionedIO(c, stk, false)
}

// fdPwrite writes at an offset straight from the guest's buffers.
func (s *System) fdPwrite(_ context.Context, c engine.Caller, stk []uint64) Errno {
	return s.positionedIO(c, stk, true)
}

// positionedIO is fd_pread (write false) and fd_pwrite: one ReadAt or
// WriteAt per iovec at the offset plus what was moved so far, stopping at
// the first short transfer; an error after some bytes moved ends the
// call with their count, as preadv/pwritev do. End of file is not an
// error for a read.
func (s *System) positionedIO(c engine.Caller, stk []uint64, write bool) Errno {
	right := fd.RightFdRead
	if write {
		right = fd.RightFdWrite
	}
	_, f, errno := s.fileArg(stk[0], right)
	if errno != ESUCCESS {
		return errno
	}
	mem := c.Memory()
	iovs, count, off := uint32(stk[1]), uint32(stk[2]), stk[3]
	res, arr, errno := s.positioned(mem, iovs, count, off, uint32(stk[4]))
	if errno != ESUCCESS {
		return errno
	}
	var total uint32
	for i := range len(arr) / 8 {
		b := iov(mem, arr, i)
		if len(b) == 0 {
			continue
		}
		var n int
		var err error
		if write {
			n, err = f.WriteAt(b, int64(off)+int64(total))
		} else {
			n, err = f.ReadAt(b, int64(off)+int64(total))
		}
		total += uint32(n)
		if err != nil && (write || !errors.Is(err, io.EOF)) {
			if total == 0 {
				return errnoOf(err)
			}
			break
		}
		if n < len(b) {
			break
		}
	}
	le.PutUint32(res, total)
	return ESUCCESS
}

func (s *System) fdSync(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	var f interface{ Sync() error }
	switch x := e.File.(type) {
	case vfs.Dir:
		f = x
	case vfs.File:
		f = x
	default:
		return EINVAL // fsync(2) on a pipe or socket
	}
	if errno := need(e, fd.RightFdSync); errno != ESUCCESS {
		return errno
	}
	return errnoOf(f.Sync())
}

func (s *System) fdDatasync(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	switch f := e.File.(type) {
	case vfs.Dir:
		if errno := need(e, fd.RightFdDatasync); errno != ESUCCESS {
			return errno
		}
		return errnoOf(f.Sync())
	case vfs.File:
		if errno := need(e, fd.RightFdDatasync); errno != ESUCCESS {
			return errno
		}
		return errnoOf(f.Datasync())
	}
	return EINVAL
}

// fdAdvise is fd_advise: advice is checked (0..5) and otherwise only a
// hint, which the sources do not need.
func (s *System) fdAdvise(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	if _, _, errno := s.fileArg(stk[0], fd.RightFdAdvise); errno != ESUCCESS {
		return errno
	}
	if uint32(stk[3]) > 5 || stk[1] > math.MaxInt64 || stk[2] > math.MaxInt64 {
		return EINVAL
	}
	return ESUCCESS
}

func (s *System) fdAllocate(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	_, f, errno := s.fileArg(stk[0], fd.RightFdAllocate)
	if errno != ESUCCESS {
		return errno
	}
	off, n := stk[1], stk[2]
	if n == 0 {
		return EINVAL // as posix_fallocate(3)
	}
	if off > math.MaxInt64 || n > math.MaxInt64 || off+n > math.MaxInt64 {
		return EFBIG
	}
	return errnoOf(f.Allocate(int64(off), int64(n)))
}
