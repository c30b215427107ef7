package hostfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// env is a host directory under test: root is what the Dir is over,
// outside a sibling tree that must never change (the sentinel).
type env struct {
	base, root, outside string
	d                   vfs.Dir
}

func newEnv(t testing.TB, readonly bool, setup func(root, outside string)) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	must(t, os.Mkdir(e.root, 0o755))
	must(t, os.MkdirAll(filepath.Join(e.outside, "sub"), 0o755))
	must(t, os.WriteFile(filepath.Join(e.outside, "secret"), []byte("OUTSIDE"), 0o644))
	must(t, os.WriteFile(filepath.Join(e.outside, "sub", "secret"), []byte("OUTSIDE"), 0o644))
	if setup != nil {
		setup(e.root, e.outside)
	}
	f, err := os.Open(e.root)
	must(t, err)
	d, err := New(f, readonly)
	must(t, err)
	e.d = d
	t.Cleanup(func() { d.Close() })
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot describes everything under base except root's contents:
// names, types, sizes, modes, times and file contents.
func (e *env) snapshot(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(e.base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(p, e.root+"/") {
			return filepath.SkipDir
		}
		b.WriteString(p)
		b.WriteString(" " + fi.Mode().String())
		if p != e.base && p != e.root {
			b.WriteString(" " + fi.ModTime().String())
		}
		if fi.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(c))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func isErr(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

func open(t testing.TB, d vfs.Dir, path string, o vfs.OpenOptions) fd.File {
	t.Helper()
	f, err := d.Open(path, o)
	if err != nil {
		t.Fatalf("Open(%q, %+v): %v", path, o, err)
	}
	return f
}

var (
	rd     = vfs.OpenOptions{Read: true, Follow: true}
	wr     = vfs.OpenOptions{Read: true, Write: true, Follow: true}
	create = vfs.OpenOptions{Read: true, Write: true, Create: true, Follow: true}
	excl   = vfs.OpenOptions{Read: true, Write: true, Create: true, Excl: true, Follow: true}
	dirO   = vfs.OpenOptions{Read: true, Directory: true, Follow: true}
)

func TestNew(t *testing.T) {
	if _, err := New(nil, false); err == nil {
		t.Error("New(nil) succeeded")
	}
	base := t.TempDir()
	p := filepath.Join(base, "f")
	must(t, os.WriteFile(p, nil, 0o644))
	f, err := os.Open(p)
	must(t, err)
	if _, err := New(f, false); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("New(regular file) = %v, want a not-a-directory error", err)
	}
	// New took ownership: the descriptor is closed.
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("the host descriptor is still open after New: %v", err)
	}
	f, err = os.Open(base)
	must(t, err)
	d, err := New(f, false)
	must(t, err)
	if d.Filetype() != fd.FiletypeDirectory || d.Rights()&fd.RightPathCreateFile == 0 || d.Rights()&fd.RightFdReaddir == 0 {
		t.Errorf("Filetype %v Rights %#x", d.Filetype(), d.Rights())
	}
	must(t, d.Close())
	if err := d.Close(); !isErr(err, syscall.EBADF) {
		t.Errorf("second Close = %v, want EBADF", err)
	}
	if _, err := d.StatAt("f", true); !isErr(err, syscall.EBADF) {
		t.Errorf("StatAt after Close = %v, want EBADF", err)
	}
}

