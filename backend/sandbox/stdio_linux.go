package sandbox

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// The host's descriptors a Keep gets. A passed descriptor is a reference to
// the host's open file description, and so are the status flags on it
// (O_NONBLOCK, O_APPEND, O_DIRECT, …): a Keep that set O_NONBLOCK on the
// host's stdio, which a Keep may (fcntl F_SETFL is allowed: the Go runtime
// and fd_fdstat_set_flags use it), would leave the user's terminal
// non-blocking after enarx exits, and enarx's own later writes to it would
// fail with EAGAIN. So:
//
//   - a tty, pipe or FIFO (no file offset to share) reaches the Keep as a
//     new open file description of the same file, opened by the host
//     through /proc/self/fd with the same access mode (and O_APPEND): the
//     Keep's flag changes stay its own (a terminal as the stdin entry
//     reaches it as a pipe the host relays it into: ttyrelay_linux.go);
//   - everything else is shared as before: a regular file must share its
//     offset (`enarx run > out.txt` appends to what the shell wrote), a
//     socket cannot be opened again (ENXIO), a directory the Keep opens
//     again itself (reopenDir); so does anything whose reopening fails.
//     Their status flags are read before the Keep starts and put back once
//     it has ended (afterKeep). The Keep process's own stderr is not
//     shared so, /dev/null excepted: it gets a pipe the host copies
//     (keepstderr_linux.go).

// keepFile is the file the Keep gets for the host's f: a new open file
// description (ownDescription), which k closes, or f itself, whose flags
// k puts back after the run. access is the access mode the Keep uses f
// with (O_RDONLY, O_WRONLY, or asHost): a description of its own gets no
// more, where the host's is open for both (see ownDescriptionAs).
func (k *keepFDs) keepFile(f *os.File, access int) *os.File {
	if nf, err := ownDescriptionAs(f, access); err == nil && nf != nil {
		k.closers = append(k.closers, nf)
		return nf
	}
	if s, err := saveFlags(f); err == nil {
		k.shared = append(k.shared, s)
	}
	return f
}

// asHost: reopen with the host description's access mode.
const asHost = -1

// ownDescription opens f's file again, for a tty, pipe or FIFO, with the
// same access mode; it returns nil for any other file.
func ownDescription(f *os.File) (*os.File, error) { return ownDescriptionAs(f, asHost) }

// ownDescriptionAs is ownDescription, but with access (O_RDONLY or
// O_WRONLY) where the host's description is open for reading and writing:
// a terminal's usually is (a shell opens it O_RDWR and hands the one
// description to stdin, stdout and stderr), and a Keep that got the
// user's terminal to write its output to could otherwise read from it
// too — the keystrokes the user types to the shell, with enarx in the
// background, where job control does not stop the Keep (it is in a
// session of its own: the terminal is not its controlling one) as it
// stops a process of the shell's session that reads it (SIGTTIN).
func ownDescriptionAs(f *os.File, access int) (*os.File, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nf *os.File
	if cerr := rc.Control(func(fd uintptr) { nf, err = reopenFD(int(fd), f.Name(), access) }); cerr != nil {
		return nil, cerr
	}
	return nf, err
}

// reopenFD opens the file of descriptor fd again (see ownDescriptionAs),
// blocking and close-on-exec.
func reopenFD(fd int, name string, access int) (*os.File, error) {
	nfd, err := reopenRaw(fd, access)
	if err != nil || nfd < 0 {
		return nil, err
	}
	if err := unix.SetNonblock(nfd, false); err != nil {
		unix.Close(nfd)
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// reopenRaw is reopenFD's open: the new descriptor, non-blocking, or -1
// for a file that is not opened again.
func reopenRaw(fd int, access int) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFIFO:
	case unix.S_IFCHR:
		if !reopenableTTY(st.Rdev) {
			return -1, nil
		}
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
			return -1, nil // not a tty
		}
	default:
		return -1, nil
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return -1, err
	}
	if access != asHost && fl&unix.O_ACCMODE == unix.O_RDWR {
		fl = fl&^unix.O_ACCMODE | access
	}
	// O_NONBLOCK for the open only: a FIFO's would wait for its other
	// end (a write-only one without a reader fails with ENXIO instead:
	// the description is shared). O_NOCTTY: a tty never becomes the
	// host's controlling terminal.
	nfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd),
		fl&(unix.O_ACCMODE|unix.O_APPEND)|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var nst unix.Stat_t
	if err := unix.Fstat(nfd, &nst); err != nil || nst.Dev != st.Dev || nst.Ino != st.Ino || nst.Rdev != st.Rdev {
		unix.Close(nfd)
		return -1, errors.New("reopened another file")
	}
	return nfd, nil
}

// reopenableTTY reports whether a character device may be opened again as
// the same terminal: not /dev/tty (the opener's controlling terminal),
// /dev/console, nor a pseudo-terminal master, whose device (/dev/ptmx, a
// BSD master) would make a new terminal.
func reopenableTTY(rdev uint64) bool {
	major, minor := unix.Major(rdev), unix.Minor(rdev)
	return major != 2 && !(major == 5 && minor <= 2)
}

// sharedFlags are a shared open file description's status flags as they
// were before the Keep started.
type sharedFlags struct {
	f     *os.File
	flags int
}

// saveFlags reads f's status flags. It takes f's descriptor as starting
// the Keep does (Fd leaves it blocking), so what it reads is what the
// Keep gets.
func saveFlags(f *os.File) (sharedFlags, error) {
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	return sharedFlags{f: f, flags: fl}, err
}

// restore puts the status flags back if the Keep changed them.
func (s sharedFlags) restore() {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		if fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0); err == nil && fl != s.flags {
			_, _ = unix.FcntlInt(fd, unix.F_SETFL, s.flags)
		}
	})
}
