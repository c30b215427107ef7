package wasi

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// The descriptors of newFSEnv: stdio (null), the preopen "/" at 3.
const preFD = 3

// Scratch memory of the file-system tests.
const (
	resOff  = 16   // results (8 bytes at most, 64 for a filestat)
	pathOff = 1024 // first path
	path2   = 2048 // second path
	iovOff  = 512
	bufOff  = 8192
)

func newFSEnv(t *testing.T, eng string) (*env, *fakeFS) {
	fs := newFakeFS()
	e := newEnv(t, eng, fd.Null{}, fd.Null{}, fd.Null{}, fs.preopen("/"))
	return e, fs
}

// str writes s at off and returns (off, len) as call parameters.
func (e *env) str(off uint32, s string) (uint64, uint64) {
	e.put(off, []byte(s))
	return uint64(off), uint64(len(s))
}

// open opens path beneath dir and returns the new descriptor.
func (e *env) open(dir uint64, path string, oflags uint32, base uint64, fdflags uint16) uint64 {
	e.t.Helper()
	p, n := e.str(pathOff, path)
	e.expect(ESUCCESS, "path_open", dir, 1, p, n, uint64(oflags), base, fd.RightsAll, uint64(fdflags), resOff)
	return uint64(e.u32(resOff))
}

// pathCall is one path call with its path parameters at argument index
// pi (pointer) and pi+1 (length); dir is the index of its directory fd.
type pathCall struct {
	name   string
	dir    int
	pi     []int
	params func(dir, p, n uint64) []uint64
}

var pathCalls = []pathCall{
	{"path_create_directory", 0, []int{1}, func(d, p, n uint64) []uint64 { return []uint64{d, p, n} }},
	{"path_remove_directory", 0, []int{1}, func(d, p, n uint64) []uint64 { return []uint64{d, p, n} }},
	{"path_unlink_file", 0, []int{1}, func(d, p, n uint64) []uint64 { return []uint64{d, p, n} }},
	{"path_filestat_get", 0, []int{2}, func(d, p, n uint64) []uint64 { return []uint64{d, 0, p, n, resOff} }},
	{"path_filestat_set_times", 0, []int{2}, func(d, p, n uint64) []uint64 { return []uint64{d, 0, p, n, 0, 0, fstMtimNow} }},
	{"path_open", 0, []int{2}, func(d, p, n uint64) []uint64 { return []uint64{d, 0, p, n, oflagCreat, fd.RightsFile, 0, 0, resOff} }},
	{"path_readlink", 0, []int{1}, func(d, p, n uint64) []uint64 { return []uint64{d, p, n, bufOff, 64, resOff} }},
	{"path_rename", 0, []int{1, 4}, func(d, p, n uint64) []uint64 { return []uint64{d, p, n, d, p, n} }},
	{"path_link", 0, []int{2, 5}, func(d, p, n uint64) []uint64 { return []uint64{d, 0, p, n, d, p, n} }},
	{"path_symlink", 2, []int{0, 3}, func(d, p, n uint64) []uint64 { return []uint64{p, n, d, p, n} }},
}

// TestPathArguments checks every path call's validation of its
// descriptor and strings, before anything reaches the file system.
func TestPathArguments(t *testing.T) { eachEngine(t, testPathArguments) }

func testPathArguments(t *testing.T, eng string) {
	e, fsys := newFSEnv(t, eng)
	file := e.open(preFD, "file", oflagCreat, fd.RightsFile, 0)
	long := strings.Repeat("a/", vfs.MaxPath/2) + "b" // MaxPath+1 bytes
	for _, c := range pathCalls {
		p, n := e.str(pathOff, "x")
		e.expect(EBADF, c.name, c.params(99, p, n)...)
		e.expect(EBADF, c.name, c.params(0xffffffff, p, n)...)
		e.expect(ENOTDIR, c.name, c.params(0, p, n)...)    // a stream
		e.expect(ENOTDIR, c.name, c.params(file, p, n)...) // a file
		cases := []struct {
			want Errno
			p, n uint64
		}{
			{EFAULT, memSize - 1, 2},
			{EFAULT, memSize, 1},
			{EFAULT, 0xffffffff, 1},
			{EFAULT, 1, 0xffffffff},
			{ENAMETOOLONG, 16384, uint64(len(long))},
			{EINVAL, pathOff, 3}, // "a\x00b"
			{EILSEQ, path2, 2},   // "\xff\xfe"
			{ENOENT, pathOff, 0}, // ""
		}
		e.put(16384, []byte(long))
		e.put(pathOff, []byte("a\x00b"))
		e.put(path2, []byte{0xff, 0xfe})
		e.put(4000, []byte("good"))
		for _, tc := range cases {
			// Each path parameter in turn gets the bad string; the other
			// stays good.
			for _, pi := range c.pi {
				params := c.params(preFD, 4000, 4)
				params[pi], params[pi+1] = tc.p, tc.n
				before := len(fsys.root.kids)
				e.expect(tc.want, c.name, params...)
				if len(fsys.root.kids) != before {
					t.Errorf("%s with a bad path changed the file system", c.name)
				}
			}
		}
	}
	// Flags.
	p, n := e.str(pathOff, "file")
	e.expect(EINVAL, "path_filestat_get", preFD, 2, p, n, resOff)
	e.expect(EINVAL, "path_filestat_set_times", preFD, 2, p, n, 0, 0, fstMtimNow)
	e.expect(EINVAL, "path_filestat_set_times", preFD, 0, p, n, 0, 0, fstMtim|fstMtimNow)
	e.expect(EINVAL, "path_filestat_set_times", preFD, 0, p, n, 0, 0, 1<<4)
	e.expect(EINVAL, "path_filestat_set_times", preFD, 0, p, n, 1<<63, 0, fstAtim)
	e.expect(EINVAL, "path_link", preFD, 2, p, n, preFD, p, n)
	// Bad result pointers.
	for _, bad := range badPtrs {
		e.expect(EFAULT, "path_filestat_get", preFD, 0, p, n, bad)
		e.expect(EFAULT, "path_readlink", preFD, p, n, bufOff, 10, bad)
		e.expect(EFAULT, "path_readlink", preFD, p, n, bad, 10, resOff)
	}
	// A symlink target cannot be absolute.
	t1, tn := e.str(path2, "/etc")
	e.expect(EPERM, "path_symlink", t1, tn, preFD, p, n)
}

