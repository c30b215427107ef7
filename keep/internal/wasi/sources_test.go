package wasi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/hostfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/memfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed"
	"github.com/enarx-go/enarx/keep/internal/vfs/sealed/keys"
)

// sources returns the root directory of each real source (and the in-test
// one), fresh and empty.
func sources(t *testing.T) map[string]func(t *testing.T) vfs.Dir {
	return map[string]func(t *testing.T) vfs.Dir{
		"fake": func(t *testing.T) vfs.Dir { return newFakeFS().preopen("/").Dir },
		"memory": func(t *testing.T) vfs.Dir {
			d, err := memfs.New(8<<20, false)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"host": hostDir,
		"sealed": func(t *testing.T) vfs.Dir {
			key, err := keys.NewStatic(bytes.Repeat([]byte{7}, 32), "test", slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			v, err := sealed.Open(context.Background(), hostDir(t), key, sealed.Options{Name: "data", Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { v.Close() })
			return v.Root()
		},
	}
}

// hostDir returns a new empty host directory.
func hostDir(t *testing.T) vfs.Dir {
	f, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := hostfs.New(f, false)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSources runs one guest's worth of file-system calls, through the
// WASI layer only, over every source on every engine: the calls' results
// and errnos must not depend on where the files are.
func TestSources(t *testing.T) {
	for name, mk := range sources(t) {
		t.Run(name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, eng string) {
				root := mk(t)
				e := newEnv(t, eng, fd.Null{}, fd.Null{}, fd.Null{}, &vfs.Preopen{Dir: root, Name: "/"})
				t.Cleanup(func() { e.s.Files.CloseAll() })
				scenario(t, e)
			})
		})
	}
}

// scenario is what a program that keeps files does, checked call by call.
func scenario(t *testing.T, e *env) {
	call := func(want Errno, name string, paths ...string) {
		t.Helper()
		var ps []uint64
		off := uint32(pathOff)
		for _, s := range paths {
			p, n := e.str(off, s)
			off += 256
			ps = append(ps, p, n)
		}
		var params []uint64
		switch name {
		case "path_rename":
			params = []uint64{preFD, ps[0], ps[1], preFD, ps[2], ps[3]}
		case "path_link":
			params = []uint64{preFD, 0, ps[0], ps[1], preFD, ps[2], ps[3]}
		case "path_symlink":
			params = []uint64{ps[0], ps[1], preFD, ps[2], ps[3]}
		case "path_filestat_get":
			params = []uint64{preFD, 0, ps[0], ps[1], resOff}
		case "path_readlink":
			params = []uint64{preFD, ps[0], ps[1], bufOff, 100, resOff}
		default:
			params = append([]uint64{preFD}, ps...)
		}
		e.expect(want, name, params...)
	}
	rw := fd.RightFdRead | fd.RightFdWrite | fd.RightFdSeek | fd.RightFdTell | fd.RightFdFilestatGet | fd.RightFdFilestatSetSize | fd.RightFdSync | fd.RightFdDatasync
	call(ESUCCESS, "path_create_directory", "data")
	f := e.open(preFD, "data/db", oflagCreat|oflagExcl, rw, 0)
	// Many small writes, each followed by fd_sync (a database's journal).
	var want []byte
	for i := range 50 {
		rec := fmt.Appendf(nil, "record %03d\n", i)
		want = append(want, rec...)
		e.put(bufOff, rec)
		e.iov(iovOff, bufOff, uint32(len(rec)))
		e.expect(ESUCCESS, "fd_write", f, iovOff, 1, resOff)
		e.expect(ESUCCESS, "fd_sync", f)
	}
	// Positioned rewrite of record 7, then read it all back.
	e.put(bufOff, []byte("RECORD 007\n"))
	e.iov(iovOff, bufOff, 11)
	e.expect(ESUCCESS, "fd_pwrite", f, iovOff, 1, 7*11, resOff)
	copy(want[7*11:], "RECORD 007\n")
	e.expect(ESUCCESS, "fd_close", f)
	f = e.open(preFD, "data/db", 0, rw, 0)
	e.iov(iovOff, bufOff, 300, bufOff+300, 1000)
	e.expect(ESUCCESS, "fd_pread", f, iovOff, 2, 0, resOff)
	if got, _ := e.mem.Read(bufOff, e.u32(resOff)); string(got) != string(want) {
		t.Fatalf("read back %d bytes %q", len(got), got)
	}
	e.expect(ESUCCESS, "fd_filestat_get", f, resOff)
	if b, _ := e.mem.Read(resOff, filestatSize); b[16] != byte(fd.FiletypeRegularFile) || le.Uint64(b[32:]) != uint64(len(want)) {
		t.Fatalf("filestat %x", b)
	}
	e.expect(ESUCCESS, "fd_filestat_set_size", f, 11)
	e.expect(ESUCCESS, "fd_seek", f, 0, 2, resOff)
	if e.u64(resOff) != 11 {
		t.Fatalf("end at %d", e.u64(resOff))
	}
	e.expect(ESUCCESS, "fd_close", f)
	// Replace atomically: write a temporary file, rename it over.
	tmp := e.open(preFD, "data/db.tmp", oflagCreat|oflagTrunc, rw, 0)
	e.put(bufOff, []byte("new"))
	e.iov(iovOff, bufOff, 3)
	e.expect(ESUCCESS, "fd_write", tmp, iovOff, 1, resOff)
	e.expect(ESUCCESS, "fd_datasync", tmp)
	e.expect(ESUCCESS, "fd_close", tmp)
	call(ESUCCESS, "path_rename", "data/db.tmp", "data/db")
	call(ESUCCESS, "path_filestat_get", "data/db")
	if e.u64(resOff+32) != 3 {
		t.Fatalf("renamed file size %d", e.u64(resOff+32))
	}
	call(ENOENT, "path_filestat_get", "data/db.tmp")
	// Listing with cookies through a small buffer.
	for i := range 20 {
		e.expect(ESUCCESS, "fd_close", e.open(preFD, fmt.Sprintf("data/f%02d", i), oflagCreat, 0, 0))
	}
	d := e.open(preFD, "data", oflagDirectory, fd.RightsDir, 0)
	var names []string
	cookie := uint64(0)
	for range 100 {
		b := e.readdir(d, cookie, 64)
		ents, _ := parseDirents(b)
		for _, de := range ents {
			names = append(names, de.name)
		}
		if len(b) < 64 {
			break
		}
		cookie = ents[len(ents)-1].next
	}
	sort.Strings(names)
	if len(names) != 23 || names[0] != "." || names[1] != ".." || names[2] != "db" || names[22] != "f19" {
		t.Fatalf("listed %v", names)
	}
	// Links, symlinks, escapes.
	call(ESUCCESS, "path_symlink", "data/db", "link")
	call(ESUCCESS, "path_readlink", "link")
	if b, _ := e.mem.Read(bufOff, e.u32(resOff)); string(b) != "data/db" {
		t.Fatalf("readlink %q", b)
	}
	l := e.open(preFD, "link", 0, fd.RightFdRead, 0)
	e.expect(ESUCCESS, "fd_close", l)
	p, n := e.str(pathOff, "link")
	e.expect(ELOOP, "path_open", preFD, 0, p, n, 0, fd.RightFdRead, 0, 0, resOff)
	call(ESUCCESS, "path_symlink", "../..", "data/up")
	for _, esc := range []string{"/etc/passwd", "../x", "data/../../x", "data/up/x"} {
		p, n := e.str(pathOff, esc)
		e.expect(ENOTCAPABLE, "path_open", preFD, 1, p, n, 0, fd.RightFdRead, 0, 0, resOff)
	}
	p, n = e.str(pathOff, "../..")
	e.expect(ENOTCAPABLE, "path_open", d, 1, p, n, 0, fd.RightFdRead, 0, 0, resOff) // above the preopen
	// Names: one component longer than 255 bytes, a whole path longer
	// than 4096; a name of 255 bytes is fine.
	call(ENAMETOOLONG, "path_create_directory", strings.Repeat("n", vfs.MaxName+1))
	call(ENAMETOOLONG, "path_filestat_get", "data/"+strings.Repeat("n", vfs.MaxName+1))
	call(ENAMETOOLONG, "path_create_directory", strings.Repeat("d/", vfs.MaxPath/2)+"x")
	call(ESUCCESS, "path_create_directory", strings.Repeat("n", vfs.MaxName))
	call(ESUCCESS, "path_remove_directory", strings.Repeat("n", vfs.MaxName))
	call(ENOTEMPTY, "path_remove_directory", "data")
	call(ENOTDIR, "path_remove_directory", "link")
	// Clean up everything through the WASI calls.
	call(ESUCCESS, "path_unlink_file", "link")
	call(ESUCCESS, "path_unlink_file", "data/up")
	call(ESUCCESS, "path_unlink_file", "data/db")
	for i := range 20 {
		call(ESUCCESS, "path_unlink_file", fmt.Sprintf("data/f%02d", i))
	}
	e.expect(ESUCCESS, "fd_close", d)
	call(ESUCCESS, "path_remove_directory", "data")
	if b := e.readdir(preFD, 0, 1024); len(b) != 2*direntSize+3 {
		ents, _ := parseDirents(b)
		t.Fatalf("root not empty: %v", ents)
	}
}

// TestHostSourceEscapes: over a host directory, no path a guest passes
// reaches a file next to the preopen.
func TestHostSourceEscapes(t *testing.T) { eachEngine(t, testHostSourceEscapes) }

func testHostSourceEscapes(t *testing.T, eng string) {
	parent := t.TempDir()
	inside := filepath.Join(parent, "inside")
	if err := os.Mkdir(inside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(parent, "secret")
	if err := os.WriteFile(secret, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(inside, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(inside, "abs")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(inside)
	if err != nil {
		t.Fatal(err)
	}
	root, err := hostfs.New(f, false)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, eng, fd.Null{}, fd.Null{}, fd.Null{}, &vfs.Preopen{Dir: root, Name: "/"})
	t.Cleanup(func() { e.s.Files.CloseAll() })
	for _, path := range []string{"../secret", "/secret", secret, "out", "abs", "./out/", "x/../../secret"} {
		for _, oflags := range []uint32{0, oflagTrunc, oflagCreat} {
			p, n := e.str(pathOff, path)
			got := e.call("path_open", preFD, 1, p, n, uint64(oflags), fd.RightsFile, 0, 0, resOff)
			if got == ESUCCESS {
				t.Errorf("path_open(%q, oflags %d) succeeded", path, oflags)
			}
		}
		p, n := e.str(pathOff, path)
		e.call("path_unlink_file", preFD, p, n)
		e.call("path_filestat_set_times", preFD, 1, p, n, 0, 0, fstMtimNow)
		if got := e.call("path_filestat_get", preFD, 1, p, n, resOff); got == ESUCCESS {
			t.Errorf("path_filestat_get(%q) succeeded", path)
		}
	}
	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Fatalf("the file outside changed: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 2 {
		var names []string
		for _, de := range ents {
			names = append(names, de.Name())
		}
		t.Fatalf("outside the preopen: %s", strings.Join(names, " "))
	}
}

// TestReadOnlySources: a read-only preopen (Enarx.toml readonly = true)
// reads but refuses every change with EROFS, through the WASI calls.
func TestReadOnlySources(t *testing.T) {
	mk := map[string]func(t *testing.T) vfs.Dir{
		"memory": func(t *testing.T) vfs.Dir {
			d, err := memfs.New(1<<20, true)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"host": func(t *testing.T) vfs.Dir {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("ro"), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			d, err := hostfs.New(f, true)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
	for name, mk := range mk {
		t.Run(name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, eng string) {
				e := newEnv(t, eng, fd.Null{}, fd.Null{}, fd.Null{}, &vfs.Preopen{Dir: mk(t), Name: "/"})
				t.Cleanup(func() { e.s.Files.CloseAll() })
				p, n := e.str(pathOff, "g")
				e.expect(EROFS, "path_create_directory", preFD, p, n)
				e.expect(EROFS, "path_open", preFD, 0, p, n, oflagCreat, fd.RightFdWrite, 0, 0, resOff)
				t1, tn := e.str(path2, "f")
				e.expect(EROFS, "path_symlink", t1, tn, preFD, p, n)
				if name == "host" {
					e.expect(EROFS, "path_open", preFD, 0, t1, tn, 0, fd.RightFdWrite, 0, 0, resOff)
					e.expect(EROFS, "path_open", preFD, 0, t1, tn, oflagTrunc, fd.RightFdRead, 0, 0, resOff)
					e.expect(EROFS, "path_unlink_file", preFD, t1, tn)
					f := e.open(preFD, "f", 0, fd.RightFdRead, 0)
					e.iov(iovOff, bufOff, 10)
					e.expect(ESUCCESS, "fd_read", f, iovOff, 1, resOff)
					if b, _ := e.mem.Read(bufOff, e.u32(resOff)); string(b) != "ro" {
						t.Fatalf("read %q", b)
					}
				}
			})
		})
	}
}