func TestFileIO(t *testing.T) {
	e := newEnv(t, false, nil)
	f := open(t, e.d, "f", excl).(vfs.File)
	defer f.Close()
	if f.Filetype() != fd.FiletypeRegularFile || f.Rights()&fd.RightFdWrite == 0 {
		t.Errorf("Filetype %v Rights %#x", f.Filetype(), f.Rights())
	}
	if h, ready := f.PollFD(false); h != -1 || !ready {
		t.Errorf("PollFD = %d, %v", h, ready)
	}
	if n, err := f.Write([]byte("hello world"), false); n != 11 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if off, err := f.Seek(0, io.SeekCurrent); off != 11 || err != nil {
		t.Errorf("Seek(0, cur) = %d, %v", off, err)
	}
	if _, err := f.Seek(-1, io.SeekStart); !isErr(err, syscall.EINVAL) {
		t.Errorf("Seek(-1) = %v, want EINVAL", err)
	}
	if _, err := f.Seek(0, 7); !isErr(err, syscall.EINVAL) {
		t.Errorf("Seek whence 7 = %v, want EINVAL", err)
	}
	if off, err := f.Seek(6, io.SeekStart); off != 6 || err != nil {
		t.Fatalf("Seek(6) = %d, %v", off, err)
	}
	buf := make([]byte, 64)
	if n, err := f.Read(buf, false); n != 5 || err != nil || string(buf[:n]) != "world" {
		t.Errorf("Read = %d %q %v", n, buf[:n], err)
	}
	if n, err := f.Read(buf, false); n != 0 || err != io.EOF {
		t.Errorf("Read at end = %d, %v, want 0, EOF", n, err)
	}
	if n, err := f.ReadAt(buf[:5], 0); n != 5 || err != nil || string(buf[:5]) != "hello" {
		t.Errorf("ReadAt = %d %q %v", n, buf[:5], err)
	}
	if n, err := f.ReadAt(buf, 100); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past end = %d, %v", n, err)
	}
	if n, err := f.WriteAt([]byte("J"), 0); n != 1 || err != nil {
		t.Errorf("WriteAt = %d, %v", n, err)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 11 {
		t.Errorf("WriteAt moved the offset to %d", off)
	}
	must(t, f.Truncate(5))
	if st, err := f.Stat(); err != nil || st.Size != 5 || st.Type != fd.FiletypeRegularFile || st.Nlink != 1 {
		t.Errorf("Stat = %+v, %v", st, err)
	}
	if err := f.Truncate(-1); !isErr(err, syscall.EINVAL) {
		t.Errorf("Truncate(-1) = %v", err)
	}
	must(t, f.Allocate(0, 100))
	if st, _ := f.Stat(); st.Size != 100 {
		t.Errorf("size after Allocate(0, 100) = %d", st.Size)
	}
	must(t, f.Allocate(10, 10)) // inside: the size does not shrink
	if st, _ := f.Stat(); st.Size != 100 {
		t.Errorf("size after Allocate(10, 10) = %d", st.Size)
	}
	for _, a := range [][2]int64{{-1, 10}, {0, 0}, {0, -5}} {
		if err := f.Allocate(a[0], a[1]); !isErr(err, syscall.EINVAL) {
			t.Errorf("Allocate(%d, %d) = %v, want EINVAL", a[0], a[1], err)
		}
	}
	if err := f.Allocate(1<<62, 1<<62); !isErr(err, syscall.EFBIG) {
		t.Errorf("Allocate overflowing = %v, want EFBIG", err)
	}
	must(t, f.SetAppend(true))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("END"), false); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st.Size != 103 {
		t.Errorf("append wrote elsewhere: size %d", st.Size)
	}
	must(t, f.SetAppend(false))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("X"), false); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st.Size != 103 {
		t.Errorf("write after SetAppend(false) appended: size %d", st.Size)
	}
	must(t, f.SetTimes(vfs.Times{SetAtim: true, Atim: 1e9, SetMtim: true, Mtim: 2e9 + 5}))
	if st, _ := f.Stat(); st.Atim != 1e9 || st.Mtim != 2e9+5 {
		t.Errorf("times %d %d", st.Atim, st.Mtim)
	}
	must(t, f.SetTimes(vfs.Times{MtimNow: true}))
	if st, _ := f.Stat(); st.Atim != 1e9 || time.Since(time.Unix(0, st.Mtim)) > time.Hour {
		t.Errorf("after MtimNow: times %d %d", st.Atim, st.Mtim)
	}
	must(t, f.Sync())
	must(t, f.Datasync())
	got, err := os.ReadFile(filepath.Join(e.root, "f"))
	must(t, err)
	want := append([]byte("Xello"), make([]byte, 95)...)
	want = append(want, "END"...)
	if !bytes.Equal(got, want) {
		t.Errorf("host file = %q, want %q", got, want)
	}
	must(t, f.Close())
	if _, err := f.Read(buf, false); !isErr(err, syscall.EBADF) {
		t.Errorf("Read after Close = %v", err)
	}

	// A file opened read-only has no write rights and cannot be written.
	r := open(t, e.d, "f", rd).(vfs.File)
	defer r.Close()
	if r.Rights()&fd.RightFdWrite != 0 || r.Rights()&fd.RightFdRead == 0 {
		t.Errorf("read-only file rights %#x", r.Rights())
	}
	if _, err := r.Write([]byte("x"), false); !isErr(err, syscall.EBADF) {
		t.Errorf("Write to a read-only file = %v, want EBADF", err)
	}
	// Trunc on open.
	tf := open(t, e.d, "f", vfs.OpenOptions{Write: true, Trunc: true})
	defer tf.Close()
	if st, _ := e.d.StatAt("f", false); st.Size != 0 {
		t.Errorf("size after O_TRUNC = %d", st.Size)
	}
	if tf.Rights()&fd.RightFdRead != 0 {
		t.Errorf("write-only file has the read right: %#x", tf.Rights())
	}
}