func TestPathOpen(t *testing.T) { eachEngine(t, testPathOpen) }

func testPathOpen(t *testing.T, eng string) {
	e, fsys := newFSEnv(t, eng)
	p, n := e.str(pathOff, "new")
	open := func(want Errno, lookup, oflags uint32, base, inh uint64, fdflags uint32) {
		t.Helper()
		e.expect(want, "path_open", preFD, uint64(lookup), p, n, uint64(oflags), base, inh, uint64(fdflags), resOff)
	}
	open(EINVAL, 2, oflagCreat, 0, 0, 0)
	open(EINVAL, 0, 1<<4, 0, 0, 0)
	open(EINVAL, 0, oflagCreat, 0, 0, 1<<5)
	open(EINVAL, 0, oflagCreat|oflagDirectory, 0, 0, 0)
	open(EINVAL, 0, oflagTrunc|oflagDirectory, 0, 0, 0)
	open(ENOENT, 0, 0, fd.RightFdRead, 0, 0)
	// A bad result pointer: nothing is created.
	for _, bad := range badPtrs {
		e.expect(EFAULT, "path_open", preFD, 0, p, n, oflagCreat, fd.RightsFile, 0, 0, bad)
	}
	if len(fsys.root.kids) != 0 {
		t.Fatal("path_open with a bad result pointer created a file")
	}
	f := e.open(preFD, "new", oflagCreat|oflagExcl, fd.RightFdRead|fd.RightFdWrite|fd.RightPathOpen, fd.FlagAppend)
	if f <= preFD {
		t.Fatalf("new fd %d", f)
	}
	open(EEXIST, 0, oflagCreat|oflagExcl, 0, 0, 0)
	open(ENOTDIR, 0, oflagDirectory, 0, 0, 0)
	// The file's rights: what it asked for, within what files can do.
	e.expect(ESUCCESS, "fd_fdstat_get", f, resOff)
	if b, _ := e.mem.Read(resOff, 24); b[0] != byte(fd.FiletypeRegularFile) || le.Uint16(b[2:]) != fd.FlagAppend ||
		le.Uint64(b[8:]) != fd.RightFdRead|fd.RightFdWrite || le.Uint64(b[16:]) != fd.RightsAll {
		t.Fatalf("fdstat %x", b)
	}
	// Directories.
	p, n = e.str(pathOff, ".")
	open(EISDIR, 0, oflagDirectory, fd.RightFdRead|fd.RightFdWrite, 0, 0)
	open(EISDIR, 0, 0, fd.RightFdWrite, 0, 0)
	open(ESUCCESS, 0, oflagDirectory, fd.RightsAll&^(fd.RightFdWrite|fd.RightFdAllocate), fd.RightsAll&^fd.RightFdWrite, 0)
	d := uint64(e.u32(resOff))
	e.expect(ESUCCESS, "fd_fdstat_get", d, resOff)
	if b, _ := e.mem.Read(resOff, 24); b[0] != byte(fd.FiletypeDirectory) || le.Uint64(b[8:]) != fd.RightsDir ||
		le.Uint64(b[16:]) != fd.RightsAll&^fd.RightFdWrite {
		t.Fatalf("dir fdstat %x", b)
	}
	// A file opened from d cannot get FD_WRITE: d does not pass it on.
	f2 := e.open(d, "new", 0, fd.RightFdRead|fd.RightFdWrite, 0)
	e.expect(ESUCCESS, "fd_fdstat_get", f2, resOff)
	if e.u64(resOff+8) != fd.RightFdRead {
		t.Fatalf("rights %x", e.u64(resOff+8))
	}
	e.put(bufOff, []byte("data"))
	e.iov(iovOff, bufOff, 4)
	e.expect(ENOTCAPABLE, "fd_write", f2, iovOff, 1, resOff)
	// Escapes are the source's to refuse; their error is ENOTCAPABLE.
	for _, esc := range []string{"/new", "..", "../new", "./../new"} {
		p, n = e.str(pathOff, esc)
		open(ENOTCAPABLE, 0, 0, fd.RightFdRead, 0, 0)
	}
	// Truncation needs PATH_FILESTAT_SET_SIZE on the directory; opening
	// needs PATH_OPEN, creating PATH_CREATE_FILE.
	p, n = e.str(pathOff, "new")
	e.expect(ESUCCESS, "fd_fdstat_set_rights", d, fd.RightsDir&^fd.RightPathFilestatSetSize, 0)
	e.expect(ENOTCAPABLE, "path_open", d, 0, p, n, oflagTrunc, 0, 0, 0, resOff)
	e.expect(ENOTCAPABLE, "fd_fdstat_set_rights", d, fd.RightsDir, 0)
	e.expect(ESUCCESS, "fd_fdstat_set_rights", d, fd.RightPathOpen, 0)
	e.expect(ENOTCAPABLE, "path_open", d, 0, p, n, oflagCreat, 0, 0, 0, resOff)
	e.expect(ESUCCESS, "path_open", d, 0, p, n, 0, 0, 0, 0, resOff)
	e.expect(ESUCCESS, "fd_fdstat_set_rights", d, 0, 0)
	e.expect(ENOTCAPABLE, "path_open", d, 0, p, n, 0, 0, 0, 0, resOff)
	// Streams keep their fixed rights.
	e.expect(ENOTSUP, "fd_fdstat_set_rights", 1, 0, 0)
	// The file system's errors come through.
	fsys.fail = fmt.Errorf("sealed: %w", vfs.ErrIntegrity)
	open(EIO, 0, 0, fd.RightFdRead, 0, 0)
	fsys.fail = &fs.PathError{Op: "open", Path: "x", Err: syscall.ENOSPC}
	open(ENOSPC, 0, 0, fd.RightFdRead, 0, 0)
}

