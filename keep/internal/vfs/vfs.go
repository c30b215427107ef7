// Package vfs defines the file-system objects behind the Keep's WASI path
// and directory calls: a preopened directory (Enarx.toml [[files]] entry of
// kind "dir"), the directories and regular files opened beneath it, and
// the shared rules every source follows. The sources implement it:
//
//   - vfs/memfs: a Keep-private tree in Keep memory, size-capped;
//   - vfs/hostfs: a host directory, plaintext, untrusted (the host sees
//     and may change everything);
//   - vfs/sealed: a host directory holding only ciphertext, encrypted and
//     authenticated inside the Keep.
//
// The WASI layer (keep/internal/wasi) validates every guest pointer,
// length, flag and string (no NUL, valid UTF-8) before it calls into this
// package, and maps the returned errors to WASI errnos: implementations
// return syscall.Errno values (ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY,
// ENOSPC, EXDEV, ELOOP, ENAMETOOLONG, ENOTSUP, ...), ErrNotCapable for a
// path that would leave its preopen, and errors wrapping ErrIntegrity (seen
// by the guest as EIO) when sealed data fails authentication.
//
// Trust: the guest is untrusted, and so are the bytes and the shape of a
// host directory (a host may swap a directory for a symlink while the Keep
// works). Every path is resolved beneath the directory it is relative to:
// "..", absolute paths and symlinks never lead outside the preopen, whatever
// the guest passes and whatever the host does meanwhile.
package vfs

import (
	"errors"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// ErrNotCapable is returned for a path that would resolve outside the
// directory it is relative to (an absolute path, too many "..", a symlink
// leading out). The WASI layer reports it as ENOTCAPABLE.
var ErrNotCapable = errors.New("path escapes its preopened directory")

// ErrIntegrity is wrapped by errors of a sealed volume whose ciphertext
// or metadata failed authentication (tampered, swapped, truncated, rolled
// back). The guest sees EIO; the Keep logs the error.
var ErrIntegrity = errors.New("sealed volume integrity check failed")

// MaxSymlinks bounds symlink expansion during one resolution (ELOOP).
const MaxSymlinks = 40

// MaxPath and MaxName bound a path and one component (ENAMETOOLONG).
const (
	MaxPath = 4096
	MaxName = 255
)

// Stat is a WASI filestat.
type Stat struct {
	Dev, Ino uint64
	Type     fd.Filetype
	Nlink    uint64
	Size     uint64
	// Atim, Mtim and Ctim are nanoseconds since the Unix epoch.
	Atim, Mtim, Ctim int64
}

// Times is a validated fd/path_filestat_set_times request.
type Times struct {
	// Atim and Mtim are nanoseconds since the Unix epoch, used when
	// SetAtim / SetMtim is set.
	Atim, Mtim int64
	// SetAtim / SetMtim set the time to Atim / Mtim; AtimNow / MtimNow to
	// the current time. At most one of each pair is set.
	SetAtim, AtimNow, SetMtim, MtimNow bool
}

// OpenOptions is a validated path_open request.
type OpenOptions struct {
	// Follow follows a symlink in the final component (lookupflags
	// SYMLINK_FOLLOW); symlinks in earlier components are always followed
	// (beneath the preopen).
	Follow bool
	// Create, Excl, Trunc and Directory are the oflags.
	Create, Excl, Trunc, Directory bool
	// Read and Write come from the requested rights (FD_READ, FD_WRITE and
	// the rights that imply writing, such as FD_FILESTAT_SET_SIZE).
	Read, Write bool
	// Append, Sync and Dsync are the fdflags (RSYNC implies nothing more
	// than Sync here).
	Append, Sync, Dsync bool
}

// Dirent is one fd_readdir entry.
type Dirent struct {
	// Next is the cookie that continues the listing after this entry.
	Next uint64
	Ino  uint64
	Name string
	Type fd.Filetype
}

// Dir is an open directory. Paths are relative to it, '/'-separated, and
// already checked by the WASI layer (valid UTF-8, no NUL, at most MaxPath
// bytes). A trailing '/' on a path means the final component must be a
// directory (or a symlink to one, when it is followed).
type Dir interface {
	fd.File
	// Open opens (and with o.Create, creates) path: a Dir when the result
	// is a directory, a File otherwise.
	Open(path string, o OpenOptions) (fd.File, error)
	// Stat returns the directory's own filestat.
	Stat() (Stat, error)
	// StatAt returns path's filestat, following a final symlink if follow.
	StatAt(path string, follow bool) (Stat, error)
	// SetTimes sets the directory's own times.
	SetTimes(t Times) error
	// SetTimesAt sets path's times, following a final symlink if follow.
	SetTimesAt(path string, follow bool, t Times) error
	// Mkdir creates a directory (EEXIST if path exists, even as a dangling
	// symlink).
	Mkdir(path string) error
	// Rmdir removes an empty directory (ENOTEMPTY, ENOTDIR).
	Rmdir(path string) error
	// Unlink removes a non-directory (EISDIR for a directory; a trailing
	// '/' gives ENOTDIR).
	Unlink(path string) error
	// Rename renames oldPath to newPath beneath newDir, which must be a
	// directory of the same source (EXDEV otherwise), with rename(2)'s
	// rules for replacing an existing target.
	Rename(oldPath string, newDir Dir, newPath string) error
	// Link makes newPath beneath newDir a hard link to oldPath (ENOTSUP
	// where the source has no hard links).
	Link(oldPath string, follow bool, newDir Dir, newPath string) error
	// Symlink creates path as a symlink to target (ENOTSUP where the
	// source has no symlinks). target is stored as given; it is only
	// resolved, beneath the preopen, when followed.
	Symlink(target, path string) error
	// Readlink returns a symlink's target (EINVAL if not a symlink).
	Readlink(path string) (string, error)
	// ReadDir returns up to max entries, "." and ".." included, starting
	// at cookie (0 = the beginning; otherwise a Dirent.Next returned
	// before). A listing that has ended returns no entries.
	ReadDir(cookie uint64, max int) ([]Dirent, error)
	// Sync makes the directory's entries durable (fd_sync on a directory;
	// a sealed volume commits its metadata).
	Sync() error
}

// File is an open regular file (or another non-directory object a source
// can open). It is an fd.Stream so that fd_read, fd_write and poll_oneoff
// treat it like any other stream: it is always ready and never blocks
// for long, whatever nonblock says. Read and Write use and advance the
// file's offset; with Append, Write goes to the end.
type File interface {
	fd.Stream
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Seek is lseek(2) with io.Seek* whence values; a negative result is
	// EINVAL.
	Seek(off int64, whence int) (int64, error)
	Stat() (Stat, error)
	// Truncate sets the size (fd_filestat_set_size).
	Truncate(size int64) error
	// Allocate makes sure [off, off+n) is backed (fd_allocate): the size
	// grows to off+n if smaller; ENOSPC if the space is not there.
	Allocate(off, n int64) error
	SetTimes(t Times) error
	// SetAppend switches O_APPEND (fd_fdstat_set_flags).
	SetAppend(on bool) error
	// Sync and Datasync make the file's data (and, for Sync, metadata)
	// durable; a sealed volume commits.
	Sync() error
	Datasync() error
}

// Preopen is a preopened directory: the fd table entry of an Enarx.toml
// [[files]] entry of kind "dir". Name is its guest path (fd_prestat_dir_name).
type Preopen struct {
	Dir
	Name string
}

// ValidName reports whether name can be one path component.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return syscall.EINVAL
	case len(name) > MaxName:
		return syscall.ENAMETOOLONG
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return syscall.EINVAL
		}
	}
	return nil
}
