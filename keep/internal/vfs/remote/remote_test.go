package remote

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/hostfs"
)

// socketPair is a connected pair of unix stream sockets, as the microVM
// channel's streams are byte streams.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b := conn(fds[0]), conn(fds[1])
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// testTree is a host directory with a file, a subdirectory and symlinks
// out of it, beside a secret the Keep must never reach.
func testTree(t testing.TB) (dir, secret string) {
	t.Helper()
	base := t.TempDir()
	secret = filepath.Join(base, "secret.txt")
	dir = filepath.Join(base, "dir")
	for _, err := range []error{
		os.WriteFile(secret, []byte("host secret"), 0o644),
		os.Mkdir(dir, 0o755),
		os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello from the host"), 0o644),
		os.Mkdir(filepath.Join(dir, "sub"), 0o755),
		os.Symlink("../secret.txt", filepath.Join(dir, "up")),
		os.Symlink(secret, filepath.Join(dir, "abs")),
		os.Symlink("/", filepath.Join(dir, "sub", "root")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir, secret
}

func hostRoot(t testing.TB, dir string, ro bool) vfs.Dir {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := hostfs.New(f, ro)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// serve serves dir over a socketpair and returns the Keep's end.
func serve(t *testing.T, dir string, ro bool) vfs.Dir {
	t.Helper()
	host, keep := socketPair(t)
	root := hostRoot(t, dir, ro)
	done := make(chan error, 1)
	go func() { done <- Serve(host, root); host.Close() }()
	d, err := Dial(keep, ro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		root.Close()
	})
	return d
}

// script is a workload's use of a directory: each step's outcome as text,
// so that the same script on hostfs itself and through the stream can be
// compared.
func script(d vfs.Dir) []string {
	var out []string
	say := func(what string, v any, err error) {
		if err != nil {
			out = append(out, fmt.Sprintf("%s: error %v", what, errName(err)))
		} else {
			out = append(out, fmt.Sprintf("%s: %v", what, v))
		}
	}
	open := func(path string, o vfs.OpenOptions) vfs.File {
		f, err := d.Open(path, o)
		say("open "+path, f != nil, err)
		if err != nil {
			return nil
		}
		vf, ok := f.(vfs.File)
		if !ok {
			f.Close()
			return nil
		}
		return vf
	}
	if f := open("a.txt", vfs.OpenOptions{Read: true}); f != nil {
		b := make([]byte, 5)
		n, err := f.ReadAt(b, 6)
		say("readat", string(b[:n]), err)
		n, err = f.Read(make([]byte, 100), false)
		say("read", n, err)
		n, err = f.Read(make([]byte, 100), false)
		say("read at end", n, err)
		pos, err := f.Seek(-4, io.SeekEnd)
		say("seek", pos, err)
		st, err := f.Stat()
		say("stat size", st.Size, err)
		say("rights", f.Rights() != 0, nil)
		f.Close()
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), maxData/16*2+100) // more than two messages
	if f := open("new.bin", vfs.OpenOptions{Create: true, Excl: true, Write: true, Read: true}); f != nil {
		n, err := f.Write(big, false)
		say("write big", n, err)
		got := make([]byte, len(big))
		n, err = f.ReadAt(got, 0)
		say("readat big", n == len(big) && bytes.Equal(got, big), err)
		say("truncate", nil, f.Truncate(10))
		say("allocate", nil, f.Allocate(0, 4096))
		st, err := f.Stat()
		say("size", st.Size, err)
		say("append", nil, f.SetAppend(true))
		n, err = f.Write([]byte("tail"), false)
		say("append write", n, err)
		say("sync", nil, f.Sync())
		say("datasync", nil, f.Datasync())
		say("settimes", nil, f.SetTimes(vfs.Times{SetAtim: true, Atim: 1e18, SetMtim: true, Mtim: 2e18}))
		st, err = f.Stat()
		say("times", [2]int64{st.Atim, st.Mtim}, err)
		f.Close()
	}
	open("new.bin", vfs.OpenOptions{Create: true, Excl: true, Write: true})
	say("mkdir", nil, d.Mkdir("made"))
	say("mkdir again", nil, d.Mkdir("made"))
	say("rename", nil, d.Rename("new.bin", d, "made/moved.bin"))
	say("link", nil, d.Link("made/moved.bin", false, d, "made/hard"))
	say("symlink", nil, d.Symlink("moved.bin", "made/sym"))
	target, err := d.Readlink("made/sym")
	say("readlink", target, err)
	st, err := d.StatAt("made/hard", false)
	say("statat nlink", st.Nlink, err)
	st, err = d.StatAt("made/sym", true)
	say("statat follow size", st.Size, err)
	say("settimesat", nil, d.SetTimesAt("made/hard", false, vfs.Times{MtimNow: true}))
	if sub, err := d.Open("made", vfs.OpenOptions{Directory: true, Read: true}); err == nil {
		sd := sub.(vfs.Dir)
		var names []string
		cookie := uint64(0)
		for {
			ents, err := sd.ReadDir(cookie, 2)
			if err != nil {
				say("readdir", nil, err)
				break
			}
			if len(ents) == 0 {
				break
			}
			for _, e := range ents {
				names = append(names, fmt.Sprintf("%s/%d", e.Name, e.Type))
				cookie = e.Next
			}
		}
		slices.Sort(names)
		say("readdir", names, nil)
		say("rename across", nil, sd.Rename("hard", d, "hard2"))
		st, err := sd.Stat()
		say("dir stat type", st.Type, err)
		say("dir sync", nil, sd.Sync())
		sub.Close()
	} else {
		say("open made", nil, err)
	}
	say("unlink", nil, d.Unlink("hard2"))
	say("rmdir nonempty", nil, d.Rmdir("made"))
	say("unlink dir", nil, d.Unlink("made"))
	// Escapes: every one refused as hostfs refuses it.
	for _, p := range []string{"../secret.txt", "/etc/passwd", "up", "abs", "sub/root/etc/passwd", "sub/../../secret.txt"} {
		open(p, vfs.OpenOptions{Read: true, Follow: true})
		_, err := d.StatAt(p, true)
		say("statat "+p, nil, err)
	}
	say("mkdir out", nil, d.Mkdir("../out"))
	_, err = d.Open("a.txt", vfs.OpenOptions{Directory: true})
	say("open file as dir", nil, err)
	return out
}

func errName(err error) string {
	var e syscall.Errno
	switch {
	case errors.Is(err, vfs.ErrNotCapable):
		return "ENOTCAPABLE"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.As(err, &e):
		return unix.ErrnoName(e)
	}
	return err.Error()
}

// TestRemoteMatchesHostfs runs the same script on hostfs itself and
// through a socketpair, each on a fresh copy of the tree: every outcome
// must be the same, and the host's secret beside the tree untouched.
func TestRemoteMatchesHostfs(t *testing.T) {
	for _, ro := range []bool{false, true} {
		t.Run(fmt.Sprintf("readonly=%v", ro), func(t *testing.T) {
			localDir, _ := testTree(t)
			local := hostRoot(t, localDir, ro)
			want := script(local)
			local.Close()
			remoteDir, secret := testTree(t)
			got := script(serve(t, remoteDir, ro))
			if !slices.Equal(got, want) {
				for i := range max(len(got), len(want)) {
					var g, w string
					if i < len(got) {
						g = got[i]
					}
					if i < len(want) {
						w = want[i]
					}
					if g != w {
						t.Errorf("step %d: through the stream %q, hostfs %q", i, g, w)
					}
				}
			}
			if b, err := os.ReadFile(secret); err != nil || string(b) != "host secret" {
				t.Errorf("secret: %q %v", b, err)
			}
			if ents, _ := os.ReadDir(filepath.Dir(secret)); len(ents) != 2 {
				t.Errorf("beside the tree: %v", ents)
			}
			if !ro && !slices.Contains(want, "readat big: true") {
				t.Errorf("script did not write and read back: %q", want)
			}
		})
	}
}

// hostile is a host that answers each request with the next reply of
// replies, whatever was asked.
func hostile(t *testing.T, replies ...[]byte) vfs.Dir {
	t.Helper()
	host, keep := socketPair(t)
	go func() {
		for _, r := range replies {
			if _, err := readMsg(host, nil); err != nil {
				return
			}
			host.Write(r)
		}
		// Out of replies: the host hangs up (a host that stalls instead
		// stalls the Keep's call, as it may stall anything).
		host.Close()
	}()
	d, err := Dial(keep, false)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// msg frames a reply body.
func msg(parts ...any) []byte {
	var e enc
	for _, p := range parts {
		switch v := p.(type) {
		case uint8:
			e.u8(v)
		case uint16:
			e.u16(v)
		case uint32:
			e.u32(v)
		case uint64:
			e.u64(v)
		case int64:
			e.i64(v)
		case string:
			e.str(v)
		case []byte:
			e.bytes(v)
		default:
			panic(fmt.Sprintf("msg part %T", p))
		}
	}
	var b bytes.Buffer
	writeMsg(&b, e.b)
	return b.Bytes()
}

var rootOK = msg(uint32(0), uint8(fd.FiletypeDirectory), uint64(0xff))
var openFileOK = msg(uint32(0), uint32(7), uint8(fd.FiletypeRegularFile), uint64(0xff))

// TestHostileReplies: replies that break the protocol end the connection
// (EIO, then EIO for every call), and never put more in the Keep than it
// asked for.
func TestHostileReplies(t *testing.T) {
	cases := []struct {
		name string
		// do is the Keep's call after the root (and, with file, an open).
		file  bool
		reply []byte
		do    func(vfs.Dir, vfs.File) error
	}{
		{"read returns more than asked", true, msg(uint32(0), uint8(0), []byte("0123456789")), func(_ vfs.Dir, f vfs.File) error {
			b := make([]byte, 4)
			n, err := f.Read(b, false)
			if n > 4 {
				return fmt.Errorf("read %d", n)
			}
			return err
		}},
		{"empty read that is not EOF", true, msg(uint32(0), uint8(0), []byte{}), func(_ vfs.Dir, f vfs.File) error {
			_, err := f.Read(make([]byte, 4), false)
			return err
		}},
		{"write claims more than sent", true, msg(uint32(0), uint32(100)), func(_ vfs.Dir, f vfs.File) error {
			_, err := f.Write([]byte("abc"), false)
			return err
		}},
		{"readdir returns more than asked", false, msg(uint32(0), uint32(3),
			uint64(1), uint64(1), uint8(4), "a", uint64(2), uint64(2), uint8(4), "b", uint64(3), uint64(3), uint8(4), "c"),
			func(d vfs.Dir, _ vfs.File) error { _, err := d.ReadDir(0, 2); return err }},
		{"readdir name with a slash", false, msg(uint32(0), uint32(1), uint64(1), uint64(1), uint8(4), "../x"),
			func(d vfs.Dir, _ vfs.File) error { _, err := d.ReadDir(0, 2); return err }},
		{"unknown file type", false, msg(uint32(0), uint64(1), uint64(1), uint8(99), uint64(1), uint64(0), int64(0), int64(0), int64(0)),
			func(d vfs.Dir, _ vfs.File) error { _, err := d.StatAt("x", false); return err }},
		{"unknown status", false, msg(uint32(0x20000)), func(d vfs.Dir, _ vfs.File) error { return d.Mkdir("x") }},
		{"error with trailing data", false, msg(uint32(2), uint32(0)), func(d vfs.Dir, _ vfs.File) error { return d.Mkdir("x") }},
		{"trailing data", false, msg(uint32(0), uint8(1)), func(d vfs.Dir, _ vfs.File) error { return d.Mkdir("x") }},
		{"oversized message", false, []byte{0xff, 0xff, 0xff, 0xff}, func(d vfs.Dir, _ vfs.File) error { return d.Mkdir("x") }},
		{"open returns the root handle", false, msg(uint32(0), uint32(0), uint8(fd.FiletypeRegularFile), uint64(0)),
			func(d vfs.Dir, _ vfs.File) error { _, err := d.Open("x", vfs.OpenOptions{}); return err }},
		{"O_DIRECTORY open returns a file", false, msg(uint32(0), uint32(3), uint8(fd.FiletypeRegularFile), uint64(0)),
			func(d vfs.Dir, _ vfs.File) error { _, err := d.Open("x", vfs.OpenOptions{Directory: true}); return err }},
		{"negative seek", true, msg(uint32(0), int64(-1)), func(_ vfs.Dir, f vfs.File) error { _, err := f.Seek(0, 0); return err }},
		{"readlink too long", false, msg(uint32(0), strings.Repeat("x", vfs.MaxPath+1)),
			func(d vfs.Dir, _ vfs.File) error { _, err := d.Readlink("x"); return err }},
		{"cut short", false, []byte{0, 0, 0, 9, 0, 0}, func(d vfs.Dir, _ vfs.File) error { return d.Mkdir("x") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			replies := [][]byte{rootOK}
			if tc.file {
				replies = append(replies, openFileOK)
			}
			d := hostile(t, append(replies, tc.reply)...)
			var f vfs.File
			if tc.file {
				o, err := d.Open("f", vfs.OpenOptions{Read: true, Write: true})
				if err != nil {
					t.Fatal(err)
				}
				f = o.(vfs.File)
			}
			if err := tc.do(d, f); !errors.Is(err, syscall.EIO) {
				t.Fatalf("got %v, want EIO", err)
			}
			if err := d.Mkdir("y"); !errors.Is(err, syscall.EIO) {
				t.Fatalf("after the violation: %v, want EIO", err)
			}
		})
	}
	// A status the protocol knows is the call's error, and the
	// connection goes on.
	d := hostile(t, rootOK, msg(uint32(syscall.EEXIST)), msg(uint32(statusNotCapable)), msg(uint32(0)))
	if err := d.Mkdir("x"); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("EEXIST: %v", err)
	}
	if err := d.Mkdir("x"); !errors.Is(err, vfs.ErrNotCapable) {
		t.Fatalf("not capable: %v", err)
	}
	if err := d.Mkdir("x"); err != nil {
		t.Fatalf("ok: %v", err)
	}
}

// TestReadOnlyRefusedInKeep: a read-only directory refuses every change,
// though the host here says yes to everything: file changes without
// asking the host, path changes after it (so that a path that does not
// resolve fails as hostfs says, before EROFS).
func TestReadOnlyRefusedInKeep(t *testing.T) {
	host, keep := socketPair(t)
	asked := make(chan byte, 64)
	go func() {
		for {
			req, err := readMsg(host, nil)
			if err != nil {
				return
			}
			asked <- req[0]
			switch req[0] {
			case opRoot:
				host.Write(rootOK)
			case opOpen:
				host.Write(openFileOK)
			default:
				host.Write(msg(uint32(0)))
			}
		}
	}()
	d, err := Dial(keep, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	<-asked
	o, err := d.Open("f", vfs.OpenOptions{Read: true})
	if err != nil {
		t.Fatal(err)
	}
	<-asked
	f := o.(vfs.File)
	for name, err := range map[string]error{
		"mkdir": d.Mkdir("x"), "rmdir": d.Rmdir("x"), "unlink": d.Unlink("x"), "symlink": d.Symlink("a", "b"),
		"rename": d.Rename("a", d, "b"), "link": d.Link("a", false, d, "b"), "settimesat": d.SetTimesAt("a", false, vfs.Times{MtimNow: true}),
		"settimes": d.SetTimes(vfs.Times{MtimNow: true}), "truncate": f.Truncate(0), "allocate": f.Allocate(0, 1),
		"file settimes": f.SetTimes(vfs.Times{MtimNow: true}),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", name, err)
		}
	}
	if _, err := f.Write([]byte("x"), false); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write: %v", err)
	}
	for _, o := range []vfs.OpenOptions{{Write: true}, {Create: true}, {Trunc: true}, {Append: true}} {
		if _, err := d.Open("f", o); !errors.Is(err, syscall.EROFS) {
			t.Errorf("open %+v: %v", o, err)
		}
	}
	for len(asked) > 0 {
		switch op := <-asked; op {
		case opTruncate, opAllocate, opSetTimes, opWrite, opWriteAt:
			t.Errorf("the host was asked op %d", op)
		}
	}
}