func TestIovecsCopied(t *testing.T) { eachEngine(t, testIovecsCopied) }

// testIovecsCopied: fd_read and fd_pread scatter into the iovecs as they
// were when called, as readv(2), which copies the array first: a buffer
// that overlaps the array does not redirect later bytes (nor slip a
// buffer past the checks made before the I/O).
func testIovecsCopied(t *testing.T, eng string) {
	e, _ := newFSEnv(t, eng)
	f := e.open(preFD, "f", oflagCreat, fd.RightsFile, 0)
	// The file's first 16 bytes are an iovec array that sends the next 4
	// bytes elsewhere.
	var content []byte
	for _, v := range []uint32{iovOff, 16, bufOff + 200, 4} {
		content = le.AppendUint32(content, v)
	}
	content = append(content, "WXYZ"...)
	e.put(bufOff, content)
	e.iov(iovOff, bufOff, uint32(len(content)))
	e.expect(ESUCCESS, "fd_write", f, iovOff, 1, resOff)
	for _, call := range []string{"fd_read", "fd_pread"} {
		e.put(bufOff, make([]byte, 1024))
		// Buffer 0 is the array itself; buffer 1 is at bufOff+100.
		e.iov(iovOff, iovOff, 16, bufOff+100, 4)
		if call == "fd_read" {
			e.expect(ESUCCESS, "fd_seek", f, 0, 0, resOff)
			e.expect(ESUCCESS, "fd_read", f, iovOff, 2, resOff)
		} else {
			e.expect(ESUCCESS, "fd_pread", f, iovOff, 2, 0, resOff)
		}
		at100, _ := e.mem.Read(bufOff+100, 4)
		at200, _ := e.mem.Read(bufOff+200, 4)
		if n := e.u32(resOff); n != 20 || string(at100) != "WXYZ" || !bytes.Equal(at200, make([]byte, 4)) {
			t.Errorf("%s: read %d bytes, %q at the second buffer, %q where the data rewrote it to point; want 20, \"WXYZ\", zeros",
				call, n, at100, at200)
		}
	}
}

func TestFileIO(t *testing.T) { eachEngine(t, testFileIO) }

