// Package hostfs is the "host" source of the Keep's preopened directories
// (Enarx.toml [[files]] kind = "dir", source = "host"): a vfs.Dir over a
// directory file descriptor the host passes in, read and written in
// plaintext.
//
// What it trusts: nothing from the host. The host sees every byte and
// every name stored here and may change any of them at any time, including
// while the Keep works (a directory swapped for a symlink, a file renamed
// under a path being resolved). What this package guarantees is only that
// no path the guest passes, and nothing the host does meanwhile, makes the
// Keep open, create, change or stat anything outside the directory it was
// given. Confidentiality and integrity of the contents are not provided:
// that is the "sealed" source's job.
//
// How: every path is resolved by the kernel with openat2(2) and
// RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS, which refuses absolute paths,
// ".." above the starting directory and symlinks leading out (EXDEV, which
// becomes vfs.ErrNotCapable) and is immune to concurrent renames (the
// kernel retries or fails with EAGAIN). Calls that have no RESOLVE flags
// (mkdirat, unlinkat, renameat, linkat, symlinkat, readlinkat, utimensat,
// fstatat) get a parent directory opened that way and act on a single
// final component that the kernel does not follow. A symlink in the final
// component that must be followed outside openat2 (SetTimesAt and Link
// with follow) is read and resolved again from the directory, beneath it,
// at most vfs.MaxSymlinks times (ELOOP); StatAt stats what openat2 opened
// with O_PATH. Without openat2 (Linux older
// than 5.6, or a seccomp filter refusing it) New fails: there is no safe
// fallback walk.
//
// Errno choices, beyond what the kernel returns:
//   - read-only directory: every call that would change the directory
//     (create, remove, rename, link, symlink, set times, open for writing
//     or truncation, and writes, truncation and allocation through files)
//     fails with EROFS, after the path is resolved (so a missing parent is
//     still ENOENT, an escape ErrNotCapable; an exclusive create of an
//     existing file EEXIST and a directory opened for writing EISDIR, as
//     on a read-only mount; but Mkdir of an existing name is EROFS);
//   - a FIFO, socket or device found in the host directory is never
//     returned as a File (a FIFO could block the Keep forever, a device is
//     the host's): Open opens with O_NONBLOCK|O_NOCTTY, checks the type and
//     fails with EACCES;
//   - "." or ".." as the final component of a call that creates or
//     removes: Mkdir, Symlink and Link's new path EEXIST; Rmdir "." EINVAL
//     and ".." ENOTEMPTY; Unlink EISDIR; Rename EBUSY (all as Linux);
//   - EAGAIN when the kernel keeps reporting a rename race during
//     resolution (a host renaming in a loop) after maxRetries tries.
package hostfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// resolveFlags keep every resolution beneath its starting directory and
// refuse /proc-style magic links, which could otherwise jump anywhere.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS

// maxRetries bounds the retries of an openat2 the kernel fails with
// EAGAIN because a concurrent rename made ".." unsafe to check.
const maxRetries = 64

// New returns the directory dirFD refers to as a vfs.Dir, read-only if
// readonly. It takes ownership of dirFD (closed on return, success or
// not): the Dir works on its own descriptor of the same directory, so a
// host that kept a copy of dirFD shares no file offset with it.
func New(dirFD *os.File, readonly bool) (vfs.Dir, error) {
	if dirFD == nil {
		return nil, errors.New("hostfs: no host directory descriptor")
	}
	defer dirFD.Close()
	name := dirFD.Name()
	rc, err := dirFD.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("hostfs: host directory %s: %w", name, err)
	}
	var nfd int
	var oerr error
	cerr := rc.Control(func(hfd uintptr) {
		var st unix.Stat_t
		if err := unix.Fstat(int(hfd), &st); err != nil {
			oerr = fmt.Errorf("hostfs: host directory %s: fstat: %w", name, err)
			return
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			oerr = fmt.Errorf("hostfs: %s is not a directory (pass a directory as host_path)", name)
			return
		}
		nfd, oerr = openat2(int(hfd), ".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		switch {
		case errors.Is(oerr, unix.ENOSYS), errors.Is(oerr, unix.EPERM):
			oerr = fmt.Errorf("hostfs: openat2(2) is not available (%w): a host directory needs Linux 5.6 or later "+
				"(and a seccomp filter that allows openat2) to keep every path beneath it; refusing %s", oerr, name)
		case oerr != nil:
			oerr = fmt.Errorf("hostfs: open host directory %s: %w", name, oerr)
		}
	})
	if cerr != nil {
		return nil, fmt.Errorf("hostfs: host directory %s: %w", name, cerr)
	}
	if oerr != nil {
		return nil, oerr
	}
	return newDir(nfd, &root{readonly: readonly}), nil
}

// root is what the directories opened from one New share.
type root struct {
	readonly bool
}

// hostFD is a host descriptor that Close may release while another
// goroutine uses it: users hold the read lock for the duration of a
// system call, so the number is never reused under them (a reused
// directory number would let a resolution start somewhere else).
type hostFD struct {
	mu sync.RWMutex
	fd int
}

// get returns the descriptor with the read lock held, or EBADF once
// closed; put releases it.
func (h *hostFD) get() (int, error) {
	h.mu.RLock()
	if h.fd < 0 {
		h.mu.RUnlock()
		return -1, syscall.EBADF
	}
	return h.fd, nil
}

func (h *hostFD) put() { h.mu.RUnlock() }

func (h *hostFD) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		return syscall.EBADF
	}
	err := unix.Close(h.fd)
	h.fd = -1
	if err != nil && err != unix.EINTR {
		return err
	}
	return nil
}

// openat2 opens path beneath dirfd. EXDEV (the path would leave dirfd)
// becomes vfs.ErrNotCapable; EINTR and the kernel's rename-race EAGAIN
// are retried.
func openat2(dirfd int, path string, flags uint64, mode uint64) (int, error) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: resolveFlags}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, path, &how)
		switch {
		case err == nil:
			return fd, nil
		case err == unix.EXDEV:
			return -1, vfs.ErrNotCapable
		case err == unix.EINTR, err == unix.EAGAIN && i < maxRetries:
			continue
		}
		return -1, err
	}
}

// checkPath refuses what never names anything beneath a directory.
func checkPath(p string) error {
	switch {
	case p == "":
		return syscall.ENOENT
	case p[0] == '/':
		return vfs.ErrNotCapable
	case len(p) > vfs.MaxPath:
		return syscall.ENAMETOOLONG
	case strings.IndexByte(p, 0) >= 0:
		return syscall.EINVAL
	}
	return nil
}

// splitPath splits p into its parent (with its trailing '/', or "" for
// the directory itself) and its final component, reporting whether p
// ended with '/'.
func splitPath(p string) (parent, name string, slash bool) {
	for len(p) > 1 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
		slash = true
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p, slash
	}
	return p[:i+1], p[i+1:], slash
}

// isDot reports whether name is "." or "..".
func isDot(name string) bool { return name == "." || name == ".." }

// withSlash gives name back its trailing slash, so that the kernel
// applies its trailing-slash rules to the final component (it does not
// follow it for the calls that get one: mkdirat, unlinkat, renameat2,
// linkat's new path, symlinkat).
func withSlash(name string, slash bool) string {
	if slash {
		return name + "/"
	}
	return name
}