// TestServerRefusesMalformed: a request that breaks the protocol ends
// Serve with an error and changes nothing; requests for handles the Keep
// does not hold are EBADF.
func TestServerRefusesMalformed(t *testing.T) {
	dir, _ := testTree(t)
	for name, body := range map[string][]byte{
		"unknown op":         {0xee, 0, 0, 0, 0},
		"short":              {opMkdir, 0, 0},
		"path too long":      append([]byte{opMkdir, 0, 0, 0, 0, 0, 0, 0x10, 1}, bytes.Repeat([]byte("x"), 4097)...),
		"NUL in path":        {opMkdir, 0, 0, 0, 0, 0, 0, 0, 3, 'a', 0, 'b'},
		"trailing":           {opMkdir, 0, 0, 0, 0, 0, 0, 0, 1, 'n', 9},
		"bad open flags":     {opOpen, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0xff, 0xff},
		"bad whence":         {opSeek, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 7},
		"bad bool":           {opStatAt, 0, 0, 0, 0, 0, 0, 0, 1, 'a', 2},
		"read too long data": {opWrite, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff},
	} {
		t.Run(name, func(t *testing.T) {
			var in bytes.Buffer
			writeMsg(&in, body)
			var out bytes.Buffer
			root := hostRoot(t, dir, false)
			defer root.Close()
			err := Serve(struct {
				io.Reader
				io.Writer
			}{&in, &out}, root)
			if !errors.Is(err, errProtocol) {
				t.Fatalf("Serve: %v, want a protocol error", err)
			}
			if out.Len() != 0 {
				t.Fatalf("replied %q", out.Bytes())
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "n")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a malformed mkdir made n: %v", err)
	}
	// Handles: unknown, the root closed, a file used as a directory.
	var e enc
	e.u8(opClose)
	e.u32(0)
	s := &server{objs: map[uint32]fd.File{0: hostRoot(t, dir, false)}, next: 1}
	defer s.closeAll()
	for name, req := range map[string][]byte{
		"close root":   e.b,
		"unknown stat": {opStat, 0, 0, 0, 9},
		"read of dir":  {opRead, 0, 0, 0, 0, 0, 0, 0, 4},
	} {
		reply, err := s.handle(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := &dec{b: reply}
		if st := r.u32(); st != uint32(syscall.EBADF) && st != uint32(syscall.EISDIR) {
			t.Errorf("%s: status %d", name, st)
		}
	}
}

// TestCloseRootKeepsObjectsBeneath: a workload that closes its preopen
// keeps using the files and directories it opened beneath it, as on a
// host directory (before, closing the served directory closed the stream
// and every such object failed with EBADF); the stream ends with the last
// object's close.
func TestCloseRootKeepsObjectsBeneath(t *testing.T) {
	dir, _ := testTree(t)
	host, keep := socketPair(t)
	root := hostRoot(t, dir, false)
	t.Cleanup(func() { root.Close() })
	done := make(chan error, 1)
	go func() { done <- Serve(host, root); host.Close() }()
	d, err := Dial(keep, false)
	if err != nil {
		t.Fatal(err)
	}
	f, err := d.Open("a.txt", vfs.OpenOptions{Read: true})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := d.Open("sub", vfs.OpenOptions{Directory: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, syscall.EBADF) {
		t.Errorf("second close of the directory: %v, want EBADF", err)
	}
	b := make([]byte, 5)
	if n, err := f.(vfs.File).ReadAt(b, 0); err != nil || string(b[:n]) != "hello" {
		t.Fatalf("read after the directory's close: %q, %v", b[:n], err)
	}
	g, err := sub.(vfs.Dir).Open("new.txt", vfs.OpenOptions{Write: true, Create: true})
	if err != nil {
		t.Fatalf("open beneath a subdirectory after the directory's close: %v", err)
	}
	for _, c := range []interface{ Close() error }{f, sub} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the stream ended with an object still open (Serve: %v)", err)
	default:
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil { // hangs if the last close keeps the stream
		t.Errorf("Serve: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "new.txt")); err != nil {
		t.Error(err)
	}
}