func testFileIO(t *testing.T, eng string) {
	e, fsys := newFSEnv(t, eng)
	f := e.open(preFD, "f", oflagCreat, fd.RightsFile, 0)
	e.put(bufOff, []byte("hello, world"))
	e.iov(iovOff, bufOff, 5, 0, 0, bufOff+5, 7)
	e.expect(ESUCCESS, "fd_write", f, iovOff, 3, resOff)
	if e.u32(resOff) != 12 {
		t.Fatalf("nwritten %d", e.u32(resOff))
	}
	e.expect(ESUCCESS, "fd_tell", f, resOff)
	if e.u64(resOff) != 12 {
		t.Fatalf("tell %d", e.u64(resOff))
	}
	e.expect(ESUCCESS, "fd_seek", f, uint64(math.MaxUint64-6), 2, resOff) // -7 from the end
	if e.u64(resOff) != 5 {
		t.Fatalf("seek %d", e.u64(resOff))
	}
	e.iov(iovOff, bufOff+100, 2, bufOff+200, 100)
	e.expect(ESUCCESS, "fd_read", f, iovOff, 2, resOff)
	if b, _ := e.mem.Read(bufOff+100, 2); e.u32(resOff) != 7 || string(b) != ", " {
		t.Fatalf("read %d %q", e.u32(resOff), b)
	}
	e.expect(EINVAL, "fd_seek", f, 0, 3, resOff)
	e.expect(EINVAL, "fd_seek", f, uint64(math.MaxUint64), 0, resOff) // -1
	for _, bad := range badPtrs {
		e.expect(EFAULT, "fd_seek", f, 0, 0, bad)
		e.expect(EFAULT, "fd_tell", f, bad)
		e.expect(EFAULT, "fd_pread", f, iovOff, 1, 0, bad)
		e.expect(EFAULT, "fd_pwrite", f, iovOff, 1, 0, bad)
		e.expect(EFAULT, "fd_read", f, bad, 1, resOff)
	}
	// Positioned I/O, straight into the iovecs, not moving the offset.
	e.iov(iovOff, bufOff+300, 3, bufOff+400, 3)
	e.expect(ESUCCESS, "fd_pread", f, iovOff, 2, 7, resOff)
	if b, _ := e.mem.Read(bufOff+300, 3); e.u32(resOff) != 5 || string(b) != "world"[:3] {
		t.Fatalf("pread %d %q", e.u32(resOff), b)
	}
	e.expect(ESUCCESS, "fd_pread", f, iovOff, 2, 100, resOff)
	if e.u32(resOff) != 0 {
		t.Fatal("pread past the end")
	}
	e.expect(EINVAL, "fd_pread", f, iovOff, 2, 1<<63, resOff)
	e.expect(EINVAL, "fd_pwrite", f, iovOff, 2, math.MaxInt64-2, resOff)
	e.put(bufOff+300, []byte("HEL"))
	e.iov(iovOff, bufOff+300, 3)
	e.expect(ESUCCESS, "fd_pwrite", f, iovOff, 1, 0, resOff)
	e.expect(ESUCCESS, "fd_tell", f, resOff)
	if e.u64(resOff) != 12 || string(fsys.root.kids["f"].data) != "HELlo, world" {
		t.Fatalf("after pwrite: offset %d, %q", e.u64(resOff), fsys.root.kids["f"].data)
	}
	// Size, allocation, advice, sync.
	e.expect(ESUCCESS, "fd_filestat_set_size", f, 3)
	e.expect(EFBIG, "fd_filestat_set_size", f, 1<<63)
	e.expect(ESUCCESS, "fd_allocate", f, 10, 10)
	e.expect(EINVAL, "fd_allocate", f, 10, 0)
	e.expect(EFBIG, "fd_allocate", f, math.MaxInt64, 1)
	e.expect(ESUCCESS, "fd_filestat_get", f, resOff)
	if e.u64(resOff+32) != 20 {
		t.Fatalf("size %d", e.u64(resOff+32))
	}
	e.expect(ESUCCESS, "fd_advise", f, 0, 100, 5)
	e.expect(EINVAL, "fd_advise", f, 0, 100, 6)
	e.expect(ESUCCESS, "fd_sync", f)
	e.expect(ESUCCESS, "fd_datasync", f)
	e.expect(ESUCCESS, "fd_sync", preFD)
	fsys.fail = syscall.EIO
	e.expect(EIO, "fd_sync", f)
	e.expect(EIO, "fd_pread", f, iovOff, 1, 0, resOff)
	fsys.fail = nil
	// Flags: APPEND switches the file's mode; sync flags stay.
	e.expect(ESUCCESS, "fd_fdstat_set_flags", f, uint64(fd.FlagAppend))
	e.iov(iovOff, bufOff, 2)
	e.expect(ESUCCESS, "fd_seek", f, 0, 0, resOff)
	e.expect(ESUCCESS, "fd_write", f, iovOff, 1, resOff)
	if got := fsys.root.kids["f"].data; len(got) != 22 || string(got[20:]) != "he" {
		t.Fatalf("append wrote %q", got)
	}
	e.expect(ENOTSUP, "fd_fdstat_set_flags", f, uint64(fd.FlagSync))
	// Rights: dropped rights stay dropped.
	e.expect(ESUCCESS, "fd_fdstat_set_rights", f, fd.RightsFile&^(fd.RightFdRead|fd.RightFdWrite|fd.RightFdSeek|fd.RightFdFilestatSetSize|fd.RightFdAllocate), 0)
	e.expect(ENOTCAPABLE, "fd_read", f, iovOff, 1, resOff)
	e.expect(ENOTCAPABLE, "fd_write", f, iovOff, 1, resOff)
	e.expect(ENOTCAPABLE, "fd_pread", f, iovOff, 1, 0, resOff)
	e.expect(ENOTCAPABLE, "fd_pwrite", f, iovOff, 1, 0, resOff)
	e.expect(ENOTCAPABLE, "fd_seek", f, 1, 0, resOff)
	e.expect(ESUCCESS, "fd_seek", f, 0, 1, resOff) // a tell
	e.expect(ENOTCAPABLE, "fd_filestat_set_size", f, 0)
	e.expect(ENOTCAPABLE, "fd_allocate", f, 0, 1)
	e.expect(ENOTCAPABLE, "fd_fdstat_set_rights", f, fd.RightsFile, 0)
	// Directories are not files; streams cannot seek.
	for _, c := range []struct {
		name   string
		params []uint64
	}{
		{"fd_read", []uint64{preFD, iovOff, 1, resOff}},
		{"fd_write", []uint64{preFD, iovOff, 1, resOff}},
		{"fd_pread", []uint64{preFD, iovOff, 1, 0, resOff}},
		{"fd_pwrite", []uint64{preFD, iovOff, 1, 0, resOff}},
		{"fd_seek", []uint64{preFD, 0, 0, resOff}},
		{"fd_tell", []uint64{preFD, resOff}},
		{"fd_allocate", []uint64{preFD, 0, 1}},
		{"fd_advise", []uint64{preFD, 0, 1, 0}},
	} {
		e.expect(EBADF, c.name, c.params...)
		c.params[0] = 0
		if c.name != "fd_read" && c.name != "fd_write" {
			e.expect(ESPIPE, c.name, c.params...)
		}
	}
	e.expect(EISDIR, "fd_filestat_set_size", preFD, 0)
	e.expect(EISDIR, "fd_fdstat_set_flags", preFD, uint64(fd.FlagAppend))
	// A file is always ready for poll_oneoff.
	e.sub(bufOff, 7, tagFdRead, uint32(f), 0, 0)
	e.sub(bufOff+subSize, 8, tagFdWrite, uint32(f), 0, 0)
	e.expect(ESUCCESS, "poll_oneoff", bufOff, bufOff+1024, 2, resOff)
	if e.u32(resOff) != 2 {
		t.Fatalf("poll: %d events", e.u32(resOff))
	}
	e.expect(ESUCCESS, "fd_close", f)
	e.expect(EBADF, "fd_tell", f, resOff)
}

