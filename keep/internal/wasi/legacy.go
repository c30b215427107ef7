package wasi

import (
	"context"
	"io"
	"math"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// wasi_unstable, WASI preview 0 (what toolchains before wasi-sdk 8 and
// Rust 1.40 import), is preview 1 but for three things, adapted here as
// wasmtime's wasi_unstable adapts them: fd_seek's whence numbers cur, end
// and set 0, 1 and 2; a filestat is 56 bytes, with a 32-bit link count
// at 20; and a clock subscription carries a 64-bit identifier before the
// clock id, which makes a subscription 56 bytes. Every other function
// and layout is the same (preview 0 has no sock_accept; a module that
// imports it anyway gets preview 1's).

// Preview 0 layouts.
const (
	filestatSize0 = 56
	subSize0      = 56
)

// legacyExports are the functions under LegacyModuleName.
func (s *System) legacyExports() []export {
	ex := s.exports()
	for i := range ex {
		switch ex[i].name {
		case "fd_seek":
			ex[i].fn = s.fdSeek0
		case "fd_filestat_get":
			ex[i].fn = func(_ context.Context, c engine.Caller, stk []uint64) Errno {
				return s.fdFilestat(c, stk, filestatSize0, putFilestat0)
			}
		case "path_filestat_get":
			ex[i].fn = func(_ context.Context, c engine.Caller, stk []uint64) Errno {
				return s.pathFilestat(c, stk, filestatSize0, putFilestat0)
			}
		case "poll_oneoff":
			ex[i].fn = s.pollOneoff0
		}
	}
	return ex
}

// fdSeek0 is preview 0's fd_seek: whence cur, end, set = 0, 1, 2.
func (s *System) fdSeek0(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	switch uint32(stk[2]) {
	case 0:
		stk[2] = io.SeekCurrent
	case 1:
		stk[2] = io.SeekEnd
	case 2:
		stk[2] = io.SeekStart
	default:
		stk[2] = math.MaxUint32 // still invalid (EINVAL)
	}
	return s.fdSeek(ctx, c, stk)
}

// putFilestat0 writes st into b in preview 0's layout (filestatSize0
// bytes; a link count above 2^32-1 saturates, as in wasmtime).
func putFilestat0(b []byte, st vfs.Stat) {
	clear(b)
	le.PutUint64(b[0:], st.Dev)
	le.PutUint64(b[8:], st.Ino)
	b[16] = byte(st.Type)
	le.PutUint32(b[20:], uint32(min(st.Nlink, math.MaxUint32)))
	le.PutUint64(b[24:], st.Size)
	le.PutUint64(b[32:], uint64(st.Atim))
	le.PutUint64(b[40:], uint64(st.Mtim))
	le.PutUint64(b[48:], uint64(st.Ctim))
}

// pollOneoff0 is preview 0's poll_oneoff: its subscriptions, converted to
// preview 1's layout in the Keep's memory (the guest's stay as they are),
// then polled as preview 1's. Events have the same layout.
func (s *System) pollOneoff0(ctx context.Context, c engine.Caller, stk []uint64) Errno {
	in, out, n, resPtr := uint32(stk[0]), uint32(stk[1]), uint32(stk[2]), uint32(stk[3])
	if n == 0 || n > MaxSubscriptions {
		return EINVAL
	}
	mem := c.Memory()
	inB, outB, res := view(mem, in, n*subSize0), view(mem, out, n*eventSize), view(mem, resPtr, 4)
	if inB == nil || outB == nil || res == nil {
		return EFAULT
	}
	if cap(s.subs0) < int(n)*subSize {
		s.subs0 = make([]byte, int(n)*subSize)
	}
	conv := s.subs0[:int(n)*subSize]
	clear(conv)
	for i := range int(n) {
		src, dst := inB[i*subSize0:(i+1)*subSize0], conv[i*subSize:(i+1)*subSize]
		copy(dst[:9], src[:9]) // userdata, tag
		if src[8] == tagClock {
			copy(dst[16:20], src[24:28]) // clock id (after the identifier)
			copy(dst[24:42], src[32:50]) // timeout, precision, flags
		} else {
			copy(dst[16:20], src[16:20]) // fd
		}
	}
	return s.poll(ctx, conv, outB, res, int(n))
}
