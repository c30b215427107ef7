package wasi

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/enarx-go/enarx/keep/internal/engine"

	"github.com/enarx-go/enarx/keep/internal/fd"
)

// WASI riflags / siflags / sdflags.
const (
	recvPeek    = 1
	recvWaitall = 2
	sdRead      = 1
	sdWrite     = 2
)

// sockAccept is sock_accept. A blocking accept waits for a connection (of
// a TLS listener: a completed handshake); if the run is cancelled
// meanwhile, it unwinds the guest as a cancelled poll_oneoff does.
func (s *System) sockAccept(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	e, errno := s.entry(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	flags := uint32(stk[1])
	if flags&^uint32(fd.FlagNonblock|fd.FlagAppend) != 0 {
		return EINVAL
	}
	res := view(c.Memory(), uint32(stk[2]), 4)
	if res == nil {
		return EFAULT
	}
	l, ok := e.File.(fd.Listener)
	if !ok {
		if _, isSock := e.File.(fd.Socket); isSock {
			return EINVAL // not listening
		}
		return ENOTSOCK
	}
	if s.Files.Full() {
		// The connection stays queued for when a descriptor is free.
		return EMFILE
	}
	// A blocking accept waits in await, which a cancelled run ends (as
	// Go's accept, it goes on waiting after a connection aborted before
	// it was accepted).
	conn, err := l.Accept(ctx, true)
	for !e.Nonblock() && (errors.Is(err, fd.ErrWouldBlock) || errors.Is(err, syscall.ECONNABORTED)) {
		if errno := s.await(ctx, l, false); errno != ESUCCESS {
			return errno
		}
		conn, err = l.Accept(ctx, true)
	}
	if err != nil {
		if ctx.Err() != nil {
			s.unwind = context.Cause(ctx)
			return EINTR
		}
		return errnoOf(err)
	}
	n, err := s.Files.Insert(conn, uint16(flags))
	if err != nil {
		conn.Close()
		return errnoOf(err)
	}
	le.PutUint32(res, n)
	return ESUCCESS
}

func (s *System) socket(n uint64) (*fd.Entry, fd.Socket, Errno) {
	e, errno := s.entry(n)
	if errno != ESUCCESS {
		return nil, nil, errno
	}
	sk, ok := e.File.(fd.Socket)
	if !ok {
		if _, isL := e.File.(fd.Listener); isL {
			return nil, nil, ENOTCONN
		}
		return nil, nil, ENOTSOCK
	}
	return e, sk, ESUCCESS
}

func (s *System) sockRecv(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	e, sk, errno := s.socket(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	flags := uint32(stk[3])
	if flags&^uint32(recvPeek|recvWaitall) != 0 {
		return EINVAL
	}
	pk, canPeek := sk.(fd.Peeker)
	if flags&recvPeek != 0 && !canPeek {
		return ENOTSUP
	}
	mem := c.Memory()
	iovs, count := uint32(stk[1]), uint32(stk[2])
	resLen, resFlags := view(mem, uint32(stk[4]), 4), view(mem, uint32(stk[5]), 2)
	if resLen == nil || resFlags == nil {
		return EFAULT
	}
	arr, total, errno := s.iovecs(mem, iovs, count)
	if errno != ESUCCESS {
		return errno
	}
	if total > 1<<31 {
		return EINVAL
	}
	// RECV_WAITALL is accepted and treated as a hint: like recv(2)
	// interrupted early, a short read is returned and the guest retries.
	var n uint32
	if flags&recvPeek != 0 {
		// Peek into the first non-empty buffer only: a second peek would
		// return the same bytes again (a short read is always allowed).
		for i := range len(arr) / 8 {
			if b := iov(mem, arr, i); len(b) > 0 {
				m, err := pk.Peek(b, true)
				for !e.Nonblock() && errors.Is(err, fd.ErrWouldBlock) {
					if errno := s.await(ctx, sk, false); errno != ESUCCESS {
						return errno
					}
					m, err = pk.Peek(b, true)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					return errnoOf(err)
				}
				n = uint32(m)
				break
			}
		}
	} else {
		n, errno = s.readv(ctx, sk, mem, arr, e.Nonblock())
		if errno != ESUCCESS {
			return errno
		}
	}
	le.PutUint32(resLen, n)
	le.PutUint16(resFlags, 0)
	return ESUCCESS
}

func (s *System) sockSend(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	e, sk, errno := s.socket(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	if uint32(stk[3]) != 0 {
		return EINVAL
	}
	return s.rw(ctx, sk, c, e, uint32(stk[1]), uint32(stk[2]), uint32(stk[4]), s.writev)
}

func (s *System) sockShutdown(_ context.Context, _ engine.Caller, stk []uint64) Errno {
	_, sk, errno := s.socket(stk[0])
	if errno != ESUCCESS {
		return errno
	}
	how := uint32(stk[1])
	if how == 0 || how&^uint32(sdRead|sdWrite) != 0 {
		return EINVAL
	}
	if err := sk.Shutdown(int(how)); err != nil {
		return errnoOf(err)
	}
	return ESUCCESS
}