// readdir reads preFD's listing from cookie with a buf_len buffer.
func (e *env) readdir(dir, cookie uint64, bufLen uint32) []byte {
	e.t.Helper()
	e.expect(ESUCCESS, "fd_readdir", dir, bufOff, uint64(bufLen), cookie, resOff)
	used := e.u32(resOff)
	if used > bufLen {
		e.t.Fatalf("bufused %d > %d", used, bufLen)
	}
	b, _ := e.mem.Read(bufOff, used)
	return b
}

type dirent struct {
	next, ino uint64
	typ       byte
	name      string
}

// parseDirents decodes whole entries; rest is the cut-off tail.
func parseDirents(b []byte) (ents []dirent, rest int) {
	for len(b) >= direntSize {
		n := le.Uint32(b[16:])
		if uint64(len(b)) < direntSize+uint64(n) {
			break
		}
		ents = append(ents, dirent{le.Uint64(b), le.Uint64(b[8:]), b[20], string(b[direntSize : direntSize+n])})
		b = b[direntSize+n:]
	}
	return ents, len(b)
}

func TestReaddir(t *testing.T) { eachEngine(t, testReaddir) }

func testReaddir(t *testing.T, eng string) {
	e, _ := newFSEnv(t, eng)
	var want []string
	for i := range 50 {
		name := fmt.Sprintf("file-%02d", i)
		e.expect(ESUCCESS, "fd_close", e.open(preFD, name, oflagCreat, 0, 0))
		want = append(want, name)
	}
	p, n := e.str(pathOff, "sub")
	e.expect(ESUCCESS, "path_create_directory", preFD, p, n)
	want = append(want, "sub")
	ents, rest := parseDirents(e.readdir(preFD, 0, 8192))
	if rest != 0 || len(ents) != 53 || ents[0].name != "." || ents[1].name != ".." || ents[52].name != "sub" ||
		ents[52].typ != byte(fd.FiletypeDirectory) || ents[2].typ != byte(fd.FiletypeRegularFile) {
		t.Fatalf("listing %v (rest %d)", ents, rest)
	}
	e.expect(ESUCCESS, "path_filestat_get", preFD, 0, p, n, resOff)
	if ents[52].ino != e.u64(resOff+8) {
		t.Fatal("d_ino is not the filestat's ino")
	}
	// Small buffers (from one that holds only the longest entry): the last
	// entry is cut off exactly at buf_len, and the listing continues from
	// the last whole entry's d_next.
	for _, size := range []uint32{direntSize + 7, 40, 64, 100, 333} {
		var got []string
		cookie := uint64(0)
		for range 1000 {
			b := e.readdir(preFD, cookie, size)
			ents, rest := parseDirents(b)
			if len(b) < int(size) {
				if rest != 0 {
					t.Fatalf("size %d: a short read ends in a partial entry", size)
				}
				for _, d := range ents {
					got = append(got, d.name)
				}
				break
			}
			if len(ents) == 0 {
				t.Fatalf("size %d: no whole entry fits", size)
			}
			for _, d := range ents {
				got = append(got, d.name)
			}
			cookie = ents[len(ents)-1].next
		}
		if strings.Join(got[2:], ",") != strings.Join(want, ",") {
			t.Fatalf("size %d: listed %v", size, got)
		}
	}
	// A buffer too small for one entry is filled: the caller grows it.
	if b := e.readdir(preFD, 0, 10); len(b) != 10 {
		t.Fatalf("10-byte buffer: %d used", len(b))
	}
	if b := e.readdir(preFD, 1000, 100); len(b) != 0 {
		t.Fatal("a listing past its end is not empty")
	}
	e.expect(ESUCCESS, "fd_readdir", preFD, bufOff, 0, 0, resOff)
	for _, bad := range badPtrs {
		e.expect(EFAULT, "fd_readdir", preFD, bad, 100, 0, resOff)
		e.expect(EFAULT, "fd_readdir", preFD, bufOff, 100, 0, bad)
	}
	f := e.open(preFD, "file-00", 0, fd.RightFdRead, 0)
	e.expect(ENOTDIR, "fd_readdir", f, bufOff, 100, 0, resOff)
	e.expect(ENOTDIR, "fd_readdir", 0, bufOff, 100, 0, resOff)
	e.expect(EBADF, "fd_readdir", 99, bufOff, 100, 0, resOff)
	e.expect(ESUCCESS, "fd_fdstat_set_rights", preFD, fd.RightsDir&^fd.RightFdReaddir, fd.RightsAll)
	e.expect(ENOTCAPABLE, "fd_readdir", preFD, bufOff, 100, 0, resOff)
}