// TestShortWriteError: a write the file system refuses reports the
// error, not a silent short count.
func TestShortWriteError(t *testing.T) {
	e := newEnv(t, false, nil)
	f := open(t, e.d, "big", excl).(vfs.File)
	defer f.Close()
	// EFBIG from a write at the largest offset: the error comes through
	// with the count of what was written.
	n, err := f.WriteAt([]byte("xy"), 1<<62)
	if err == nil {
		t.Fatalf("WriteAt(1<<62) = %d, nil", n)
	}
	if !isErr(err, syscall.EFBIG) && !isErr(err, syscall.EINVAL) {
		t.Errorf("WriteAt(1<<62) = %d, %v, want EFBIG", n, err)
	}
}

func TestReadonly(t *testing.T) {
	e := newEnv(t, true, func(root, outside string) {
		must(t, os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o644))
		must(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
		must(t, os.Symlink("f", filepath.Join(root, "l")))
	})
	d := e.d
	if d.Rights()&(fd.RightPathCreateFile|fd.RightPathUnlinkFile|fd.RightPathCreateDirectory) != 0 {
		t.Errorf("read-only dir rights %#x", d.Rights())
	}
	before := e.snapshot(t)
	ro := []struct {
		name string
		err  error
		want error
	}{
		{"Mkdir", d.Mkdir("new"), syscall.EROFS},
		{"Mkdir existing", d.Mkdir("d/."), syscall.EEXIST},
		{"Mkdir missing parent", d.Mkdir("nope/new"), syscall.ENOENT},
		{"Rmdir", d.Rmdir("d"), syscall.EROFS},
		{"Unlink", d.Unlink("f"), syscall.EROFS},
		{"Rename", d.Rename("f", d, "g"), syscall.EROFS},
		{"Link", d.Link("f", false, d, "g"), syscall.EROFS},
		{"Symlink", d.Symlink("f", "s"), syscall.EROFS},
		{"SetTimes", d.SetTimes(vfs.Times{MtimNow: true}), syscall.EROFS},
		{"SetTimesAt", d.SetTimesAt("f", true, vfs.Times{MtimNow: true}), syscall.EROFS},
		{"SetTimesAt escape", d.SetTimesAt("../outside/secret", true, vfs.Times{MtimNow: true}), vfs.ErrNotCapable},
	}
	for _, c := range ro {
		if !isErr(c.err, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.err, c.want)
		}
	}
	opens := []struct {
		path string
		o    vfs.OpenOptions
		want error
	}{
		{"f", wr, syscall.EROFS},
		{"f", vfs.OpenOptions{Write: true}, syscall.EROFS},
		{"f", vfs.OpenOptions{Read: true, Trunc: true}, syscall.EROFS},
		{"new", create, syscall.EROFS},
		{"f", excl, syscall.EEXIST},
		{"d", vfs.OpenOptions{Write: true}, syscall.EISDIR},
		{"d", vfs.OpenOptions{Read: true, Trunc: true}, syscall.EISDIR},
		{"d", vfs.OpenOptions{Write: true, Directory: true}, syscall.EISDIR},
		{"f", vfs.OpenOptions{Read: true, Create: true}, nil}, // exists: nothing to create
		{"l", rd, nil},
		{"d", dirO, nil},
	}
	for _, c := range opens {
		f, err := d.Open(c.path, c.o)
		if !isErr(err, c.want) {
			t.Errorf("Open(%q, %+v) = %v, want %v", c.path, c.o, err, c.want)
		}
		if err == nil {
			f.Close()
		}
	}
	f := open(t, d, "f", rd).(vfs.File)
	defer f.Close()
	if f.Rights()&(fd.RightFdWrite|fd.RightFdFilestatSetSize) != 0 {
		t.Errorf("read-only file rights %#x", f.Rights())
	}
	for name, err := range map[string]error{
		"Write":    second(f.Write([]byte("x"), false)),
		"WriteAt":  second(f.WriteAt([]byte("x"), 0)),
		"Truncate": f.Truncate(0),
		"Allocate": f.Allocate(0, 10),
		"SetTimes": f.SetTimes(vfs.Times{MtimNow: true}),
	} {
		if !isErr(err, syscall.EROFS) {
			t.Errorf("file %s = %v, want EROFS", name, err)
		}
	}
	buf := make([]byte, 10)
	if n, err := f.Read(buf, false); err != nil || string(buf[:n]) != "data" {
		t.Errorf("Read = %q, %v", buf[:n], err)
	}
	if _, err := d.ReadDir(0, 10); err != nil {
		t.Errorf("ReadDir = %v", err)
	}
	if _, err := d.StatAt("l", true); err != nil {
		t.Errorf("StatAt = %v", err)
	}
	if err := d.Sync(); err != nil {
		t.Errorf("Sync = %v", err)
	}
	// Nothing changed, inside or out.
	if got, _ := os.ReadFile(filepath.Join(e.root, "f")); string(got) != "data" {
		t.Errorf("f = %q", got)
	}
	ents, _ := os.ReadDir(e.root)
	if len(ents) != 3 {
		t.Errorf("root has %d entries, want 3", len(ents))
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("outside changed:\n%s\n%s", before, after)
	}
}

