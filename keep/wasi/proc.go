package wasi

import (
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

var le = binary.LittleEndian

// MaxRandom bounds one random_get call (the guest can loop for more).
const MaxRandom = 1 << 20

// memory returns the guest's memory or nil.
func memory(mod api.Module) api.Memory { return mod.Memory() }

// writable returns the n bytes at off, or nil if out of bounds.
func view(mem api.Memory, off, n uint32) []byte {
	if mem == nil {
		return nil
	}
	b, ok := mem.Read(off, n)
	if !ok {
		return nil
	}
	return b
}

// listGet implements args_get / environ_get: pointers into ptrs, strings
// (NUL-terminated, concatenated in buf) into bufPtr.
func listGet(mod api.Module, list []string, buf []byte, ptrs, bufPtr uint32) Errno {
	mem := memory(mod)
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

func sizesGet(mod api.Module, count, size int, countPtr, sizePtr uint32) Errno {
	mem := memory(mod)
	a, b := view(mem, countPtr, 4), view(mem, sizePtr, 4)
	if a == nil || b == nil {
		return EFAULT
	}
	le.PutUint32(a, uint32(count))
	le.PutUint32(b, uint32(size))
	return ESUCCESS
}

func (s *System) argsGet(_ context.Context, mod api.Module, st []uint64) Errno {
	return listGet(mod, s.Args, s.argBuf, uint32(st[0]), uint32(st[1]))
}

func (s *System) argsSizesGet(_ context.Context, mod api.Module, st []uint64) Errno {
	return sizesGet(mod, len(s.Args), len(s.argBuf), uint32(st[0]), uint32(st[1]))
}

func (s *System) environGet(_ context.Context, mod api.Module, st []uint64) Errno {
	return listGet(mod, s.Env, s.envBuf, uint32(st[0]), uint32(st[1]))
}

func (s *System) environSizesGet(_ context.Context, mod api.Module, st []uint64) Errno {
	return sizesGet(mod, len(s.Env), len(s.envBuf), uint32(st[0]), uint32(st[1]))
}

// WASI clock ids.
const (
	clockRealtime  = 0
	clockMonotonic = 1
	clockProcess   = 2
	clockThread    = 3
)

func (s *System) clockResGet(_ context.Context, mod api.Module, st []uint64) Errno {
	id := uint32(st[0])
	switch id {
	case clockRealtime, clockMonotonic:
	case clockProcess, clockThread:
		return ENOTSUP
	default:
		return EINVAL
	}
	b := view(memory(mod), uint32(st[1]), 8)
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

func (s *System) clockTimeGet(_ context.Context, mod api.Module, st []uint64) Errno {
	t, e := s.now(uint32(st[0]))
	if e != ESUCCESS {
		return e
	}
	b := view(memory(mod), uint32(st[2]), 8)
	if b == nil {
		return EFAULT
	}
	le.PutUint64(b, t)
	return ESUCCESS
}

func (s *System) randomGet(_ context.Context, mod api.Module, st []uint64) Errno {
	n := uint32(st[1])
	if n > MaxRandom {
		return EINVAL
	}
	b := view(memory(mod), uint32(st[0]), n)
	if b == nil {
		return EFAULT
	}
	if _, err := io.ReadFull(s.Rand, b); err != nil {
		return EIO
	}
	return ESUCCESS
}

func (s *System) schedYield(context.Context, api.Module, []uint64) Errno {
	runtime.Gosched()
	return ESUCCESS
}

func (s *System) procRaise(context.Context, api.Module, []uint64) Errno {
	return ENOSYS
}

// procExit ends the guest with the given status: the module is closed with
// that exit code and the call unwinds with a *sys.ExitError (as wazero's
// own WASI does), so no guest code runs after it.
func procExit(ctx context.Context, mod api.Module, st []uint64) {
	code := uint32(st[0])
	_ = mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}