func TestFilestat(t *testing.T) { eachEngine(t, testFilestat) }

func testFilestat(t *testing.T, eng string) {
	e, fsys := newFSEnv(t, eng)
	f := e.open(preFD, "f", oflagCreat, fd.RightsFile, 0)
	e.put(bufOff, []byte("12345"))
	e.iov(iovOff, bufOff, 5)
	e.expect(ESUCCESS, "fd_write", f, iovOff, 1, resOff)
	node := fsys.root.kids["f"]
	e.expect(ESUCCESS, "fd_filestat_get", f, resOff)
	b, _ := e.mem.Read(resOff, filestatSize)
	want := make([]byte, filestatSize)
	putFilestat(want, node.stat())
	if !bytes.Equal(b, want) || le.Uint64(b[8:]) != node.ino || b[16] != byte(fd.FiletypeRegularFile) ||
		le.Uint64(b[24:]) != 1 || le.Uint64(b[32:]) != 5 || int64(le.Uint64(b[48:])) != node.mtim {
		t.Fatalf("filestat %x", b)
	}
	p, n := e.str(pathOff, "f")
	e.expect(ESUCCESS, "path_filestat_get", preFD, 0, p, n, resOff)
	if b2, _ := e.mem.Read(resOff, filestatSize); !bytes.Equal(b2, want) {
		t.Fatal("path_filestat_get differs from fd_filestat_get")
	}
	// Symlinks: followed only with SYMLINK_FOLLOW.
	t1, tn := e.str(path2, "f")
	l, ln := e.str(pathOff+100, "link")
	e.expect(ESUCCESS, "path_symlink", t1, tn, preFD, l, ln)
	e.expect(ESUCCESS, "path_filestat_get", preFD, 0, l, ln, resOff)
	if b, _ := e.mem.Read(resOff+16, 1); b[0] != byte(fd.FiletypeSymbolicLink) {
		t.Fatal("link not a symlink")
	}
	e.expect(ESUCCESS, "path_filestat_get", preFD, lookupSymlinkFollow, l, ln, resOff)
	if e.u64(resOff+8) != node.ino {
		t.Fatal("followed link is not the file")
	}
	// Times.
	e.expect(ESUCCESS, "fd_filestat_set_times", f, 111, 222, fstAtim|fstMtim)
	if node.atim != 111 || node.mtim != 222 {
		t.Fatalf("times %d %d", node.atim, node.mtim)
	}
	e.expect(ESUCCESS, "path_filestat_set_times", preFD, lookupSymlinkFollow, l, ln, 0, 333, fstMtim)
	if node.mtim != 333 {
		t.Fatal("path_filestat_set_times did not follow the link")
	}
	e.expect(ESUCCESS, "fd_filestat_set_times", preFD, 0, 0, fstAtimNow|fstMtimNow)
	e.expect(EINVAL, "fd_filestat_set_times", f, 0, 0, fstAtim|fstAtimNow)
	e.expect(EINVAL, "fd_filestat_set_times", f, 1<<63, 0, fstAtim)
	e.expect(ESUCCESS, "fd_filestat_get", preFD, resOff)
	if b, _ := e.mem.Read(resOff+16, 1); b[0] != byte(fd.FiletypeDirectory) {
		t.Fatal("preopen filestat")
	}
	for _, bad := range badPtrs {
		e.expect(EFAULT, "fd_filestat_get", f, bad)
	}
	// Readlink truncates to buf_len.
	e.str(path2, "0123456789")
	l2, ln2 := e.str(pathOff+200, "long")
	e.expect(ESUCCESS, "path_symlink", path2, 10, preFD, l2, ln2)
	e.expect(ESUCCESS, "path_readlink", preFD, l2, ln2, bufOff, 4, resOff)
	if b, _ := e.mem.Read(bufOff, 5); e.u32(resOff) != 4 || string(b) != "0123"+"5" {
		// bufOff+4 still holds what was there ("5" from the write above).
		t.Fatalf("readlink %d %q", e.u32(resOff), b)
	}
	e.expect(EINVAL, "path_readlink", preFD, p, n, bufOff, 64, resOff)
}

