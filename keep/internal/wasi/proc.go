package wasi

import (
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"time"

	"github.com/enarx-go/enarx/keep/internal/engine"
)

var le = binary.LittleEndian

// MaxRandom bounds one read from the random_get source: a longer
// random_get is filled in pieces of at most this size. WASI preview1 sets
// no limit on the buffer, and guests (Go's crypto/rand on wasip1, Rust's
// getrandom) pass their whole buffer in one call and treat any error as
// fatal. Between pieces, a cancelled run unwinds the guest as from a wait:
// filling a buffer of gigabytes takes seconds.
const MaxRandom = 1 << 20

// view returns the n bytes of guest memory mem at off, or nil if they are
// out of bounds (or the guest has no memory). A zero-length view inside
// memory is empty but not nil.
func view(mem []byte, off, n uint32) []byte {
	end := uint64(off) + uint64(n) // no uint32 overflow with 4 GiB of memory
	if mem == nil || end > uint64(len(mem)) {
		return nil
	}
	return mem[off:end:end]
}

// listGet implements args_get / environ_get: pointers into ptrs, strings
// (NUL-terminated, concatenated in buf) into bufPtr.
func listGet(c engine.Caller, list []string, buf []byte, ptrs, bufPtr uint32) Errno {
	mem := c.Memory()
	if uint64(len(list))*4 > 1<<32 {
		return EFAULT
	}
	pv := view(mem, ptrs, uint32(len(list))*4)
	bv := view(mem, bufPtr, uint32(len(buf)))
	if pv == nil && len(list) > 0 || bv == nil && len(buf) > 0 {
		return EFAULT
	}
	if uint64(bufPtr)+uint64(len(buf)) > 1<<32 {
		return EFAULT
	}
	off := bufPtr
	for i, s := range list {
		le.PutUint32(pv[4*i:], off)
		off += uint32(len(s)) + 1
	}
	copy(bv, buf)
	return ESUCCESS
}

func sizesGet(c engine.Caller, count, size int, countPtr, sizePtr uint32) Errno {
	mem := c.Memory()
	a, b := view(mem, countPtr, 4), view(mem, sizePtr, 4)
	if a == nil || b == nil {
		return EFAULT
	}
	le.PutUint32(a, uint32(count))
	le.PutUint32(b, uint32(size))
	return ESUCCESS
}

func (s *System) argsGet(_ context.Context, c engine.Caller, st []uint64) Errno {
	return listGet(c, s.Args, s.argBuf, uint32(st[0]), uint32(st[1]))
}

func (s *System) argsSizesGet(_ context.Context, c engine.Caller, st []uint64) Errno {
	return sizesGet(c, len(s.Args), len(s.argBuf), uint32(st[0]), uint32(st[1]))
}

func (s *System) environGet(_ context.Context, c engine.Caller, st []uint64) Errno {
	return listGet(c, s.Env, s.envBuf, uint32(st[0]), uint32(st[1]))
}

func (s *System) environSizesGet(_ context.Context, c engine.Caller, st []uint64) Errno {
	return sizesGet(c, len(s.Env), len(s.envBuf), uint32(st[0]), uint32(st[1]))
}

// WASI clock ids.
const (
	clockRealtime  = 0
	clockMonotonic = 1
	clockProcess   = 2
	clockThread    = 3
)

func (s *System) clockResGet(_ context.Context, c engine.Caller, st []uint64) Errno {
	id := uint32(st[0])
	switch id {
	case clockRealtime, clockMonotonic:
	case clockProcess, clockThread:
		return ENOTSUP
	default:
		return EINVAL
	}
	b := view(c.Memory(), uint32(st[1]), 8)
	if b == nil {
		return EFAULT
	}
	le.PutUint64(b, 1)
	return ESUCCESS
}

// now returns the time of clock id in nanoseconds.
func (s *System) now(id uint32) (uint64, Errno) {
	switch id {
	case clockRealtime:
		return uint64(time.Now().UnixNano()), ESUCCESS
	case clockMonotonic:
		return uint64(time.Since(s.start)), ESUCCESS
	case clockProcess, clockThread:
		return 0, ENOTSUP
	}
	return 0, EINVAL
}

func (s *System) clockTimeGet(_ context.Context, c engine.Caller, st []uint64) Errno {
	t, e := s.now(uint32(st[0]))
	if e != ESUCCESS {
		return e
	}
	b := view(c.Memory(), uint32(st[2]), 8)
	if b == nil {
		return EFAULT
	}
	le.PutUint64(b, t)
	return ESUCCESS
}

func (s *System) randomGet(ctx context.Context, c engine.Caller, st []uint64) Errno {
	b := view(c.Memory(), uint32(st[0]), uint32(st[1]))
	if b == nil {
		return EFAULT
	}
	for len(b) > 0 {
		p := b[:min(len(b), MaxRandom)]
		if _, err := io.ReadFull(s.Rand, p); err != nil {
			return EIO
		}
		b = b[len(p):]
		if len(b) > 0 && ctx.Err() != nil {
			// 4 GiB of memory take about 10 s to fill: a stopped run
			// (--timeout, keep.Run's context) must not wait for that.
			s.unwind = context.Cause(ctx)
			return EINTR
		}
	}
	return ESUCCESS
}

func (s *System) schedYield(context.Context, engine.Caller, []uint64) Errno {
	runtime.Gosched()
	return ESUCCESS
}

func (s *System) procRaise(context.Context, engine.Caller, []uint64) Errno {
	return ENOSYS
}

// procExit ends the guest with the given status: the engine unwinds it, so
// no guest code runs after it.
func procExit(_ context.Context, _ engine.Caller, st []uint64) error {
	return &engine.ExitError{Code: uint32(st[0])}
}
