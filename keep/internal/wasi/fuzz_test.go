package wasi

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/fd"
)

// FuzzCall calls a WASI function chosen by fn with arbitrary parameters
// against a real module memory of every engine, filled from mem. Property:
// no call panics (every guest pointer and length goes through bounds
// checks; an access outside the module's memory would be an index panic
// in Go, which fails the target), every errno is a WASI errno, and only a
// cancelled wait unwinds the guest (with the context's error).
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
	// One instance per engine serves every input: only its memory is used.
	type inst struct {
		name string
		mem  memory
		c    engine.Caller
	}
	var insts []inst
	for _, eng := range engine.Names() {
		in := instance(f, eng, &System{Files: fd.NewTable(nil)})
		insts = append(insts, inst{eng, in.Memory(), in})
	}
	f.Fuzz(func(t *testing.T, fn uint8, p []byte, mem []byte) {
		name := names[int(fn)%len(names)]
		var stack [10]uint64
		for i := range stack {
			if len(p) >= 4 {
				stack[i] = uint64(binary.LittleEndian.Uint32(p))
				p = p[4:]
			}
		}
		for _, in := range insts {
			s := &System{Args: []string{"main.wasm", "a b"}, Env: []string{"X=y"}, Files: fd.NewTable([]fd.File{fd.Null{}, outFile, fd.Null{}})}
			s.HostFuncs()
			// The module's memory is the only thing the call can write.
			clear(in.mem)
			copy(in.mem, mem)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			errno, err, _ := s.Call(ctx, in.c, name, stack[:]...)
			cancel()
			if errno > ENOTCAPABLE {
				t.Fatalf("%s: %s returned errno %d", in.name, name, errno)
			}
			if err != nil && (name != "poll_oneoff" || err != context.DeadlineExceeded) {
				t.Fatalf("%s: %s%v unwound the guest: %v", in.name, name, stack, err)
			}
		}
	})
}