func TestDirectoryCalls(t *testing.T) { eachEngine(t, testDirectoryCalls) }

func testDirectoryCalls(t *testing.T, eng string) {
	e, fsys := newFSEnv(t, eng)
	call := func(want Errno, name string, paths ...string) {
		t.Helper()
		var params []uint64
		off := uint32(pathOff)
		for _, s := range paths {
			p, n := e.str(off, s)
			off += 256
			params = append(params, p, n)
		}
		switch name {
		case "path_rename":
			params = []uint64{preFD, params[0], params[1], preFD, params[2], params[3]}
		case "path_link":
			params = []uint64{preFD, 0, params[0], params[1], preFD, params[2], params[3]}
		case "path_symlink":
			params = []uint64{params[0], params[1], preFD, params[2], params[3]}
		default:
			params = append([]uint64{preFD}, params...)
		}
		e.expect(want, name, params...)
	}
	call(ESUCCESS, "path_create_directory", "d")
	call(EEXIST, "path_create_directory", "d")
	call(ENOENT, "path_create_directory", "x/y")
	call(ENOTCAPABLE, "path_create_directory", "../d")
	e.expect(ESUCCESS, "fd_close", e.open(preFD, "d/f", oflagCreat, 0, 0))
	call(ENOTEMPTY, "path_remove_directory", "d")
	call(EISDIR, "path_unlink_file", "d")
	call(ENOTDIR, "path_remove_directory", "d/f")
	call(ENOTDIR, "path_unlink_file", "d/f/")
	call(ESUCCESS, "path_link", "d/f", "g")
	if fsys.root.kids["g"] != fsys.root.kids["d"].kids["f"] {
		t.Fatal("link")
	}
	call(EEXIST, "path_link", "d/f", "g")
	call(ESUCCESS, "path_rename", "g", "h")
	call(ENOENT, "path_rename", "g", "h")
	call(EISDIR, "path_rename", "h", "d")
	call(ESUCCESS, "path_unlink_file", "h")
	call(ESUCCESS, "path_unlink_file", "d/f")
	call(ESUCCESS, "path_remove_directory", "d")
	call(ESUCCESS, "path_symlink", "d", "s")
	call(EEXIST, "path_symlink", "x", "s")
	call(ESUCCESS, "path_unlink_file", "s")
	if len(fsys.root.kids) != 0 {
		t.Fatalf("left %v", fsys.root.kids)
	}
	// Rename and link across preopens of different sources: EXDEV.
	other := newFakeFS()
	n, err := e.s.Files.Insert(other.preopen("/other"), 0)
	if err != nil {
		t.Fatal(err)
	}
	e.expect(ESUCCESS, "fd_close", e.open(preFD, "f", oflagCreat, 0, 0))
	p, pn := e.str(pathOff, "f")
	e.expect(EXDEV, "path_rename", preFD, p, pn, uint64(n), p, pn)
	e.expect(EXDEV, "path_link", preFD, 0, p, pn, uint64(n), p, pn)
	e.expect(ENOTDIR, "path_rename", preFD, p, pn, 0, p, pn)
	e.expect(EBADF, "path_rename", preFD, p, pn, 99, p, pn)
}

func TestPrestat(t *testing.T) { eachEngine(t, testPrestat) }

