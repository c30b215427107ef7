package wasi

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// Errno is a WASI preview1 error number.
type Errno uint16

// WASI preview1 errno values used by this layer.
const (
	ESUCCESS      Errno = 0
	E2BIG         Errno = 1
	EACCES        Errno = 2
	EADDRINUSE    Errno = 3
	EADDRNOTAVAIL Errno = 4
	EAGAIN        Errno = 6
	EBADF         Errno = 8
	ECONNABORTED  Errno = 13
	ECONNREFUSED  Errno = 14
	ECONNRESET    Errno = 15
	EFAULT        Errno = 21
	EHOSTUNREACH  Errno = 23
	EINTR         Errno = 27
	EINVAL        Errno = 28
	EIO           Errno = 29
	EISDIR        Errno = 31
	EMFILE        Errno = 33
	EMSGSIZE      Errno = 35
	ENETDOWN      Errno = 38
	ENETUNREACH   Errno = 40
	ENOBUFS       Errno = 42
	ENOMEM        Errno = 48
	ENOSPC        Errno = 51
	ENOSYS        Errno = 52
	ENOTCONN      Errno = 53
	ENOTDIR       Errno = 54
	ENOTSOCK      Errno = 57
	ENOTSUP       Errno = 58
	EPERM         Errno = 63
	EPIPE         Errno = 64
	ESPIPE        Errno = 70
	ETIMEDOUT     Errno = 73
	ENOTCAPABLE   Errno = 76
)

var hostErrno = map[syscall.Errno]Errno{
	syscall.E2BIG:         E2BIG,
	syscall.EACCES:        EACCES,
	syscall.EADDRINUSE:    EADDRINUSE,
	syscall.EADDRNOTAVAIL: EADDRNOTAVAIL,
	syscall.EAGAIN:        EAGAIN,
	syscall.EBADF:         EBADF,
	syscall.ECONNABORTED:  ECONNABORTED,
	syscall.ECONNREFUSED:  ECONNREFUSED,
	syscall.ECONNRESET:    ECONNRESET,
	syscall.EFAULT:        EFAULT,
	syscall.EHOSTUNREACH:  EHOSTUNREACH,
	syscall.EINTR:         EINTR,
	syscall.EINVAL:        EINVAL,
	syscall.EIO:           EIO,
	syscall.EISDIR:        EISDIR,
	syscall.EMFILE:        EMFILE,
	syscall.EMSGSIZE:      EMSGSIZE,
	syscall.ENETDOWN:      ENETDOWN,
	syscall.ENETUNREACH:   ENETUNREACH,
	syscall.ENOBUFS:       ENOBUFS,
	syscall.ENOMEM:        ENOMEM,
	syscall.ENOSPC:        ENOSPC,
	syscall.ENOSYS:        ENOSYS,
	syscall.ENOTCONN:      ENOTCONN,
	syscall.ENOTDIR:       ENOTDIR,
	syscall.ENOTSOCK:      ENOTSOCK,
	syscall.ENOTSUP:       ENOTSUP,
	syscall.EPERM:         EPERM,
	syscall.EPIPE:         EPIPE,
	syscall.ESPIPE:        ESPIPE,
	syscall.ETIMEDOUT:     ETIMEDOUT,
}

// errnoOf maps a host error to the WASI errno the guest sees. Unknown
// errors become EIO (their text is not leaked to the guest).
func errnoOf(err error) Errno {
	if err == nil {
		return ESUCCESS
	}
	var se syscall.Errno
	if errors.As(err, &se) {
		if e, ok := hostErrno[se]; ok {
			return e
		}
		return EIO
	}
	switch {
	case errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed):
		return EBADF
	case errors.Is(err, os.ErrDeadlineExceeded):
		return EAGAIN
	}
	return EIO
}
