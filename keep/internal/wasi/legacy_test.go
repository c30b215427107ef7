package wasi

import (
	"context"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// TestLegacyLayouts: a module that imports wasi_unstable (WASI preview 0,
// what toolchains before wasi-sdk 8 and Rust 1.40 produce) gets preview
// 0's ABI where it differs from preview 1's, as from wasmtime's
// wasi_unstable: fd_seek's whence is cur, end, set = 0, 1, 2; a filestat
// is 56 bytes, its link count a u32 at 20; a subscription is 56 bytes,
// its clock an identifier, then the clock id at 24, the timeout at 32,
// the precision at 40 and the flags at 48. Before, wasi_unstable was
// preview 1 under another name: lseek(SEEK_SET) seeked from the end,
// fstat wrote 64 bytes into the guest's 56 (the 8 bytes after the
// struct overwritten, the size read where the link count is), and
// poll_oneoff read each subscription 8 bytes off (sleep failed).
func TestLegacyLayouts(t *testing.T) { eachEngine(t, testLegacyLayouts) }

func testLegacyLayouts(t *testing.T, eng string) {
	fsys := newFakeFS()
	root := &fakeDir{fs: fsys, n: fsys.root}
	f, err := root.Open("f", vfs.OpenOptions{Create: true, Read: true, Write: true})
	if err != nil {
		t.Fatal(err)
	}
	f.(vfs.File).Write([]byte("0123456789"), false)
	s := &System{Files: fd.NewTable([]fd.File{fd.Null{}, fd.Null{}, fd.Null{}, fsys.preopen("/"), f})}

	const (
		seekRes  = 300
		fstat    = 400 // fd_filestat_get's result, a sentinel after it
		path     = 500
		pstat    = 600 // path_filestat_get's
		subs     = 700
		events   = 800
		nevents  = 900
		results  = 1000
		sentinel = 0xa5
	)
	data := make([]byte, results)
	for _, off := range []int{fstat + 56, pstat + 56} {
		for i := range 8 {
			data[off+i] = sentinel
		}
	}
	data[path] = 'f'
	le.PutUint64(data[subs:], 0x1122334455667788) // userdata
	data[subs+8] = tagClock
	le.PutUint64(data[subs+16:], 7)              // identifier
	le.PutUint32(data[subs+24:], clockMonotonic) // clock id
	le.PutUint64(data[subs+32:], 0)              // timeout: now
	i64 := []byte{wasmtest.I32, wasmtest.I64, wasmtest.I32, wasmtest.I32}
	wasm := wasmtest.Program(LegacyModuleName, data, results,
		wasmtest.Call{Name: "fd_seek", Args: []int32{4, 2, 2, seekRes}, Types: i64},       // SEEK_SET: 2
		wasmtest.Call{Name: "fd_seek", Args: []int32{4, -1, 0, seekRes + 8}, Types: i64},  // SEEK_CUR: 1
		wasmtest.Call{Name: "fd_seek", Args: []int32{4, -3, 1, seekRes + 16}, Types: i64}, // SEEK_END: 7
		wasmtest.Call{Name: "fd_filestat_get", Args: []int32{4, fstat}},
		wasmtest.Call{Name: "path_filestat_get", Args: []int32{3, 0, path, 1, pstat}},
		wasmtest.Call{Name: "poll_oneoff", Args: []int32{subs, events, 1, nevents}},
	)
	ctx := context.Background()
	en, err := engine.New(ctx, engine.Config{Engine: eng, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close(ctx)
	m, err := en.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(ctx, s.HostFuncs())
	if err != nil {
		t.Fatal(err)
	}
	if err := inst.Call(ctx, "_start"); err != nil {
		t.Fatal(err)
	}
	mem := memory(inst.Memory())
	for i := range 6 {
		if errno, _ := mem.ReadUint32Le(results + 4*uint32(i)); errno != 0 {
			t.Errorf("call %d answered errno %d", i, errno)
		}
	}
	for i, want := range []uint64{2, 1, 7} {
		if got, _ := mem.ReadUint64Le(seekRes + 8*uint32(i)); got != want {
			t.Errorf("fd_seek %d: offset %d, want %d", i, got, want)
		}
	}
	for _, st := range []struct {
		name string
		off  uint32
	}{{"fd_filestat_get", fstat}, {"path_filestat_get", pstat}} {
		b, _ := mem.Read(st.off, 64)
		if b[16] != byte(fd.FiletypeRegularFile) || le.Uint32(b[20:]) != 1 || le.Uint64(b[24:]) != 10 {
			t.Errorf("%s: type %d, nlink %d, size %d; want a regular file, 1 link, 10 bytes", st.name, b[16], le.Uint32(b[20:]), le.Uint64(b[24:]))
		}
		for i := 56; i < 64; i++ {
			if b[i] != sentinel {
				t.Errorf("%s wrote past the 56-byte preview 0 filestat", st.name)
				break
			}
		}
	}
	if n, _ := mem.ReadUint32Le(nevents); n != 1 {
		t.Fatalf("poll_oneoff: %d events, want the clock's", n)
	}
	ev, _ := mem.Read(events, eventSize)
	if le.Uint64(ev) != 0x1122334455667788 || le.Uint16(ev[8:]) != 0 || ev[10] != tagClock {
		t.Errorf("poll_oneoff: event userdata %#x errno %d type %d; want the clock's, errno 0", le.Uint64(ev), le.Uint16(ev[8:]), ev[10])
	}
}

// TestLegacyBounds: wasi_unstable's own layouts are bounds-checked by
// their sizes (56 bytes), and an invalid whence stays invalid.
func TestLegacyBounds(t *testing.T) { eachEngine(t, testLegacyBounds) }

func testLegacyBounds(t *testing.T, eng string) {
	e, _ := newFSEnv(t, eng)
	f := e.open(preFD, "f", oflagCreat, fd.RightFdRead|fd.RightFdSeek|fd.RightFdFilestatGet, 0)
	const legacy = LegacyModuleName + "."
	// A 56-byte filestat fits where a 64-byte one would not.
	e.expect(ESUCCESS, legacy+"fd_filestat_get", f, memSize-56)
	e.expect(EFAULT, legacy+"fd_filestat_get", f, memSize-55)
	e.expect(EFAULT, "fd_filestat_get", f, memSize-56)
	p, n := e.str(pathOff, "f")
	e.expect(ESUCCESS, legacy+"path_filestat_get", preFD, 0, p, n, memSize-56)
	e.expect(EFAULT, legacy+"path_filestat_get", preFD, 0, p, n, memSize-55)
	for _, whence := range []uint64{3, 0xff, 0xffffffff} {
		e.expect(EINVAL, legacy+"fd_seek", f, 0, whence, resOff)
	}
	// 56-byte subscriptions: two fit in 112 bytes at the end of memory.
	clear(e.mem[memSize-112:])
	e.expect(ESUCCESS, legacy+"poll_oneoff", memSize-112, 1000, 2, resOff)
	e.expect(EFAULT, legacy+"poll_oneoff", memSize-111, 1000, 2, resOff)
	e.expect(EINVAL, legacy+"poll_oneoff", 0, 1000, 0, resOff)
	e.expect(EINVAL, legacy+"poll_oneoff", 0, 1000, MaxSubscriptions+1, resOff)
}
