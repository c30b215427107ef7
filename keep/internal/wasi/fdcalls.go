package wasi

import (
	"context"
	"errors"
	"io"

	"github.com/enarx-go/enarx/keep/internal/engine"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// entry looks up a descriptor.
func (s *System) entry(n uint64) (*fd.Entry, Errno) {
	e, err := s.Files.Get(uint32(n))
	if err != nil {
		return nil, EBADF
	}
	return e, ESUCCESS
}

// iovecs validates an iovec array and returns its total length. Every
// buffer must lie inside memory: the check happens before any I/O.
func iovecs(mem []byte, iovs, count uint32) (uint64, Errno) {
	if count > MaxIovecs {
		return 0, EINVAL
	}
	arr := view(mem, iovs, count*8)
	if arr == nil {
		return 0, EFAULT
	}
	var total uint64
	for i := uint32(0); i < count; i++ {
		p, n := le.Uint32(arr[8*i:]), le.Uint32(arr[8*i+4:])
		if view(mem, p, n) == nil {
			return 0, EFAULT
		}
		total += uint64(n)
	}
	return total, ESUCCESS
}

// iov returns buffer i of a validated iovec array.
func iov(mem []byte, iovs, i uint32) []byte {
	arr := view(mem, iovs+8*i, 8)
	return view(mem, le.Uint32(arr), le.Uint32(arr[4:]))
}

// readv reads into a validated iovec array. Only the first read may block;
// later ones just pick up what is already available, as readv(2) would.
func readv(st fd.Stream, mem []byte, iovs, count uint32, nonblock bool) (uint32, Errno) {
	var total uint32
	for i := uint32(0); i < count; i++ {
		b := iov(mem, iovs, i)
		if len(b) == 0 {
			continue
		}
		n, err := st.Read(b, nonblock || total > 0)
		total += uint32(n)
		if err != nil {
			if total > 0 || errors.Is(err, io.EOF) {
				return total, ESUCCESS
			}
			return 0, errnoOf(err)
		}
		if n < len(b) {
			break
		}
	}
	return total, ESUCCESS
}

// writev writes a validated iovec array.
func writev(st fd.Stream, mem []byte, iovs, count uint32, nonblock bool) (uint32, Errno) {
	var total uint32
	for i := uint32(0); i < count; i++ {
		b := iov(mem, iovs, i)
		if len(b) == 0 {
			continue
		}
		n, err := st.Write(b, nonblock)
		total += uint32(n)
		if err != nil {
			if total > 0 {
				return total, ESUCCESS
			}
			return 0, errnoOf(err)
		}
		if n < len(b) {
			break
		}
	}
	return total, ESUCCESS
}

func (s *System) fdRead(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	st, ok := e.File.(fd.Stream)
	if !ok {
		return ENOTCONN
	}
	return rw(st, c, e, uint32(stk[1]), uint32(stk[2]), uint32(stk[3]), readv)
}

func (s *System) fdWrite(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	st, ok := e.File.(fd.Stream)
	if !ok {
		return ENOTCONN
	}
	return rw(st, c, e, uint32(stk[1]), uint32(stk[2]), uint32(stk[3]), writev)
}

// rw validates the iovecs and the result pointer, then does the I/O.
func rw(st fd.Stream, c engine.Caller, e *fd.Entry, iovs, count, result uint32,
	op func(fd.Stream, []byte, uint32, uint32, bool) (uint32, Errno)) Errno {
	mem := c.Memory()
	res := view(mem, result, 4)
	if res == nil {
		return EFAULT
	}
	total, errno := iovecs(mem, iovs, count)
	if errno != ESUCCESS {
		return errno
	}
	if total > 1<<31 {
		return EINVAL
	}
	n, errno := op(st, mem, iovs, count, e.Nonblock())
	if errno != ESUCCESS {
		return errno
	}
	le.PutUint32(res, n)
	return ESUCCESS
}

func (s *System) fdClose(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	if err := s.Files.Close(uint32(stk[0])); err != nil {
		return errnoOf(err)
	}
	return ESUCCESS
}

func (s *System) fdRenumber(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	if err := s.Files.Renumber(uint32(stk[0]), uint32(stk[1])); err != nil {
		return errnoOf(err)
	}
	return ESUCCESS
}

func (s *System) fdFdstatGet(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	b := view(c.Memory(), uint32(stk[1]), 24)
	if b == nil {
		return EFAULT
	}
	clear(b)
	b[0] = byte(e.File.Filetype())
	le.PutUint16(b[2:], e.Flags)
	le.PutUint64(b[8:], e.File.Rights())
	if _, ok := e.File.(fd.Listener); ok {
		le.PutUint64(b[16:], fd.RightsSocket)
	}
	return ESUCCESS
}

const allFdflags = fd.FlagAppend | fd.FlagDsync | fd.FlagNonblock | fd.FlagRsync | fd.FlagSync

func (s *System) fdFdstatSetFlags(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	raw := uint32(stk[1]) // i32: the upper half of the slot is undefined
	if raw&^uint32(allFdflags) != 0 {
		return EINVAL
	}
	flags := uint16(raw)
	if flags&(fd.FlagDsync|fd.FlagRsync|fd.FlagSync) != 0 {
		return ENOTSUP
	}
	// APPEND is recorded (and reported back) but meaningless on streams.
	e.Flags = flags
	return ESUCCESS
}

func (s *System) fdFdstatSetRights(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	if _, errno := s.entry(stk[0]); errno != ESUCCESS {
		return errno
	}
	return ENOTSUP
}

func (s *System) fdFilestatGet(_ context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	b := view(c.Memory(), uint32(stk[1]), 64)
	if b == nil {
		return EFAULT
	}
	clear(b)
	b[16] = byte(e.File.Filetype())
	le.PutUint64(b[24:], 1) // nlink
	return ESUCCESS
}

func (s *System) fdFilestatSetSize(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	if _, errno := s.entry(stk[0]); errno != ESUCCESS {
		return errno
	}
	return EINVAL
}

// fstflags: ATIM, ATIM_NOW, MTIM, MTIM_NOW.
const allFstflags = 0xf

func (s *System) fdFilestatSetTimes(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	if _, errno := s.entry(stk[0]); errno != ESUCCESS {
		return errno
	}
	fl := uint32(stk[3])
	if fl&^allFstflags != 0 || fl&3 == 3 || fl&0xc == 0xc {
		return EINVAL
	}
	return ENOTSUP
}

// fdThen returns a handler that answers EBADF when parameter arg is not an
// open descriptor and errno otherwise: the calls this runtime does not
// implement for any descriptor, but whose errors must still be the ones a
// POSIX program expects for a bad fd.
//
// Every descriptor here is a stream: seek-like calls (fd_seek, fd_tell,
// fd_pread, fd_pwrite, fd_advise, fd_allocate) fail with ESPIPE, as on a
// pipe or socket, and sync calls with EINVAL. No descriptor is a directory:
// fd_readdir and path_* fail with ENOTDIR (path_symlink's directory is its
// third parameter).
func (s *System) fdThen(arg int, errno Errno) func(context.Context, engine.Caller, []uint64) Errno {
	return func(_ context.Context, _ engine.Caller, stk []uint64) Errno {
		if _, e := s.entry(stk[arg]); e != ESUCCESS {
			return e
		}
		return errno
	}
}

// fdPrestatGet serves fd_prestat_get and fd_prestat_dir_name: there are no
// preopened directories, so every descriptor answers EBADF (which also ends
// wasi-libc's and Go's preopen scan).
func (s *System) fdPrestatGet(context.Context, engine.Caller, []uint64) Errno {
	return EBADF
}
