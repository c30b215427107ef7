package wasi

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// preview1 is every function of WASI preview1.
var preview1 = []string{
	"args_get", "args_sizes_get", "clock_res_get", "clock_time_get", "environ_get", "environ_sizes_get",
	"fd_advise", "fd_allocate", "fd_close", "fd_datasync", "fd_fdstat_get", "fd_fdstat_set_flags",
	"fd_fdstat_set_rights", "fd_filestat_get", "fd_filestat_set_size", "fd_filestat_set_times", "fd_pread",
	"fd_prestat_dir_name", "fd_prestat_get", "fd_pwrite", "fd_read", "fd_readdir", "fd_renumber", "fd_seek",
	"fd_sync", "fd_tell", "fd_write", "path_create_directory", "path_filestat_get", "path_filestat_set_times",
	"path_link", "path_open", "path_readlink", "path_remove_directory", "path_rename", "path_symlink",
	"path_unlink_file", "poll_oneoff", "proc_exit", "proc_raise", "random_get", "sched_yield", "sock_accept",
	"sock_recv", "sock_send", "sock_shutdown",
}

type env struct {
	t    testing.TB
	s    *System
	inst engine.Instance
	mem  memory
}

// instance returns an instance of a module with one page of memory on
// engine eng, linked to s's functions.
func instance(t testing.TB, eng string, s *System) engine.Instance {
	ctx := context.Background()
	en, err := engine.New(ctx, engine.Config{Engine: eng, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close(ctx) })
	m, err := en.Compile(ctx, wasmtest.Memory(1))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.Instantiate(ctx, s.HostFuncs())
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func newEnv(t testing.TB, eng string, files ...fd.File) *env {
	s := &System{Args: []string{"main.wasm", "a b"}, Env: []string{"FD_COUNT=1", "X=y"}, Files: fd.NewTable(files)}
	inst := instance(t, eng, s)
	return &env{t: t, s: s, inst: inst, mem: inst.Memory()}
}

// eachEngine runs test on every engine of this build.
func eachEngine(t *testing.T, test func(t *testing.T, eng string)) {
	for _, eng := range engine.Names() {
		t.Run(eng, func(t *testing.T) { test(t, eng) })
	}
}

// memory reads and writes guest memory as the engines' own APIs would.
type memory []byte

func (m memory) Read(off, n uint32) ([]byte, bool) {
	b := view(m, off, n)
	return b, b != nil
}

func (m memory) Write(off uint32, b []byte) bool {
	v := view(m, off, uint32(len(b)))
	copy(v, b)
	return v != nil
}

func (m memory) ReadUint16Le(off uint32) (uint16, bool) {
	b := view(m, off, 2)
	if b == nil {
		return 0, false
	}
	return le.Uint16(b), true
}

func (m memory) ReadUint32Le(off uint32) (uint32, bool) {
	b := view(m, off, 4)
	if b == nil {
		return 0, false
	}
	return le.Uint32(b), true
}

func (m memory) ReadUint64Le(off uint32) (uint64, bool) {
	b := view(m, off, 8)
	if b == nil {
		return 0, false
	}
	return le.Uint64(b), true
}

func (m memory) WriteUint32Le(off, v uint32) bool {
	return m.Write(off, le.AppendUint32(nil, v))
}

func (e *env) call(name string, params ...uint64) Errno {
	e.t.Helper()
	errno, err, ok := e.s.Call(context.Background(), e.inst, name, params...)
	if !ok {
		e.t.Fatalf("no function %s", name)
	}
	if err != nil {
		e.t.Fatalf("%s%v unwound the guest: %v", name, params, err)
	}
	return errno
}

func (e *env) expect(want Errno, name string, params ...uint64) {
	e.t.Helper()
	if got := e.call(name, params...); got != want {
		e.t.Errorf("%s%v = errno %d, want %d", name, params, got, want)
	}
}

func (e *env) u32(off uint32) uint32 {
	v, ok := e.mem.ReadUint32Le(off)
	if !ok {
		e.t.Fatalf("read at %d", off)
	}
	return v
}

func (e *env) u64(off uint32) uint64 {
	v, _ := e.mem.ReadUint64Le(off)
	return v
}

func (e *env) put(off uint32, b []byte) {
	if !e.mem.Write(off, b) {
		e.t.Fatalf("write at %d", off)
	}
}

// iov writes an iovec array at off describing bufs (ptr,len pairs).
func (e *env) iov(off uint32, pairs ...uint32) {
	for i, v := range pairs {
		e.mem.WriteUint32Le(off+uint32(4*i), v)
	}
}

const memSize = 65536

// hostile pointers: straddling the end, past the end, the top of the
// address space.
var badPtrs = []uint64{memSize - 2, memSize, 0xffffffff, 0xfffffff0}

func TestEveryFunctionExported(t *testing.T) { eachEngine(t, testEveryFunctionExported) }

func testEveryFunctionExported(t *testing.T, eng string) {
	e := newEnv(t, eng)
	got := FunctionNames()
	sort.Strings(got)
	want := append([]string(nil), preview1...)
	sort.Strings(want)
	if len(got) != len(want) {
		t.Fatalf("exported %d functions, want %d:\n%v", len(got), len(want), got)
	}
	host := e.s.HostFuncs()
	have := map[string]engine.HostFunc{}
	for _, f := range host {
		have[f.Module+"."+f.Name] = f
	}
	var imports []wasmtest.Import
	for _, mod := range []string{ModuleName, LegacyModuleName} {
		for _, name := range want {
			f, ok := have[mod+"."+name]
			if !ok {
				t.Errorf("%s.%s missing", mod, name)
				continue
			}
			imports = append(imports, wasmtest.Import{Module: mod, Name: name, Params: valTypes(f.Params), Results: valTypes(f.Results)})
		}
	}
	// A module importing every function with its signature links on
	// this engine.
	ctx := context.Background()
	en, err := engine.New(ctx, engine.Config{Engine: eng, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close(ctx)
	m, err := en.Compile(ctx, wasmtest.ImportAll(imports))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Instantiate(ctx, host); err != nil {
		t.Fatalf("linking every WASI function: %v", err)
	}
}

func valTypes(ts []engine.ValType) []byte {
	b := make([]byte, len(ts))
	for i, t := range ts {
		b[i] = byte(t)
	}
	return b
}

func TestArgsAndEnviron(t *testing.T) { eachEngine(t, testArgsAndEnviron) }

func testArgsAndEnviron(t *testing.T, eng string) {
	e := newEnv(t, eng)
	e.expect(ESUCCESS, "args_sizes_get", 0, 4)
	if e.u32(0) != 2 || e.u32(4) != uint32(len("main.wasm\x00a b\x00")) {
		t.Fatalf("args sizes %d %d", e.u32(0), e.u32(4))
	}
	e.expect(ESUCCESS, "args_get", 100, 200)
	if e.u32(100) != 200 || e.u32(104) != 210 {
		t.Fatalf("argv pointers %d %d", e.u32(100), e.u32(104))
	}
	if b, _ := e.mem.Read(200, 14); string(b) != "main.wasm\x00a b\x00" {
		t.Fatalf("argv buf %q", b)
	}
	e.expect(ESUCCESS, "environ_sizes_get", 0, 4)
	if e.u32(0) != 2 || e.u32(4) != uint32(len("FD_COUNT=1\x00X=y\x00")) {
		t.Fatal("environ sizes")
	}
	e.expect(ESUCCESS, "environ_get", 300, 400)
	if b, _ := e.mem.Read(400, 15); string(b) != "FD_COUNT=1\x00X=y\x00" || e.u32(304) != 411 {
		t.Fatalf("environ %q", b)
	}
	for _, p := range badPtrs {
		e.expect(EFAULT, "args_sizes_get", p, 4)
		e.expect(EFAULT, "args_sizes_get", 0, p)
		e.expect(EFAULT, "args_get", p, 200)
		e.expect(EFAULT, "args_get", 100, p)
		e.expect(EFAULT, "environ_get", 100, p)
		e.expect(EFAULT, "environ_sizes_get", p, 0)
	}
	// The upper half of an i32 slot is not part of the value.
	e.expect(ESUCCESS, "args_sizes_get", 0xdead_0000_0000|0, 0xbeef_0000_0000|4)
}

func TestClocks(t *testing.T) { eachEngine(t, testClocks) }

func testClocks(t *testing.T, eng string) {
	e := newEnv(t, eng)
	before := time.Now().UnixNano()
	e.expect(ESUCCESS, "clock_time_get", clockRealtime, 1, 8)
	if now := int64(e.u64(8)); now < before || now > time.Now().UnixNano() {
		t.Fatalf("realtime %d not between %d and now", now, before)
	}
	e.expect(ESUCCESS, "clock_time_get", clockMonotonic, 1, 8)
	m1 := e.u64(8)
	e.expect(ESUCCESS, "clock_time_get", clockMonotonic, 1, 8)
	if e.u64(8) < m1 {
		t.Fatal("monotonic clock went backwards")
	}
	e.expect(ESUCCESS, "clock_res_get", clockMonotonic, 16)
	if e.u64(16) == 0 {
		t.Fatal("zero resolution")
	}
	e.expect(EINVAL, "clock_time_get", 99, 1, 8)
	e.expect(EINVAL, "clock_res_get", 99, 8)
	e.expect(ENOTSUP, "clock_time_get", clockProcess, 1, 8)
	for _, p := range badPtrs {
		e.expect(EFAULT, "clock_time_get", clockRealtime, 1, p)
		e.expect(EFAULT, "clock_res_get", clockRealtime, p)
	}
}

func TestRandomGet(t *testing.T) { eachEngine(t, testRandomGet) }

func testRandomGet(t *testing.T, eng string) {
	e := newEnv(t, eng)
	e.expect(ESUCCESS, "random_get", 1000, 64)
	if b, _ := e.mem.Read(1000, 64); bytes.Equal(b, make([]byte, 64)) {
		t.Fatal("random_get left zeros")
	}
	e.expect(ESUCCESS, "random_get", 0, 0)
	e.expect(EFAULT, "random_get", 0, MaxRandom+1) // beyond the one page
	e.expect(EFAULT, "random_get", memSize-10, 11)
	e.expect(EFAULT, "random_get", 0xffffffff, 2)
}

// countingRand fills every buffer with 0xa5 and records the longest read.
type countingRand struct{ reads, longest int }

func (r *countingRand) Read(b []byte) (int, error) {
	r.reads++
	r.longest = max(r.longest, len(b))
	for i := range b {
		b[i] = 0xa5
	}
	return len(b), nil
}

// randInstance is a System whose random source is r, and an instance
// on engine eng of a module with a memory of pages pages that imports it.
func randInstance(t *testing.T, eng string, pages uint32, r io.Reader) (*System, engine.Instance) {
	t.Helper()
	ctx := context.Background()
	en, err := engine.New(ctx, engine.Config{Engine: eng, NoCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close(ctx) })
	m, err := en.Compile(ctx, wasmtest.Memory(pages))
	if err != nil {
		t.Fatal(err)
	}
	s := &System{Rand: r, Files: fd.NewTable(nil)}
	inst, err := m.Instantiate(ctx, s.HostFuncs())
	if err != nil {
		t.Fatal(err)
	}
	return s, inst
}

func TestRandomGetLarge(t *testing.T) { eachEngine(t, testRandomGetLarge) }

// testRandomGetLarge: WASI sets no limit on random_get, and Go's wasip1
// crypto/rand passes its whole buffer and dies on any error, so a buffer
// longer than MaxRandom is filled whole, from reads of at most MaxRandom.
func testRandomGetLarge(t *testing.T, eng string) {
	const pages = 48 // 3 MiB
	r := &countingRand{}
	s, inst := randInstance(t, eng, pages, r)
	e := &env{t: t, s: s, inst: inst, mem: inst.Memory()}
	const off, n = 100, 2*MaxRandom + 12345
	e.expect(ESUCCESS, "random_get", off, n)
	b, _ := e.mem.Read(off, n)
	if len(b) != n {
		t.Fatalf("read %d bytes of guest memory, want %d", len(b), n)
	}
	for i, c := range b {
		if c != 0xa5 {
			t.Fatalf("random_get of %d bytes left byte %d unfilled", n, i)
		}
	}
	if b, _ := e.mem.Read(off-1, 1); b[0] != 0 {
		t.Fatal("random_get wrote before its buffer")
	}
	if b, _ := e.mem.Read(off+n, 1); b[0] != 0 {
		t.Fatal("random_get wrote past its buffer")
	}
	if r.longest > MaxRandom || r.reads < 3 {
		t.Fatalf("source read %d times, longest %d; want pieces of at most %d", r.reads, r.longest, MaxRandom)
	}
	// The whole range must still lie inside memory: nothing is written
	// when it does not.
	r.reads = 0
	e.expect(EFAULT, "random_get", pages*memSize-MaxRandom, MaxRandom+1)
	e.expect(EFAULT, "random_get", 0, pages*memSize+1)
	if r.reads != 0 {
		t.Fatal("random_get read the source for an out-of-bounds buffer")
	}
}

// cancellingRand is countingRand that cancels a run after its first read.
type cancellingRand struct {
	countingRand
	cancel context.CancelFunc
}

func (r *cancellingRand) Read(b []byte) (int, error) {
	r.cancel()
	return r.countingRand.Read(b)
}

func TestRandomGetCancelled(t *testing.T) { eachEngine(t, testRandomGetCancelled) }

// testRandomGetCancelled: a random_get of gigabytes takes seconds, so a
// run cancelled meanwhile unwinds the guest between MaxRandom pieces (as
// from a wait) instead of filling the whole buffer first.
func testRandomGetCancelled(t *testing.T, eng string) {
	run, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &cancellingRand{cancel: cancel}
	s, inst := randInstance(t, eng, 48, r)
	errno, unwind, _ := s.Call(run, inst, "random_get", 100, 2*MaxRandom+12345)
	if errno != EINTR || unwind != context.Canceled {
		t.Fatalf("random_get in a run cancelled meanwhile = errno %d, unwind %v; want EINTR, %v", errno, unwind, context.Canceled)
	}
	if r.reads != 1 {
		t.Fatalf("random_get read the source %d times after the run was cancelled in the first", r.reads)
	}
	// Within one piece, the call completes.
	r.reads = 0
	if errno, unwind, _ := s.Call(run, inst, "random_get", 100, MaxRandom); errno != ESUCCESS || unwind != nil {
		t.Fatalf("random_get of one piece = errno %d, unwind %v; want success", errno, unwind)
	}
}

func TestSchedYieldProcRaise(t *testing.T) { eachEngine(t, testSchedYieldProcRaise) }

func testSchedYieldProcRaise(t *testing.T, eng string) {
	e := newEnv(t, eng)
	e.expect(ESUCCESS, "sched_yield")
	e.expect(ENOSYS, "proc_raise", 9)
}

// pipeStreams returns a Stdio reader (fd 0) and writer (fd 1) over one
// pipe, plus the host ends.
func pipeStreams(t testing.TB) (in, out *fd.Stdio, inW, outR *os.File) {
	r1, w1, _ := os.Pipe()
	r2, w2, _ := os.Pipe()
	t.Cleanup(func() { r1.Close(); w1.Close(); r2.Close(); w2.Close() })
	in, err := fd.NewStdio(r1, false)
	if err != nil {
		t.Fatal(err)
	}
	out, err = fd.NewStdio(w2, true)
	if err != nil {
		t.Fatal(err)
	}
	return in, out, w1, r2
}

func TestFdWriteRead(t *testing.T) { eachEngine(t, testFdWriteRead) }

func testFdWriteRead(t *testing.T, eng string) {
	in, out, inW, outR := pipeStreams(t)
	e := newEnv(t, eng, in, out, fd.Null{})
	e.put(1000, []byte("hello, "))
	e.put(2000, []byte("world\n"))
	e.iov(100, 1000, 7, 3000, 0, 2000, 6)
	e.expect(ESUCCESS, "fd_write", 1, 100, 3, 8)
	if e.u32(8) != 13 {
		t.Fatalf("nwritten %d", e.u32(8))
	}
	got := make([]byte, 13)
	io.ReadFull(outR, got)
	if string(got) != "hello, world\n" {
		t.Fatalf("wrote %q", got)
	}

	// Hostile arguments: nothing is written, the right errno comes back.
	e.iov(200, 1000, 7, memSize-3, 4) // second buffer straddles the end
	e.expect(EFAULT, "fd_write", 1, 200, 2, 8)
	e.expect(EFAULT, "fd_write", 1, 100, 3, memSize-2) // result pointer
	e.expect(EFAULT, "fd_write", 1, memSize-8, 2, 8)   // iovec array
	e.expect(EFAULT, "fd_write", 1, 0xffffffff, 1, 8)
	e.expect(EINVAL, "fd_write", 1, 100, MaxIovecs+1, 8)
	e.expect(EINVAL, "fd_write", 1, 100, 0xffffffff, 8)
	e.expect(EBADF, "fd_write", 7, 100, 3, 8)
	e.expect(EBADF, "fd_write", 0, 100, 3, 8) // stdin is read-only
	e.expect(EBADF, "fd_read", 1, 100, 3, 8)  // stdout is write-only
	inW.Write([]byte("ping"))
	e.expect(EFAULT, "fd_read", 0, 200, 2, 8)
	// Still unread after the fault:
	e.iov(300, 4000, 2, 4100, 10)
	e.expect(ESUCCESS, "fd_read", 0, 300, 2, 8)
	if b, _ := e.mem.Read(4000, 2); e.u32(8) != 4 || string(b) != "pi" {
		t.Fatalf("read %d %q", e.u32(8), b)
	}
	if b, _ := e.mem.Read(4100, 2); string(b) != "ng" {
		t.Fatalf("second iovec %q", b)
	}

	// Non-blocking read of an empty pipe: EAGAIN; then EOF reads 0.
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 0, uint64(fd.FlagNonblock))
	e.expect(EAGAIN, "fd_read", 0, 300, 2, 8)
	inW.Close()
	e.expect(ESUCCESS, "fd_read", 0, 300, 2, 8)
	if e.u32(8) != 0 {
		t.Fatalf("read %d at EOF", e.u32(8))
	}
	// null: reads EOF, writes vanish.
	e.expect(ESUCCESS, "fd_write", 2, 100, 3, 8)
	if e.u32(8) != 13 {
		t.Fatal("null write")
	}
	e.expect(ESUCCESS, "fd_read", 2, 300, 2, 8)
	if e.u32(8) != 0 {
		t.Fatal("null read")
	}
}

func TestFdstatAndFlags(t *testing.T) { eachEngine(t, testFdstatAndFlags) }

func testFdstatAndFlags(t *testing.T, eng string) {
	in, out, _, _ := pipeStreams(t)
	e := newEnv(t, eng, in, out, fd.Null{})
	e.expect(ESUCCESS, "fd_fdstat_get", 1, 64)
	if b, _ := e.mem.Read(64, 24); b[0] != byte(fd.FiletypeUnknown) || e.u64(72)&fd.RightFdWrite == 0 {
		t.Fatalf("fdstat %x", b)
	}
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, uint64(fd.FlagNonblock))
	e.expect(ESUCCESS, "fd_fdstat_get", 1, 64)
	if v, _ := e.mem.ReadUint16Le(66); v != fd.FlagNonblock {
		t.Fatalf("flags %d", v)
	}
	e.expect(EINVAL, "fd_fdstat_set_flags", 1, 1<<5)
	e.expect(ENOTSUP, "fd_fdstat_set_flags", 1, uint64(fd.FlagSync))
	e.expect(EBADF, "fd_fdstat_set_flags", 9, 0)
	e.expect(EBADF, "fd_fdstat_get", 9, 64)
	e.expect(EFAULT, "fd_fdstat_get", 1, memSize-23)
	e.expect(ESUCCESS, "fd_filestat_get", 2, 128)
	if b, _ := e.mem.Read(128+16, 1); b[0] != byte(fd.FiletypeCharacterDevice) {
		t.Fatalf("null filetype %d", b[0])
	}
	e.expect(EFAULT, "fd_filestat_get", 2, memSize-63)
	e.expect(EBADF, "fd_filestat_get", 9, 128)
	e.expect(ENOTSUP, "fd_fdstat_set_rights", 1, 0, 0)
}

func TestCloseAndRenumber(t *testing.T) { eachEngine(t, testCloseAndRenumber) }

func testCloseAndRenumber(t *testing.T, eng string) {
	e := newEnv(t, eng, fd.Null{}, fd.Null{}, fd.Null{})
	e.expect(ESUCCESS, "fd_close", 1)
	e.expect(EBADF, "fd_close", 1)
	e.expect(EBADF, "fd_write", 1, 0, 0, 8)
	e.expect(EBADF, "fd_close", 0xffffffff)
	e.expect(EBADF, "fd_renumber", 0, 1)
	e.expect(ESUCCESS, "fd_renumber", 2, 0)
	e.expect(EBADF, "fd_fdstat_get", 2, 0)
	e.expect(ESUCCESS, "fd_fdstat_get", 0, 0)
}

// TestFilesystemCalls: no descriptor is a file or directory.
func TestFilesystemCalls(t *testing.T) { eachEngine(t, testFilesystemCalls) }

func testFilesystemCalls(t *testing.T, eng string) {
	e := newEnv(t, eng, fd.Null{})
	cases := []struct {
		name   string
		valid  Errno
		params func(fd uint64) []uint64
	}{
		{"fd_advise", ESPIPE, func(f uint64) []uint64 { return []uint64{f, 0, 0, 0} }},
		{"fd_allocate", ESPIPE, func(f uint64) []uint64 { return []uint64{f, 0, 10} }},
		{"fd_datasync", EINVAL, func(f uint64) []uint64 { return []uint64{f} }},
		{"fd_sync", EINVAL, func(f uint64) []uint64 { return []uint64{f} }},
		{"fd_filestat_set_size", EINVAL, func(f uint64) []uint64 { return []uint64{f, 0} }},
		{"fd_filestat_set_times", ENOTSUP, func(f uint64) []uint64 { return []uint64{f, 0, 0, 1} }},
		{"fd_pread", ESPIPE, func(f uint64) []uint64 { return []uint64{f, 0, 0, 0, 0} }},
		{"fd_pwrite", ESPIPE, func(f uint64) []uint64 { return []uint64{f, 0, 0, 0, 0} }},
		{"fd_seek", ESPIPE, func(f uint64) []uint64 { return []uint64{f, 0, 0, 0} }},
		{"fd_tell", ESPIPE, func(f uint64) []uint64 { return []uint64{f, 0} }},
		{"fd_readdir", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 0, 0, 0} }},
		{"fd_prestat_get", EBADF, func(f uint64) []uint64 { return []uint64{f, 0} }},
		{"fd_prestat_dir_name", EBADF, func(f uint64) []uint64 { return []uint64{f, 0, 0} }},
		{"path_create_directory", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 1} }},
		{"path_filestat_get", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 0, 1, 0} }},
		{"path_filestat_set_times", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 0, 1, 0, 0, 0} }},
		{"path_link", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 0, 1, f, 0, 1} }},
		{"path_open", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 0, 1, 0, 0, 0, 0, 0} }},
		{"path_readlink", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 1, 0, 0, 0} }},
		{"path_remove_directory", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 1} }},
		{"path_rename", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 1, f, 0, 1} }},
		{"path_symlink", ENOTDIR, func(f uint64) []uint64 { return []uint64{0, 1, f, 0, 1} }},
		{"path_unlink_file", ENOTDIR, func(f uint64) []uint64 { return []uint64{f, 0, 1} }},
	}
	for _, c := range cases {
		e.expect(c.valid, c.name, c.params(0)...)
		e.expect(EBADF, c.name, c.params(5)...)
		e.expect(EBADF, c.name, c.params(0xffffffff)...)
	}
	e.expect(EINVAL, "fd_filestat_set_times", 0, 0, 0, 3) // ATIM and ATIM_NOW
	e.expect(EINVAL, "fd_filestat_set_times", 0, 0, 0, 1<<4)
}

