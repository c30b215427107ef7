package hostfs

import (
	"io"
	"math"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// file is an open regular host file; it implements vfs.File. Reads and
// writes go straight to the host descriptor (no buffering, no copy), at
// the kernel's file offset.
type file struct {
	h           hostFD
	root        *root
	read, write bool
}

var _ vfs.File = (*file)(nil)

func newFile(fd int, r *root, read, write bool) *file {
	return &file{h: hostFD{fd: fd}, root: r, read: read, write: write}
}

// Filetype implements fd.File.
func (f *file) Filetype() fd.Filetype { return fd.FiletypeRegularFile }

// Rights implements fd.File.
func (f *file) Rights() uint64 {
	r := fileRightsRead
	if f.write && !f.root.readonly {
		r |= fileRightsWrite
	}
	if !f.read {
		r &^= fd.RightFdRead
	}
	return r
}

// Close implements fd.File.
func (f *file) Close() error { return f.h.close() }

// PollFD implements fd.Poller: a regular file is always ready.
func (f *file) PollFD(bool) (int, bool) { return -1, true }

// Read implements fd.Stream: read(2) at the file offset; 0, io.EOF at the
// end. A regular file never blocks for long, so nonblock changes nothing.
func (f *file) Read(p []byte, _ bool) (int, error) { return f.readOrPread(p, -1) }

// Write implements fd.Stream: write(2) at the file offset (the end with
// O_APPEND) until all of p is written or an error (ENOSPC, EFBIG, ...)
// stops it; n counts what was written.
func (f *file) Write(p []byte, _ bool) (int, error) { return f.writeOrPwrite(p, -1) }

// ReadAt is pread(2): it may return fewer bytes than asked; 0, io.EOF at
// or past the end.
func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	return f.readOrPread(p, off)
}

// WriteAt is pwrite(2) until all of p is written or an error stops it.
// The file offset does not move. (Linux appends pwrite data to a file
// opened with O_APPEND, whatever off says.)
func (f *file) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	return f.writeOrPwrite(p, off)
}

// readOrPread is one read(2) (off < 0) or pread(2) at off, retried on EINTR.
func (f *file) readOrPread(p []byte, off int64) (int, error) {
	hfd, err := f.h.get()
	if err != nil {
		return 0, err
	}
	defer f.h.put()
	for {
		var n int
		if off < 0 {
			n, err = unix.Read(hfd, p)
		} else {
			n, err = unix.Pread(hfd, p, off)
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// writeOrPwrite is write(2) (off < 0) or pwrite(2) at off, repeated until all of
// p is written or an error stops it.
func (f *file) writeOrPwrite(p []byte, off int64) (int, error) {
	hfd, err := f.h.get()
	if err != nil {
		return 0, err
	}
	defer f.h.put()
	if f.root.readonly {
		return 0, syscall.EROFS
	}
	total := 0
	for {
		var n int
		if off < 0 {
			n, err = unix.Write(hfd, p[total:])
		} else {
			n, err = unix.Pwrite(hfd, p[total:], off+int64(total))
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		total += n
		switch {
		case total >= len(p):
			return total, nil
		case n == 0:
			// No progress and no error: not what a file does.
			return total, syscall.EIO
		}
	}
}

// Seek implements vfs.File.
func (f *file) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekStart && whence != io.SeekCurrent && whence != io.SeekEnd {
		return 0, syscall.EINVAL
	}
	hfd, err := f.h.get()
	if err != nil {
		return 0, err
	}
	defer f.h.put()
	return unix.Seek(hfd, off, whence)
}

// Stat implements vfs.File.
func (f *file) Stat() (vfs.Stat, error) {
	hfd, err := f.h.get()
	if err != nil {
		return vfs.Stat{}, err
	}
	defer f.h.put()
	var st unix.Stat_t
	if err := unix.Fstat(hfd, &st); err != nil {
		return vfs.Stat{}, err
	}
	return toStat(&st), nil
}

// Truncate implements vfs.File.
func (f *file) Truncate(size int64) error {
	hfd, err := f.h.get()
	if err != nil {
		return err
	}
	defer f.h.put()
	switch {
	case f.root.readonly:
		return syscall.EROFS
	case size < 0:
		return syscall.EINVAL
	}
	return unix.Ftruncate(hfd, size)
}

// Allocate implements vfs.File with fallocate(2) (mode 0: the blocks are
// reserved and the size grows to off+n if smaller; ENOSPC if the space
// is not there). On a file system without fallocate (EOPNOTSUPP: some
// FUSE and NFS mounts) it only grows the size with ftruncate, as
// posix_fallocate must; no blocks are reserved there, so a later write
// can still fail with ENOSPC.
func (f *file) Allocate(off, n int64) error {
	hfd, err := f.h.get()
	if err != nil {
		return err
	}
	defer f.h.put()
	switch {
	case f.root.readonly:
		return syscall.EROFS
	case off < 0 || n <= 0:
		return syscall.EINVAL
	case off > math.MaxInt64-n:
		return syscall.EFBIG
	}
	for {
		err = unix.Fallocate(hfd, 0, off, n)
		if err != unix.EINTR {
			break
		}
	}
	if err != unix.EOPNOTSUPP {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(hfd, &st); err != nil {
		return err
	}
	if st.Size >= off+n {
		return nil
	}
	return unix.Ftruncate(hfd, off+n)
}

// SetTimes implements vfs.File.
func (f *file) SetTimes(t vfs.Times) error {
	hfd, err := f.h.get()
	if err != nil {
		return err
	}
	defer f.h.put()
	if f.root.readonly {
		return syscall.EROFS
	}
	return futimens(hfd, t)
}

// SetAppend implements vfs.File (fcntl F_SETFL O_APPEND).
func (f *file) SetAppend(on bool) error {
	hfd, err := f.h.get()
	if err != nil {
		return err
	}
	defer f.h.put()
	fl, err := unix.FcntlInt(uintptr(hfd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	nfl := fl &^ unix.O_APPEND
	if on {
		nfl |= unix.O_APPEND
	}
	if nfl == fl {
		return nil
	}
	_, err = unix.FcntlInt(uintptr(hfd), unix.F_SETFL, nfl)
	return err
}

// Sync implements vfs.File (fsync).
func (f *file) Sync() error {
	hfd, err := f.h.get()
	if err != nil {
		return err
	}
	defer f.h.put()
	return unix.Fsync(hfd)
}

// Datasync implements vfs.File (fdatasync).
func (f *file) Datasync() error {
	hfd, err := f.h.get()
	if err != nil {
		return err
	}
	defer f.h.put()
	return unix.Fdatasync(hfd)
}
