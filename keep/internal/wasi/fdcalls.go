package wasi

import (
	"context"
	"errors"
	"io"
	"math"

	"github.com/enarx-go/enarx/keep/internal/engine"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// entry looks up a descriptor.
func (s *System) entry(n uint64) (*fd.Entry, Errno) {
	e, err := s.Files.Get(uint32(n))
	if err != nil {
		return nil, EBADF
	}
	return e, ESUCCESS
}

// iovecs validates an iovec array and returns its total length and a copy
// of it (in s's scratch space), which the I/O then uses: as readv(2),
// which copies the array first, a read into a buffer that overlaps the
// array changes neither where later bytes go nor what was checked. Every
// buffer must lie inside memory: the check happens before any I/O.
func (s *System) iovecs(mem []byte, iovs, count uint32) ([]byte, uint64, Errno) {
	if count > MaxIovecs {
		return nil, 0, EINVAL
	}
	arr := view(mem, iovs, count*8)
	if arr == nil {
		return nil, 0, EFAULT
	}
	s.iovs = append(s.iovs[:0], arr...)
	arr = s.iovs
	var total uint64
	for i := 0; i < len(arr); i += 8 {
		p, n := le.Uint32(arr[i:]), le.Uint32(arr[i+4:])
		if view(mem, p, n) == nil {
			return nil, 0, EFAULT
		}
		total += uint64(n)
	}
	return arr, total, ESUCCESS
}

// iov returns buffer i of an iovec array checked and copied by iovecs.
func iov(mem, arr []byte, i int) []byte {
	return view(mem, le.Uint32(arr[8*i:]), le.Uint32(arr[8*i+4:]))
}

// readv reads into a validated iovec array. Only the first read may wait
// (unless nonblock); later ones just pick up what is already available,
// as readv(2) would. Every read is a non-blocking one: a blocking call
// waits for the stream in await, which a cancelled run ends.
func (s *System) readv(ctx context.Context, st fd.Stream, mem, arr []byte, nonblock bool) (uint32, Errno) {
	var total uint32
	for i := range len(arr) / 8 {
		b := iov(mem, arr, i)
		if len(b) == 0 {
			continue
		}
		n, err := st.Read(b, true)
		for total == 0 && !nonblock && errors.Is(err, fd.ErrWouldBlock) {
			if errno := s.await(ctx, st, false); errno != ESUCCESS {
				return 0, errno
			}
			n, err = st.Read(b, true)
		}
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

// writev writes a validated iovec array: unless nonblock, all of it (or
// until an error), waiting for the stream in await, which a cancelled run
// ends, and returning once the stream has handed it on (fd.Flusher); with
// nonblock, until the stream takes less than it was given.
func (s *System) writev(ctx context.Context, st fd.Stream, mem, arr []byte, nonblock bool) (uint32, Errno) {
	if w, ok := st.(fd.WholeWriter); ok && w.WritesWhole() {
		nonblock = false
	}
	var total uint32
	for i := range len(arr) / 8 {
		b := iov(mem, arr, i)
		for len(b) > 0 {
			n, err := st.Write(b, true)
			if n == 0 && err == nil {
				// Nothing taken, and no EAGAIN to wait on: a short
				// write, or the stream's own wait.
				if nonblock {
					return total, ESUCCESS
				}
				if n, err = st.Write(b, false); n == 0 && err == nil {
					return total, ESUCCESS
				}
			}
			total += uint32(n)
			b = b[n:]
			if !nonblock && errors.Is(err, fd.ErrWouldBlock) {
				if errno := s.await(ctx, st, true); errno != ESUCCESS {
					return 0, errno
				}
				continue
			}
			if err != nil {
				if total > 0 {
					return total, ESUCCESS
				}
				return 0, errnoOf(err)
			}
			if nonblock && len(b) > 0 {
				return total, ESUCCESS
			}
		}
	}
	if fl, ok := st.(fd.Flusher); ok && !nonblock {
		// Returned once everything is on its way, as a blocking write.
		if errno := s.await(ctx, flushPoller{fl}, true); errno != ESUCCESS {
			return 0, errno
		}
	}
	return total, ESUCCESS
}

// flushPoller is a Flusher's FlushFD as a HintPoller, for await.
type flushPoller struct{ f fd.Flusher }

func (p flushPoller) PollFD(bool) (int, bool) { return p.f.FlushFD() }
func (p flushPoller) PollHint(bool) bool      { return true }

func (s *System) fdRead(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	st, errno := streamOf(e, fd.RightFdRead)
	if errno != ESUCCESS {
		return errno
	}
	return s.rw(ctx, st, c, e, uint32(stk[1]), uint32(stk[2]), uint32(stk[3]), s.readv)
}

func (s *System) fdWrite(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	st, errno := streamOf(e, fd.RightFdWrite)
	if errno != ESUCCESS {
		return errno
	}
	return s.rw(ctx, st, c, e, uint32(stk[1]), uint32(stk[2]), uint32(stk[3]), s.writev)
}

// streamOf returns the stream behind e for fd_read / fd_write: a file
// needs the right r (ENOTCAPABLE), a directory is EBADF (as wasmtime), a
// listener ENOTCONN.
func streamOf(e *fd.Entry, r uint64) (fd.Stream, Errno) {
	switch f := e.File.(type) {
	case vfs.Dir:
		return nil, EBADF
	case vfs.File:
		if errno := need(e, r); errno != ESUCCESS {
			return nil, errno
		}
		return f, ESUCCESS
	case fd.Stream:
		return f, ESUCCESS
	}
	return nil, ENOTCONN
}

// rw validates the iovecs and the result pointer, then does the I/O.
func (s *System) rw(ctx context.Context, st fd.Stream, c engine.Caller, e *fd.Entry, iovs, count, result uint32,
	op func(context.Context, fd.Stream, []byte, []byte, bool) (uint32, Errno)) Errno {
	mem := c.Memory()
	res := view(mem, result, 4)
	if res == nil {
		return EFAULT
	}
	arr, total, errno := s.iovecs(mem, iovs, count)
	if errno != ESUCCESS {
		return errno
	}
	if total > 1<<31 {
		return EINVAL
	}
	n, errno := op(ctx, st, mem, arr, e.Nonblock())
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
	base, inh := rightsOf(e)
	le.PutUint64(b[8:], base)
	le.PutUint64(b[16:], inh)
	return ESUCCESS
}

const allFdflags = fd.FlagAppend | fd.FlagDsync | fd.FlagNonblock | fd.FlagRsync | fd.FlagSync

// fdFdstatSetFlags is fd_fdstat_set_flags: APPEND and NONBLOCK can be
// changed (on a file APPEND switches the file's mode; on streams it is
// only recorded); the sync flags are fixed at path_open (ENOTSUP).
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
	if flags&syncFlags != 0 {
		return ENOTSUP
	}
	switch f := e.File.(type) {
	case vfs.Dir:
		if errno := need(e, fd.RightFdFdstatSetFlags); errno != ESUCCESS {
			return errno
		}
		if flags&fd.FlagAppend != 0 {
			return EISDIR
		}
	case vfs.File:
		if errno := need(e, fd.RightFdFdstatSetFlags); errno != ESUCCESS {
			return errno
		}
		if on := flags&fd.FlagAppend != 0; on != (e.Flags&fd.FlagAppend != 0) {
			if err := f.SetAppend(on); err != nil {
				return errnoOf(err)
			}
		}
	}
	e.Flags = flags | e.Flags&syncFlags
	return ESUCCESS
}

// fdFdstatSetRights is fd_fdstat_set_rights: rights can only be dropped
// (ENOTCAPABLE for more). Files and directories only: streams and sockets
// keep their fixed rights (ENOTSUP, as wasmtime answers for everything).
func (s *System) fdFdstatSetRights(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	switch e.File.(type) {
	case vfs.Dir, vfs.File:
	default:
		return ENOTSUP
	}
	base, inh := rightsOf(e)
	newBase, newInh := stk[1], stk[2]
	if newBase&^base != 0 || newInh&^inh != 0 {
		return ENOTCAPABLE
	}
	e.Base, e.Inheriting, e.Limited = newBase, newInh, true
	return ESUCCESS
}

func (s *System) fdFilestatGet(_ context.Context, c engine.Caller, stk []uint64) Errno {
	return s.fdFilestat(c, stk, filestatSize, putFilestat)
}

// fdFilestat is fd_filestat_get with the filestat layout of size bytes
// that put writes (preview 1's, or wasi_unstable's: legacy.go).
func (s *System) fdFilestat(c engine.Caller, stk []uint64, size uint32, put func([]byte, vfs.Stat)) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	switch e.File.(type) {
	case vfs.Dir, vfs.File: // streams and sockets have fixed rights
		if errno := need(e, fd.RightFdFilestatGet); errno != ESUCCESS {
			return errno
		}
	}
	b := view(c.Memory(), uint32(stk[1]), size)
	if b == nil {
		return EFAULT
	}
	st, errno := fdStat(e)
	if errno != ESUCCESS {
		return errno
	}
	put(b, st)
	return ESUCCESS
}

func (s *System) fdFilestatSetSize(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	f, ok := e.File.(vfs.File)
	if !ok {
		if _, isDir := e.File.(vfs.Dir); isDir {
			return EISDIR
		}
		return EINVAL // ftruncate(2) on a pipe or socket
	}
	if errno := need(e, fd.RightFdFilestatSetSize); errno != ESUCCESS {
		return errno
	}
	if stk[1] > math.MaxInt64 {
		return EFBIG
	}
	return errnoOf(f.Truncate(int64(stk[1])))
}

func (s *System) fdFilestatSetTimes(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	t, errno := timesArg(stk[1], stk[2], uint32(stk[3]))
	if errno != ESUCCESS {
		return errno
	}
	var f interface{ SetTimes(vfs.Times) error }
	switch x := e.File.(type) {
	case vfs.Dir:
		f = x
	case vfs.File:
		f = x
	default:
		return ENOTSUP
	}
	if errno := need(e, fd.RightFdFilestatSetTimes); errno != ESUCCESS {
		return errno
	}
	return errnoOf(f.SetTimes(t))
}