func second(_ int, err error) error { return err }

func TestFIFONotOpened(t *testing.T) {
	e := newEnv(t, false, func(root, _ string) {
		must(t, unix.Mkfifo(filepath.Join(root, "fifo"), 0o644))
		must(t, os.Symlink("fifo", filepath.Join(root, "tofifo")))
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, c := range []struct {
			path string
			o    vfs.OpenOptions
		}{{"fifo", rd}, {"fifo", wr}, {"tofifo", rd}, {"fifo", vfs.OpenOptions{Write: true}}, {"fifo", create}} {
			f, err := e.d.Open(c.path, c.o)
			if err == nil {
				f.Close()
				t.Errorf("Open(%q, %+v) opened a FIFO", c.path, c.o)
			} else if !isErr(err, syscall.EACCES) && !isErr(err, syscall.ENXIO) {
				t.Errorf("Open(%q, %+v) = %v, want EACCES (or ENXIO: no reader)", c.path, c.o, err)
			}
		}
		// Stat works; it opens nothing.
		if st, err := e.d.StatAt("tofifo", true); err != nil || st.Type != fd.FiletypeUnknown {
			t.Errorf("StatAt(fifo) = %+v, %v", st, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("opening a FIFO blocked")
	}
}

func TestReadDirCookies(t *testing.T) {
	const n = 300
	e := newEnv(t, false, func(root, _ string) {
		for i := 0; i < n; i++ {
			name := strings.Repeat("x", i%50) + "-" + string(rune('a'+i%26)) + "-" + itoa(i)
			must(t, os.WriteFile(filepath.Join(root, name), nil, 0o644))
		}
		must(t, os.Mkdir(filepath.Join(root, "sub"), 0o755))
		must(t, os.Symlink("sub", filepath.Join(root, "link")))
	})
	all, err := e.d.ReadDir(0, 1<<20)
	must(t, err)
	if len(all) != n+4 {
		t.Fatalf("ReadDir: %d entries, want %d", len(all), n+4)
	}
	seen := map[string]vfs.Dirent{}
	for _, de := range all {
		if _, dup := seen[de.Name]; dup {
			t.Errorf("%q listed twice", de.Name)
		}
		seen[de.Name] = de
	}
	for name, ft := range map[string]fd.Filetype{".": fd.FiletypeDirectory, "..": fd.FiletypeDirectory,
		"sub": fd.FiletypeDirectory, "link": fd.FiletypeSymbolicLink, "-a-0": fd.FiletypeRegularFile} {
		if de, ok := seen[name]; !ok || de.Type != ft {
			t.Errorf("entry %q: %+v (listed %v), want type %v", name, de, ok, ft)
		}
	}
	var st unix.Stat_t
	must(t, unix.Lstat(filepath.Join(e.root, "sub"), &st))
	if seen["sub"].Ino != st.Ino {
		t.Errorf("sub ino %d, host %d", seen["sub"].Ino, st.Ino)
	}
	// The end: no entries.
	if more, err := e.d.ReadDir(all[len(all)-1].Next, 10); len(more) != 0 || err != nil {
		t.Errorf("ReadDir after the end = %v, %v", more, err)
	}
	// Page through in odd sizes: the same listing, in the same order.
	for _, page := range []int{1, 7, 64, 299} {
		var got []vfs.Dirent
		cookie := uint64(0)
		for {
			p, err := e.d.ReadDir(cookie, page)
			must(t, err)
			if len(p) == 0 {
				break
			}
			if len(p) > page {
				t.Fatalf("ReadDir(max %d) returned %d", page, len(p))
			}
			got = append(got, p...)
			cookie = p[len(p)-1].Next
		}
		if !equalDirents(got, all) {
			t.Errorf("paging by %d: %d entries differ from the full listing", page, len(got))
		}
	}
	// Resume from a middle cookie, twice, with other listings between.
	mid := all[150].Next
	a, err := e.d.ReadDir(mid, 20)
	must(t, err)
	if _, err := e.d.ReadDir(0, 3); err != nil {
		t.Fatal(err)
	}
	b, err := e.d.ReadDir(mid, 20)
	must(t, err)
	if !equalDirents(a, b) || !equalDirents(a, all[151:171]) {
		t.Errorf("resuming at a cookie is not stable")
	}
	// Another Dir on the same directory lists the same cookies.
	d2 := open(t, e.d, ".", dirO).(vfs.Dir)
	defer d2.Close()
	c, err := d2.ReadDir(mid, 20)
	must(t, err)
	if !equalDirents(a, c) {
		t.Errorf("another descriptor's cookies differ")
	}
	// A removed entry disappears from a fresh listing; the rest keep their cookies.
	must(t, os.Remove(filepath.Join(e.root, all[160].Name)))
	c, err = e.d.ReadDir(mid, 20)
	must(t, err)
	if len(c) == 0 || c[0] != a[0] {
		t.Errorf("after a removal, the listing at a cookie changed its first entry: %v vs %v", c[:1], a[:1])
	}
	if ents, err := e.d.ReadDir(0, 0); len(ents) != 0 || err != nil {
		t.Errorf("ReadDir(max 0) = %v, %v", ents, err)
	}
}

func equalDirents(a, b []vfs.Dirent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func itoa(i int) string {
	var b [20]byte
	p := len(b)
	for {
		p--
		b[p] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[p:])
		}
	}
}

// TestCloseWhileInUse: closing a Dir or File while other goroutines use
// it is safe (no descriptor number is used after it is released: run
// under -race) and later calls fail with EBADF.
func TestCloseWhileInUse(t *testing.T) {
	e := newEnv(t, false, func(root, _ string) {
		must(t, os.WriteFile(filepath.Join(root, "f"), []byte("data"), 0o644))
	})
	sub := open(t, e.d, ".", dirO).(vfs.Dir)
	f := open(t, e.d, "f", rd).(vfs.File)
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			buf := make([]byte, 4)
			for j := 0; j < 2000; j++ {
				_, errS := sub.StatAt("f", true)
				_, errR := sub.ReadDir(0, 4)
				_, errF := f.ReadAt(buf, 0)
				if errors.Is(errS, syscall.EBADF) && errors.Is(errR, syscall.EBADF) && errors.Is(errF, syscall.EBADF) {
					return
				}
			}
		}()
	}
	must(t, sub.Close())
	must(t, f.Close())
	for i := 0; i < 4; i++ {
		<-done
	}
	if _, err := sub.StatAt("f", true); !isErr(err, syscall.EBADF) {
		t.Errorf("StatAt after Close = %v", err)
	}
	if _, err := sub.ReadDir(0, 4); !isErr(err, syscall.EBADF) {
		t.Errorf("ReadDir after Close = %v", err)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !isErr(err, syscall.EBADF) {
		t.Errorf("ReadAt after Close = %v", err)
	}
}
