package fd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Stdio is a host stdin, stdout or stderr passed to the Keep. It never
// changes the host descriptor's flags (the host may share it with other
// processes, e.g. a terminal): non-blocking reads are emulated with a
// zero-timeout poll, and writes always complete.
type Stdio struct {
	f      *os.File
	fd     int
	write  bool
	ftype  Filetype
	closed bool
}

// NewStdio wraps host file f as a read-only (stdin) or write-only
// (stdout/stderr) stream.
func NewStdio(f *os.File, write bool) (*Stdio, error) {
	raw, err := rawFD(f)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(raw, &st); err != nil {
		return nil, fmt.Errorf("fstat %s: %w", f.Name(), err)
	}
	return &Stdio{f: f, fd: raw, write: write, ftype: filetypeOf(st.Mode)}, nil
}

// FiletypeOf is the WASI filetype of host file f (FiletypeUnknown if it
// cannot be examined).
func FiletypeOf(f *os.File) Filetype {
	st, err := f.Stat()
	if err != nil {
		return FiletypeUnknown
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return FiletypeUnknown
	}
	return filetypeOf(sys.Mode)
}

func filetypeOf(mode uint32) Filetype {
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR:
		return FiletypeCharacterDevice
	case unix.S_IFREG:
		return FiletypeRegularFile
	case unix.S_IFBLK:
		return FiletypeBlockDevice
	case unix.S_IFSOCK:
		return FiletypeSocketStream
	case unix.S_IFDIR:
		return FiletypeDirectory
	}
	return FiletypeUnknown
}

// rawFD returns f's descriptor without switching it to blocking mode (as
// (*os.File).Fd would).
func rawFD(f interface {
	SyscallConn() (syscall.RawConn, error)
}) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(x uintptr) { fd = int(x) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// Filetype implements File.
func (s *Stdio) Filetype() Filetype { return s.ftype }

// Rights implements File.
func (s *Stdio) Rights() uint64 {
	if s.write {
		return RightFdWrite | RightFdFdstatSetFlags | RightFdFilestatGet | RightPollFdReadwrite
	}
	return RightFdRead | RightFdFdstatSetFlags | RightFdFilestatGet | RightPollFdReadwrite
}

// Read implements Stream.
func (s *Stdio) Read(p []byte, nonblock bool) (int, error) {
	if s.write {
		return 0, syscall.EBADF
	}
	if len(p) == 0 {
		return 0, nil
	}
	// Regular files and block devices are always ready (poll says so
	// too); skip the extra system call for them.
	if nonblock && s.ftype != FiletypeRegularFile && s.ftype != FiletypeBlockDevice && !pollNow(s.fd, false) {
		return 0, ErrWouldBlock
	}
	n, err := s.f.Read(p)
	if n > 0 {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return 0, io.EOF
	}
	return 0, err
}

// Write implements Stream.
func (s *Stdio) Write(p []byte, _ bool) (int, error) {
	if !s.write {
		return 0, syscall.EBADF
	}
	return s.f.Write(p)
}

// PollFD implements Poller.
func (s *Stdio) PollFD(write bool) (int, bool) {
	if write != s.write {
		// Wrong direction: report ready so the guest's next call fails
		// with EBADF instead of waiting forever.
		return -1, true
	}
	return s.fd, false
}

// Close implements File. The host's descriptor is closed only by the host
// (it owns os.Stdin and friends); the Keep just stops using it.
func (s *Stdio) Close() error {
	if s.closed {
		return syscall.EBADF
	}
	s.closed = true
	return nil
}

// Null is the "null" kind: reads see end of file, writes are discarded.
type Null struct{}

// Filetype implements File.
func (Null) Filetype() Filetype { return FiletypeCharacterDevice }

// Rights implements File.
func (Null) Rights() uint64 { return RightsStream }

// Read implements Stream.
func (Null) Read([]byte, bool) (int, error) { return 0, io.EOF }

// Write implements Stream.
func (Null) Write(p []byte, _ bool) (int, error) { return len(p), nil }

// PollFD implements Poller: always ready.
func (Null) PollFD(bool) (int, bool) { return -1, true }

// Close implements File.
func (Null) Close() error { return nil }

// pollNow reports whether fd is ready (POLLIN, or POLLOUT if write) right
// now. Errors and hang-ups count as ready: the following call reports them.
func pollNow(fd int, write bool) bool {
	ev := int16(unix.POLLIN)
	if write {
		ev = unix.POLLOUT
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: ev}}
	for {
		n, err := unix.Poll(pfd, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n > 0
	}
}