// sub writes a subscription at off.
func (e *env) sub(off uint32, userdata uint64, tag byte, a uint32, timeout uint64, flags uint16) {
	b := make([]byte, subSize)
	le.PutUint64(b, userdata)
	b[8] = tag
	le.PutUint32(b[16:], a)
	le.PutUint64(b[24:], timeout)
	le.PutUint16(b[40:], flags)
	e.put(off, b)
}

func (e *env) event(out uint32, i int) (userdata uint64, errno uint16, typ byte) {
	b, _ := e.mem.Read(out+uint32(i*eventSize), eventSize)
	return le.Uint64(b), le.Uint16(b[8:]), b[10]
}

func TestPollOneoff(t *testing.T) { eachEngine(t, testPollOneoff) }

func testPollOneoff(t *testing.T, eng string) {
	in, out, inW, _ := pipeStreams(t)
	e := newEnv(t, eng, in, out)
	const subs, events, nev = 1000, 5000, 8
	// A relative clock fires.
	e.sub(subs, 7, tagClock, clockMonotonic, uint64(5*time.Millisecond), 0)
	start := time.Now()
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 1, nev)
	if ud, errno, typ := e.event(events, 0); e.u32(nev) != 1 || ud != 7 || errno != 0 || typ != tagClock {
		t.Fatalf("clock event %d %d %d n=%d", ud, errno, typ, e.u32(nev))
	}
	if time.Since(start) < 5*time.Millisecond {
		t.Fatal("clock fired early")
	}
	// Absolute realtime deadline in the past fires at once.
	e.sub(subs, 8, tagClock, clockRealtime, 1, subclockAbstime)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 1, nev)
	// Empty pipe + stdout writable + bad fd: write ready and EBADF events.
	e.sub(subs, 1, tagFdRead, 0, 0, 0)
	e.sub(subs+subSize, 2, tagFdWrite, 1, 0, 0)
	e.sub(subs+2*subSize, 3, tagFdRead, 42, 0, 0)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 3, nev)
	got := map[uint64]uint16{}
	for i := 0; i < int(e.u32(nev)); i++ {
		ud, errno, _ := e.event(events, i)
		got[ud] = errno
	}
	if _, ok := got[1]; ok || got[2] != 0 || got[3] != uint16(EBADF) || len(got) != 2 {
		t.Fatalf("events %v", got)
	}
	// Data on the pipe makes fd 0 readable; a long clock does not fire.
	inW.Write([]byte("x"))
	e.sub(subs, 1, tagFdRead, 0, 0, 0)
	e.sub(subs+subSize, 9, tagClock, clockMonotonic, uint64(time.Hour), 0)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 2, nev)
	if ud, _, typ := e.event(events, 0); e.u32(nev) != 1 || ud != 1 || typ != tagFdRead {
		t.Fatalf("read event %d type %d n=%d", ud, typ, e.u32(nev))
	}
	// Hostile arguments.
	e.expect(EINVAL, "poll_oneoff", subs, events, 0, nev)
	e.expect(EINVAL, "poll_oneoff", subs, events, MaxSubscriptions+1, nev)
	e.expect(EFAULT, "poll_oneoff", memSize-10, events, 1, nev)
	e.expect(EFAULT, "poll_oneoff", subs, memSize-10, 1, nev)
	e.expect(EFAULT, "poll_oneoff", subs, events, 1, memSize)
	e.expect(EFAULT, "poll_oneoff", subs, events, 2000, nev)
	e.sub(subs, 1, 7, 0, 0, 0)
	e.expect(EINVAL, "poll_oneoff", subs, events, 1, nev)
	// Bad clock id / flags: an error event, not a hang.
	e.sub(subs, 5, tagClock, 99, 0, 0)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 1, nev)
	if _, errno, _ := e.event(events, 0); errno != uint16(EINVAL) {
		t.Fatalf("bad clock id: errno %d", errno)
	}
	e.sub(subs, 5, tagClock, clockMonotonic, 0, 0x80)
	e.expect(ESUCCESS, "poll_oneoff", subs, events, 1, nev)
	if _, errno, _ := e.event(events, 0); errno != uint16(EINVAL) {
		t.Fatalf("bad clock flags: errno %d", errno)
	}
}

