package wasi

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/fd"
)

// FuzzCall calls a WASI function chosen by fn with arbitrary parameters
// against a real module memory filled from mem. Nothing may panic (other
// than the deliberate unwinding of a cancelled poll) or write outside the
// module's memory, and every errno must be a WASI errno.
func FuzzCall(f *testing.F) {
	f.Add(uint8(0), []byte{}, []byte{})
	f.Add(uint8(27), binary.LittleEndian.AppendUint32(nil, 1), []byte("hello"))
	params := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return b
	}
	names := FunctionNames()[1:] // not proc_exit
	idx := func(name string) uint8 {
		for i, n := range names {
			if n == name {
				return uint8(i)
			}
		}
		panic(name)
	}
	iov := params(100, 5, 200, 70000)
	f.Add(idx("fd_write"), params(1, 0, 2, 8), iov)
	f.Add(idx("fd_read"), params(0, 0, 1, 8), iov)
	f.Add(idx("poll_oneoff"), params(0, 1000, 1, 8), make([]byte, 48))
	f.Add(idx("poll_oneoff"), params(0, 1000, 2, 8), append(append(make([]byte, 8), 1, 0, 0, 0, 0, 0, 0, 0, 1), make([]byte, 100)...))
	f.Add(idx("args_get"), params(0xfffffffc, 0), []byte{})
	f.Add(idx("sock_recv"), params(1, 0, 1, 0, 8, 12), iov)
	f.Add(idx("random_get"), params(65530, 10), []byte{})
	f.Add(idx("fd_fdstat_set_flags"), params(1, 0xffff), []byte{})

	_, out, _, outR := pipeStreams(f)
	go io.Copy(io.Discard, outR)
	outFile := out
	f.Fuzz(func(t *testing.T, fn uint8, p []byte, mem []byte) {
		e := newEnv(t, fd.Null{}, outFile, fd.Null{})
		// Guard pages: the module's memory is the only thing written.
		e.put(0, mem[:min(len(mem), memSize)])
		name := names[int(fn)%len(names)]
		var stack [10]uint64
		for i := range stack {
			if len(p) >= 4 {
				stack[i] = uint64(binary.LittleEndian.Uint32(p))
				p = p[4:]
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		defer func() {
			if r := recover(); r != nil && r != context.DeadlineExceeded {
				t.Fatalf("%s%v panicked: %v", name, stack, r)
			}
		}()
		errno, _ := e.s.Call(ctx, e.mod, name, stack[:]...)
		if errno > ENOTCAPABLE {
			t.Fatalf("%s returned errno %d", name, errno)
		}
	})
}