func testPrestat(t *testing.T, eng string) {
	e, _ := newFSEnv(t, eng)
	sub := &vfs.Preopen{Dir: newFakeFS().preopen("").Dir, Name: "/data/sub"}
	n, _ := e.s.Files.Insert(sub, 0)
	e.put(resOff, []byte{9, 9, 9, 9, 9, 9, 9, 9})
	e.expect(ESUCCESS, "fd_prestat_get", uint64(n), resOff)
	if b, _ := e.mem.Read(resOff, 8); !bytes.Equal(b, []byte{0, 0, 0, 0, 9, 0, 0, 0}) {
		t.Fatalf("prestat %x", b)
	}
	e.put(bufOff, bytes.Repeat([]byte{'#'}, 16))
	e.expect(ESUCCESS, "fd_prestat_dir_name", uint64(n), bufOff, 16)
	if b, _ := e.mem.Read(bufOff, 10); string(b) != "/data/sub#" {
		t.Fatalf("name %q", b)
	}
	e.expect(ENAMETOOLONG, "fd_prestat_dir_name", uint64(n), bufOff, 8)
	e.expect(ENAMETOOLONG, "fd_prestat_dir_name", uint64(n), bufOff, 0)
	for _, bad := range badPtrs {
		e.expect(EFAULT, "fd_prestat_get", preFD, bad)
		e.expect(EFAULT, "fd_prestat_dir_name", uint64(n), bad, 9)
	}
	// Not a preopen: EBADF (which ends the guest's scan), also for a
	// directory opened beneath one.
	d := e.open(preFD, ".", oflagDirectory, fd.RightsDir, 0)
	for _, x := range []uint64{0, d, 99} {
		e.expect(EBADF, "fd_prestat_get", x, resOff)
		e.expect(EBADF, "fd_prestat_dir_name", x, bufOff, 16)
	}
	// A preopen can be closed; what was opened from it stays usable.
	e.expect(ESUCCESS, "fd_close", preFD)
	e.expect(EBADF, "fd_prestat_get", preFD, resOff)
	e.expect(ESUCCESS, "fd_fdstat_get", d, resOff)
	e.expect(ESUCCESS, "fd_renumber", d, uint64(n))
	e.expect(EBADF, "fd_prestat_get", uint64(n), resOff)
}

func TestErrnoOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Errno
	}{
		{nil, ESUCCESS},
		{vfs.ErrNotCapable, ENOTCAPABLE},
		{fmt.Errorf("open x: %w", vfs.ErrNotCapable), ENOTCAPABLE},
		{fmt.Errorf("read: %w", vfs.ErrIntegrity), EIO},
		{fmt.Errorf("%w: %w", vfs.ErrIntegrity, syscall.ENOENT), EIO},
		{&fs.PathError{Op: "mkdir", Path: "x", Err: syscall.EEXIST}, EEXIST},
		{syscall.ENOTEMPTY, ENOTEMPTY},
		{syscall.ELOOP, ELOOP},
		{syscall.ENAMETOOLONG, ENAMETOOLONG},
		{syscall.EXDEV, EXDEV},
		{syscall.EILSEQ, EILSEQ},
		{syscall.EMLINK, EMLINK},
		{syscall.EROFS, EROFS},
		{syscall.EFBIG, EFBIG},
		{syscall.EDQUOT, EDQUOT},
		{syscall.Errno(4095), EIO},
		{errors.New("other"), EIO},
	} {
		if got := errnoOf(c.err); got != c.want {
			t.Errorf("errnoOf(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	// The table is WASI's, in order: spot-check against the spec.
	if EEXIST != 20 || EILSEQ != 25 || ENOENT != 44 || ENOTEMPTY != 55 || EROFS != 69 || EXDEV != 75 || ENOTCAPABLE != 76 {
		t.Fatal("errno numbering")
	}
}

// failingListing is a directory whose listing fails once it has returned
// its first entries (a host directory whose getdents fails part-way, a
// remote directory whose host broke the protocol).
type failingListing struct {
	vfs.Dir
	after uint64
}

func (d failingListing) ReadDir(cookie uint64, max int) ([]vfs.Dirent, error) {
	if cookie >= d.after {
		return nil, syscall.EIO
	}
	ents, err := d.Dir.ReadDir(cookie, max)
	for i := range ents {
		if ents[i].Next > d.after {
			ents = ents[:i]
			break
		}
	}
	return ents, err
}

// TestReaddirErrorNotEnd: a listing that fails after some entries were
// read is an error, never a short buffer, which the caller takes for the
// end of the directory (a silently truncated listing).
func TestReaddirErrorNotEnd(t *testing.T) { eachEngine(t, testReaddirErrorNotEnd) }

func testReaddirErrorNotEnd(t *testing.T, eng string) {
	fs := newFakeFS()
	root := fs.preopen("/")
	for i := range 10 {
		f, err := root.Open(fmt.Sprintf("file-%d", i), vfs.OpenOptions{Create: true, Write: true})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	root.Dir = failingListing{Dir: root.Dir, after: 4}
	e := newEnv(t, eng, fd.Null{}, fd.Null{}, fd.Null{}, root)
	got := e.call("fd_readdir", preFD, bufOff, 4096, 0, resOff)
	if got == ESUCCESS {
		ents, _ := parseDirents(e.readdir(preFD, 0, 4096))
		t.Fatalf("fd_readdir succeeded with %d of 12 entries in a 4096-byte buffer: the caller sees the end of the directory", len(ents))
	}
	if got != EIO {
		t.Fatalf("fd_readdir = errno %d, want EIO", got)
	}
	// What lies before the failure is still listed to a buffer it fills.
	if b := e.readdir(preFD, 0, 2*direntSize+3); len(b) != 2*direntSize+3 {
		t.Fatalf("a small buffer holds %d bytes", len(b))
	}
}