func TestPollCancelled(t *testing.T) { eachEngine(t, testPollCancelled) }

func testPollCancelled(t *testing.T, eng string) {
	in, _, _, _ := pipeStreams(t)
	e := newEnv(t, eng, in)
	e.sub(1000, 1, tagFdRead, 0, 0, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err, _ := e.s.Call(ctx, e.inst, "poll_oneoff", 1000, 5000, 1, 8); err != context.DeadlineExceeded {
		t.Fatalf("poll_oneoff on a cancelled run unwound with %v, want the context error", err)
	}
}

func tcpPair(t testing.TB) (*net.TCPListener, *net.TCPConn, *net.TCPConn) {
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptTCP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); c.Close(); s.Close() })
	return l, c, s
}

func TestSockets(t *testing.T) { eachEngine(t, testSockets) }

func testSockets(t *testing.T, eng string) {
	l, client, server := tcpPair(t)
	sock, err := fd.NewTCPSocket(server)
	if err != nil {
		t.Fatal(err)
	}
	lst, err := fd.NewTCPListener(context.Background(), l, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, eng, fd.Null{}, sock, lst)
	// sock_send / sock_recv.
	e.put(1000, []byte("hi there"))
	e.iov(100, 1000, 8)
	e.expect(ESUCCESS, "sock_send", 1, 100, 1, 0, 8)
	buf := make([]byte, 8)
	io.ReadFull(client, buf)
	if string(buf) != "hi there" || e.u32(8) != 8 {
		t.Fatalf("sent %q", buf)
	}
	client.Write([]byte("back"))
	e.iov(200, 2000, 100)
	e.expect(ESUCCESS, "sock_recv", 1, 200, 1, 0, 8, 12)
	if b, _ := e.mem.Read(2000, 4); e.u32(8) != 4 || string(b) != "back" {
		t.Fatalf("recv %d %q", e.u32(8), b)
	}
	// Non-blocking recv with nothing there.
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, uint64(fd.FlagNonblock))
	e.expect(EAGAIN, "sock_recv", 1, 200, 1, 0, 8, 12)
	e.expect(EAGAIN, "fd_read", 1, 200, 1, 8)
	// Flags and kinds.
	e.expect(EINVAL, "sock_send", 1, 100, 1, 1, 8)
	e.expect(EINVAL, "sock_recv", 1, 200, 1, 4, 8, 12)
	// MSG_PEEK: the bytes stay for the next recv (blocking and not).
	client.Write([]byte("peek"))
	e.iov(500, 2100, 3, 2200, 10)
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, 0)
	e.expect(ESUCCESS, "sock_recv", 1, 500, 2, recvPeek, 8, 12)
	if b, _ := e.mem.Read(2100, 3); e.u32(8) != 3 || string(b) != "pee" {
		t.Fatalf("peek %d %q", e.u32(8), b)
	}
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 1, uint64(fd.FlagNonblock))
	e.expect(ESUCCESS, "sock_recv", 1, 500, 2, 0, 8, 12)
	if b, _ := e.mem.Read(2100, 3); e.u32(8) != 4 || string(b) != "pee" {
		t.Fatalf("recv after peek %d %q", e.u32(8), b)
	}
	e.expect(EAGAIN, "sock_recv", 1, 500, 2, recvPeek, 8, 12)
	e.expect(ENOTSOCK, "sock_recv", 0, 200, 1, recvPeek, 8, 12)
	e.expect(EFAULT, "sock_recv", 1, 200, 1, 0, memSize, 12)
	e.expect(ENOTSOCK, "sock_recv", 0, 200, 1, 0, 8, 12)
	e.expect(ENOTCONN, "sock_recv", 2, 200, 1, 0, 8, 12)
	e.expect(EINVAL, "sock_shutdown", 1, 0)
	e.expect(EINVAL, "sock_shutdown", 1, 4)
	e.expect(ENOTSOCK, "sock_shutdown", 0, sdWrite)
	// Shutdown write: the peer sees EOF.
	e.expect(ESUCCESS, "sock_shutdown", 1, sdWrite)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after shutdown: %d %v", n, err)
	}
	// sock_accept: non-blocking with nothing pending, then a connection.
	e.expect(ESUCCESS, "fd_fdstat_set_flags", 2, uint64(fd.FlagNonblock))
	e.expect(EAGAIN, "sock_accept", 2, 0, 16)
	e.expect(EINVAL, "sock_accept", 2, 1<<6, 16)
	e.expect(EFAULT, "sock_accept", 2, 0, memSize-1)
	e.expect(EINVAL, "sock_accept", 1, 0, 16)
	e.expect(ENOTSOCK, "sock_accept", 0, 0, 16)
	c2, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	// Wait for readiness through poll_oneoff, as a guest would.
	e.sub(3000, 1, tagFdRead, 2, 0, 0)
	e.expect(ESUCCESS, "poll_oneoff", 3000, 4000, 1, 8)
	e.expect(ESUCCESS, "sock_accept", 2, uint64(fd.FlagNonblock), 16)
	nfd := e.u32(16)
	if nfd != 3 {
		t.Fatalf("accepted fd %d, want 3", nfd)
	}
	e.expect(ESUCCESS, "fd_fdstat_get", uint64(nfd), 64)
	if b, _ := e.mem.Read(64, 4); b[0] != byte(fd.FiletypeSocketStream) || le.Uint16(b[2:]) != fd.FlagNonblock {
		t.Fatalf("accepted fdstat %x", b)
	}
	c2.Write([]byte("z"))
	e.sub(3000, 1, tagFdRead, nfd, 0, 0)
	e.expect(ESUCCESS, "poll_oneoff", 3000, 4000, 1, 8)
	e.expect(ESUCCESS, "fd_read", uint64(nfd), 200, 1, 8)
	if e.u32(8) != 1 {
		t.Fatal("accepted socket read")
	}
}
