package wasi

import (
	"context"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// FuzzCall calls a WASI function chosen by fn with arbitrary parameters
// against a real module memory of every engine, filled from mem, with a
// descriptor table that holds streams, a preopened directory (fd 3), a file
// (fd 4) and a directory (fd 5) of an in-test file system. Property: no
// call panics (every guest pointer and length goes through bounds checks;
// an access outside the module's memory would be an index panic in Go,
// which fails the target), every errno is a WASI errno, only a cancelled
// wait unwinds the guest (with the context's error), and a call that
// answers EFAULT changed neither the file system nor the descriptor table
// (pointers are checked before side effects).
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
	// wasi_unstable's functions with layouts of their own (legacy.go).
	var legacy System
	for _, e := range legacy.legacyExports() {
		names = append(names, LegacyModuleName+"."+e.name)
	}
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
	// Path calls: "d/f" at 0, a bad result pointer, a path across the end
	// of memory, a NUL, invalid UTF-8, "..".
	df := []byte("d/f\x00\xff../x")
	f.Add(idx("path_open"), params(3, 1, 0, 3, 1, 0xffffffff, 0xffffffff, 1, 0xfffffffe), df)
	f.Add(idx("path_open"), params(3, 1, 0xfffe, 4, 9, 0xffffffff, 0, 0, 100), df)
	f.Add(idx("path_open"), params(3, 0, 7, 4, 1, 0, 0, 0, 100), df)
	f.Add(idx("path_create_directory"), params(3, 0, 1), df)
	f.Add(idx("path_create_directory"), params(3, 5, 4), df)
	f.Add(idx("path_rename"), params(3, 0, 3, 5, 7, 4), df)
	f.Add(idx("path_link"), params(3, 0, 0, 3, 5, 7, 1), df)
	f.Add(idx("path_symlink"), params(0, 3, 3, 4, 1), df)
	f.Add(idx("path_readlink"), params(3, 2, 1, 100, 0xffffffff, 8), []byte("d/l"))
	f.Add(idx("path_filestat_get"), params(3, 1, 0, 3, 65500), df)
	f.Add(idx("path_unlink_file"), params(3, 0, 3), df)
	f.Add(idx("path_remove_directory"), params(5, 0, 0xffffffff), df)
	f.Add(idx("fd_readdir"), params(3, 100, 30, 1, 0xfffffffd), df)
	f.Add(idx("fd_readdir"), params(5, 100, 0x10000, 0, 8), df)
	f.Add(idx("fd_pwrite"), params(4, 0, 2, 0xffffffff, 0x7fffffff, 8), iov)
	f.Add(idx("fd_pread"), params(4, 0, 2, 3, 0, 0xfffffff8), iov)
	f.Add(idx("fd_seek"), params(4, 0xffffffff, 0xffffffff, 2, 8), []byte{})
	f.Add(idx("fd_prestat_dir_name"), params(3, 0xffff, 1), []byte{})
	f.Add(idx("fd_fdstat_set_rights"), params(5, 0xffffffff, 0, 0, 0), []byte{})
	f.Add(idx(LegacyModuleName+".fd_seek"), params(4, 3, 0, 0, 8), []byte{})
	f.Add(idx(LegacyModuleName+".fd_filestat_get"), params(4, 65500), []byte{})
	f.Add(idx(LegacyModuleName+".poll_oneoff"), params(0, 1000, 2, 8), make([]byte, 112))

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
			fsys := newFakeFS()
			root := &fakeDir{fs: fsys, n: fsys.root}
			root.Mkdir("d")
			file, _ := root.Open("d/f", vfs.OpenOptions{Create: true, Read: true, Write: true})
			file.(vfs.File).Write([]byte("contents"), false)
			root.Symlink("d", "l")
			root.Symlink("../..", "d/l")
			dir, _ := root.Open("d", vfs.OpenOptions{Directory: true, Read: true})
			s := &System{Args: []string{"main.wasm", "a b"}, Env: []string{"X=y"},
				Files: fd.NewTable([]fd.File{fd.Null{}, outFile, fd.Null{}, fsys.preopen("/"), file, dir})}
			s.HostFuncs()
			// The module's memory is the only thing the call can write.
			clear(in.mem)
			copy(in.mem, mem)
			before, fds := fsys.snapshot(), s.Files.Len()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			errno, err, _ := s.Call(ctx, in.c, name, stack[:]...)
			cancel()
			if errno > ENOTCAPABLE {
				t.Fatalf("%s: %s returned errno %d", in.name, name, errno)
			}
			if err != nil && (name != "poll_oneoff" || err != context.DeadlineExceeded) {
				t.Fatalf("%s: %s%v unwound the guest: %v", in.name, name, stack, err)
			}
			if errno == EFAULT && (fsys.snapshot() != before || s.Files.Len() != fds) {
				t.Fatalf("%s: %s%v answered EFAULT after changing the file system or the fd table", in.name, name, stack)
			}
			s.Files.CloseAll()
		}
	})
}
