package tree_test

import (
	"io"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/memfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

func TestOpen(t *testing.T) {
	root := newRoot(t)
	must(t, "mkdir", root.Mkdir("d"))
	writeFile(t, root, "f", "data")
	must(t, "symlink", root.Symlink("f", "lf"))
	must(t, "symlink", root.Symlink("d", "ld"))
	must(t, "symlink", root.Symlink("missing", "dangling"))

	_, err := root.Open("nope", rw)
	wantErr(t, "missing", err, syscall.ENOENT)
	_, err = root.Open("f", vfs.OpenOptions{Create: true, Excl: true, Write: true})
	wantErr(t, "excl existing", err, syscall.EEXIST)
	_, err = root.Open("d", vfs.OpenOptions{Create: true, Excl: true})
	wantErr(t, "excl dir", err, syscall.EEXIST)
	_, err = root.Open("dangling", vfs.OpenOptions{Create: true, Excl: true, Write: true, Follow: true})
	wantErr(t, "excl dangling", err, syscall.EEXIST)
	_, err = root.Open("d", rw)
	wantErr(t, "write dir", err, syscall.EISDIR)
	_, err = root.Open("f", vfs.OpenOptions{Read: true, Directory: true, Follow: true})
	wantErr(t, "O_DIRECTORY file", err, syscall.ENOTDIR)
	_, err = root.Open("f/", rdonly)
	wantErr(t, "file/", err, syscall.ENOTDIR)
	_, err = root.Open("f/x", rdonly)
	wantErr(t, "file/x", err, syscall.ENOTDIR)
	_, err = root.Open("new/", create)
	wantErr(t, "create new/", err, syscall.EISDIR)
	_, err = root.Open("lf", vfs.OpenOptions{Read: true})
	wantErr(t, "nofollow", err, syscall.ELOOP)
	_, err = root.Open("ld", vfs.OpenOptions{Read: true, Directory: true})
	wantErr(t, "nofollow dir", err, syscall.ENOTDIR)
	_, err = root.Open("dangling", rdonly)
	wantErr(t, "dangling", err, syscall.ENOENT)
	_, err = root.Open("dangling", vfs.OpenOptions{Read: true, Directory: true, Follow: true})
	wantErr(t, "dangling dir", err, syscall.ENOENT)

	// A trailing slash follows a final symlink even without Follow.
	d, err := root.Open("ld/", vfs.OpenOptions{Read: true})
	must(t, "open ld/", err)
	if _, ok := d.(*tree.Dir); !ok {
		t.Fatalf("ld/ opened as %T", d)
	}
	d.Close()
	if got := readFile(t, root, "lf"); got != "data" {
		t.Fatalf("through symlink: %q", got)
	}
	// O_CREAT through a dangling symlink creates its target.
	f := openFile(t, root, "dangling", create)
	f.Close()
	if _, err := root.StatAt("missing", false); err != nil {
		t.Fatalf("dangling target not created: %v", err)
	}
	// O_TRUNC.
	f = openFile(t, root, "f", vfs.OpenOptions{Write: true, Trunc: true, Follow: true})
	st, _ := f.Stat()
	if st.Size != 0 {
		t.Fatalf("trunc: size %d", st.Size)
	}
	f.Close()
	// Directory handles: paths are relative to them and cannot climb out.
	must(t, "mkdir", root.Mkdir("d/e"))
	dh, err := root.Open("d", vfs.OpenOptions{Read: true, Directory: true})
	must(t, "open d", err)
	sub := dh.(vfs.Dir)
	_, err = sub.StatAt("..", false)
	wantErr(t, "sub ..", err, vfs.ErrNotCapable)
	_, err = sub.StatAt("e/../..", false)
	wantErr(t, "sub e/../..", err, vfs.ErrNotCapable)
	if _, err := sub.StatAt("e/..", false); err != nil {
		t.Fatal(err)
	}
	must(t, "symlink out", sub.Symlink("../f", "out"))
	_, err = sub.StatAt("out", true)
	wantErr(t, "symlink out of handle", err, vfs.ErrNotCapable)
	if _, err := root.StatAt("d/out", true); err != nil {
		t.Fatalf("same symlink from the root: %v", err)
	}
	must(t, "close", sub.Close())
	wantErr(t, "closed dir", sub.Mkdir("x"), syscall.EBADF)
	_, err = sub.Open("e", rdonly)
	wantErr(t, "closed dir open", err, syscall.EBADF)
}

func TestNames(t *testing.T) {
	root := newRoot(t)
	long := strings.Repeat("n", vfs.MaxName)
	must(t, "mkdir 255", root.Mkdir(long))
	wantErr(t, "mkdir 256", root.Mkdir(long+"n"), syscall.ENAMETOOLONG)
	_, err := root.StatAt(long+"n/x", false)
	wantErr(t, "long component", err, syscall.ENAMETOOLONG)
	_, err = root.StatAt(strings.Repeat("a/", vfs.MaxPath), false)
	wantErr(t, "long path", err, syscall.ENAMETOOLONG)
	_, err = root.StatAt("", false)
	wantErr(t, "empty", err, syscall.ENOENT)
	wantErr(t, "NUL", root.Mkdir("a\x00b"), syscall.EINVAL)
	wantErr(t, "mkdir .", root.Mkdir("."), syscall.EEXIST)
	wantErr(t, "mkdir ..", root.Mkdir(long+"/.."), syscall.EEXIST)
	must(t, "mkdir a/", root.Mkdir("a/"))
	must(t, "mkdir a//b//", root.Mkdir("a//b//"))
	st, err := root.StatAt("./a/./b/../b", false)
	must(t, "stat", err)
	if st.Type != fd.FiletypeDirectory {
		t.Fatal(st)
	}
	wantErr(t, "symlink empty target", root.Symlink("", "s"), syscall.ENOENT)
	wantErr(t, "symlink long target", root.Symlink(strings.Repeat("x", vfs.MaxPath+1), "s"), syscall.ENAMETOOLONG)
}

func TestMkdirRmdirUnlink(t *testing.T) {
	root := newRoot(t)
	must(t, "mkdir", root.Mkdir("d"))
	wantErr(t, "mkdir again", root.Mkdir("d"), syscall.EEXIST)
	writeFile(t, root, "f", "x")
	wantErr(t, "mkdir over file", root.Mkdir("f"), syscall.EEXIST)
	must(t, "symlink", root.Symlink("nowhere", "dangling"))
	wantErr(t, "mkdir over dangling", root.Mkdir("dangling"), syscall.EEXIST)
	wantErr(t, "mkdir in missing", root.Mkdir("x/y"), syscall.ENOENT)
	wantErr(t, "mkdir under file", root.Mkdir("f/y"), syscall.ENOTDIR)

	wantErr(t, "rmdir file", root.Rmdir("f"), syscall.ENOTDIR)
	wantErr(t, "rmdir missing", root.Rmdir("x"), syscall.ENOENT)
	wantErr(t, "rmdir .", root.Rmdir("."), syscall.EINVAL)
	wantErr(t, "rmdir d/.", root.Rmdir("d/."), syscall.EINVAL)
	must(t, "symlink", root.Symlink("d", "ld"))
	wantErr(t, "rmdir symlink", root.Rmdir("ld"), syscall.ENOTDIR)
	wantErr(t, "rmdir symlink/", root.Rmdir("ld/"), syscall.ENOTDIR)
	writeFile(t, root, "d/g", "y")
	wantErr(t, "rmdir nonempty", root.Rmdir("d"), syscall.ENOTEMPTY)

	wantErr(t, "unlink dir", root.Unlink("d"), syscall.EISDIR)
	wantErr(t, "unlink file/", root.Unlink("f/"), syscall.ENOTDIR)
	wantErr(t, "unlink symlink-to-dir/", root.Unlink("ld/"), syscall.EISDIR)
	wantErr(t, "unlink .", root.Unlink("."), syscall.EISDIR)
	wantErr(t, "unlink missing", root.Unlink("nope"), syscall.ENOENT)
	must(t, "unlink symlink", root.Unlink("ld"))
	if _, err := root.StatAt("d", false); err != nil {
		t.Fatal("unlinking a symlink removed its target")
	}
	must(t, "unlink dangling", root.Unlink("dangling"))
	must(t, "unlink d/g", root.Unlink("d/g"))
	must(t, "rmdir d/", root.Rmdir("d/"))
	if got := names(t, root); !slices.Equal(got, []string{".", "..", "f"}) {
		t.Fatalf("left %q", got)
	}

	// A removed directory's handle lists nothing and creates nothing.
	must(t, "mkdir", root.Mkdir("gone"))
	h, err := root.Open("gone", rdonly)
	must(t, "open", err)
	gone := h.(vfs.Dir)
	must(t, "rmdir", root.Rmdir("gone"))
	wantErr(t, "create in removed", gone.Mkdir("x"), syscall.ENOENT)
	_, err = gone.Open("x", create)
	wantErr(t, "open in removed", err, syscall.ENOENT)
	if ents, err := gone.ReadDir(0, 10); err != nil || len(ents) != 0 {
		t.Fatalf("readdir of removed: %v %v", ents, err)
	}
	st, err := gone.Stat()
	must(t, "stat removed", err)
	if st.Nlink != 0 {
		t.Fatalf("removed dir nlink %d", st.Nlink)
	}
}

func TestNlink(t *testing.T) {
	root := newRoot(t)
	nlink := func(path string) uint64 {
		t.Helper()
		st, err := root.StatAt(path, false)
		must(t, "stat "+path, err)
		return st.Nlink
	}
	if n := nlink("."); n != 2 {
		t.Fatalf("root nlink %d", n)
	}
	must(t, "mkdir", root.Mkdir("a"))
	must(t, "mkdir", root.Mkdir("a/b"))
	if nlink(".") != 3 || nlink("a") != 3 || nlink("a/b") != 2 {
		t.Fatal("directory link counts")
	}
	writeFile(t, root, "f", "1")
	must(t, "link", root.Link("f", false, root, "a/g"))
	if nlink("f") != 2 {
		t.Fatal("file link count after link")
	}
	st1, _ := root.StatAt("f", false)
	st2, _ := root.StatAt("a/g", false)
	if st1.Ino != st2.Ino {
		t.Fatal("hard link has another inode")
	}
	writeFile(t, root, "a/g", "22")
	if got := readFile(t, root, "f"); got != "22" {
		t.Fatalf("hard link content %q", got)
	}
	wantErr(t, "link existing", root.Link("f", false, root, "a/g"), syscall.EEXIST)
	wantErr(t, "link dir", root.Link("a", false, root, "x"), syscall.EPERM)
	wantErr(t, "link missing", root.Link("nope", false, root, "x"), syscall.ENOENT)
	wantErr(t, "link to new/", root.Link("f", false, root, "x/"), syscall.ENOENT)
	must(t, "symlink", root.Symlink("f", "s"))
	must(t, "link symlink nofollow", root.Link("s", false, root, "s2"))
	if st, _ := root.StatAt("s2", false); st.Type != fd.FiletypeSymbolicLink {
		t.Fatal("link nofollow did not link the symlink")
	}
	must(t, "link symlink follow", root.Link("s", true, root, "f3"))
	if nlink("f") != 3 {
		t.Fatal("link follow did not link the target")
	}
	must(t, "unlink", root.Unlink("f"))
	must(t, "unlink", root.Unlink("f3"))
	if nlink("a/g") != 1 {
		t.Fatal("nlink after unlink")
	}
	must(t, "rmdir", root.Rmdir("a/b"))
	if nlink("a") != 2 || nlink(".") != 3 {
		t.Fatal("directory link counts after rmdir")
	}
	other, err := memfs.New(1<<20, false)
	must(t, "other fs", err)
	wantErr(t, "link across trees", root.Link("a/g", false, other, "x"), syscall.EXDEV)
	wantErr(t, "rename across trees", root.Rename("a/g", other, "x"), syscall.EXDEV)
}

func TestUnlinkOpenFile(t *testing.T) {
	fs, err := memfs.NewFS(1<<30, false)
	must(t, "fs", err)
	root := fs.Root()
	base := fs.Used()
	f := openFile(t, root, "f", create)
	if _, err := f.Write(make([]byte, 100000), false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), 99997); err != nil {
		t.Fatal(err)
	}
	must(t, "unlink", root.Unlink("f"))
	if _, err := root.StatAt("f", false); err == nil {
		t.Fatal("unlinked file still has a name")
	}
	st, err := f.Stat()
	must(t, "fstat", err)
	if st.Nlink != 0 || st.Size != 100000 {
		t.Fatalf("fstat after unlink: %+v", st)
	}
	buf := make([]byte, 3)
	if n, err := f.ReadAt(buf, 99997); n != 3 || string(buf) != "end" {
		t.Fatalf("read after unlink: %d %v %q", n, err, buf)
	}
	if _, err := f.WriteAt([]byte("more"), 0); err != nil {
		t.Fatalf("write after unlink: %v", err)
	}
	if fs.Used() < base+100000 {
		t.Fatal("data freed while open")
	}
	wantErr(t, "link unlinked", root.Link("f", false, root, "g"), syscall.ENOENT)
	must(t, "close", f.Close())
	if fs.Used() != base {
		t.Fatalf("after last close %d bytes used, %d before", fs.Used(), base)
	}
	wantErr(t, "double close", f.Close(), syscall.EBADF)
	_, err = f.ReadAt(buf, 0)
	wantErr(t, "read closed", err, syscall.EBADF)
}

func TestRename(t *testing.T) {
	root := newRoot(t)
	ino := func(path string) uint64 {
		t.Helper()
		st, err := root.StatAt(path, false)
		must(t, "stat "+path, err)
		return st.Ino
	}
	writeFile(t, root, "f", "F")
	writeFile(t, root, "g", "G")
	must(t, "mkdir", root.Mkdir("d"))
	must(t, "mkdir", root.Mkdir("e"))
	must(t, "mkdir", root.Mkdir("d/sub"))
	writeFile(t, root, "e/x", "X")

	fi := ino("f")
	must(t, "rename over file", root.Rename("f", root, "g"))
	if ino("g") != fi || readFile(t, root, "g") != "F" {
		t.Fatal("rename over file")
	}
	_, err := root.StatAt("f", false)
	wantErr(t, "old name", err, syscall.ENOENT)
	wantErr(t, "rename missing", root.Rename("f", root, "h"), syscall.ENOENT)
	wantErr(t, "file over dir", root.Rename("g", root, "d"), syscall.EISDIR)
	wantErr(t, "dir over file", root.Rename("d", root, "g"), syscall.ENOTDIR)
	wantErr(t, "dir over nonempty dir", root.Rename("d", root, "e"), syscall.ENOTEMPTY)
	wantErr(t, "dir into itself", root.Rename("d", root, "d/sub/d"), syscall.EINVAL)
	wantErr(t, "dir onto its child", root.Rename("d", root, "d/sub"), syscall.EINVAL)
	wantErr(t, "file/", root.Rename("g", root, "h/"), syscall.ENOTDIR)
	wantErr(t, "file/ source", root.Rename("g/", root, "h"), syscall.ENOTDIR)
	wantErr(t, "rename .", root.Rename(".", root, "h"), syscall.EBUSY)
	wantErr(t, "rename to ..", root.Rename("d/sub", root, "d/.."), syscall.EBUSY)
	wantErr(t, "into missing dir", root.Rename("g", root, "nope/g"), syscall.ENOENT)

	must(t, "same file", root.Rename("g", root, "g"))
	must(t, "link", root.Link("g", false, root, "g2"))
	must(t, "rename between hard links", root.Rename("g", root, "g2"))
	if _, err := root.StatAt("g", false); err != nil {
		t.Fatal("rename between links of one file removed one")
	}
	must(t, "unlink", root.Unlink("g2"))

	must(t, "mkdir", root.Mkdir("empty"))
	di := ino("d")
	must(t, "dir over empty dir", root.Rename("d/", root, "empty/"))
	if ino("empty") != di || ino("empty/sub") == 0 {
		t.Fatal("dir over empty dir")
	}
	if st, _ := root.StatAt(".", false); st.Nlink != 4 { // empty, e + 2
		t.Fatalf("root nlink %d after replacing a dir", st.Nlink)
	}
	must(t, "move dir down", root.Rename("empty", root, "e/moved"))
	if st, _ := root.StatAt("e/moved/sub/../..", false); st.Ino != ino("e") {
		t.Fatal(".. of a moved directory")
	}
	if ents, _ := root.ReadDir(0, 10); ents[1].Ino != ino(".") {
		t.Fatal("root .. entry")
	}
	h, err := root.Open("e/moved", rdonly)
	must(t, "open", err)
	moved := h.(vfs.Dir)
	ents, err := moved.ReadDir(1, 1)
	must(t, "readdir", err)
	if ents[0].Name != ".." || ents[0].Ino != ino("e") {
		t.Fatalf("moved dir .. = %+v", ents[0])
	}
	// Rename relative to another handle of the same tree.
	must(t, "rename across handles", root.Rename("e/x", moved, "y"))
	if readFile(t, root, "e/moved/y") != "X" {
		t.Fatal("rename across handles")
	}
	// Symlinks are renamed, not followed.
	must(t, "symlink", root.Symlink("e", "s"))
	must(t, "rename symlink", root.Rename("s", root, "s2"))
	if target, err := root.Readlink("s2"); err != nil || target != "e" {
		t.Fatalf("renamed symlink: %q %v", target, err)
	}
	moved.Close()
}

func TestSymlinks(t *testing.T) {
	root := newRoot(t)
	must(t, "mkdir", root.Mkdir("d"))
	writeFile(t, root, "d/f", "x")
	must(t, "symlink", root.Symlink("loop", "loop"))
	must(t, "symlink", root.Symlink("b", "a"))
	must(t, "symlink", root.Symlink("a", "b"))
	must(t, "symlink", root.Symlink("/etc/passwd", "abs"))
	must(t, "symlink", root.Symlink("../../x", "d/up"))
	must(t, "symlink", root.Symlink("d/f", "tofile"))
	must(t, "symlink", root.Symlink("d/", "todir"))
	must(t, "symlink", root.Symlink("nowhere", "dangling"))

	_, err := root.StatAt("loop", true)
	wantErr(t, "self loop", err, syscall.ELOOP)
	_, err = root.StatAt("a/x", false)
	wantErr(t, "loop in the middle", err, syscall.ELOOP)
	if st, err := root.StatAt("loop", false); err != nil || st.Type != fd.FiletypeSymbolicLink {
		t.Fatal("lstat of a loop")
	}
	_, err = root.StatAt("abs", true)
	wantErr(t, "absolute target", err, vfs.ErrNotCapable)
	_, err = root.StatAt("d/up", true)
	wantErr(t, "target above root", err, vfs.ErrNotCapable)
	_, err = root.StatAt("dangling", true)
	wantErr(t, "dangling", err, syscall.ENOENT)
	_, err = root.StatAt("tofile/", true)
	wantErr(t, "file symlink/", err, syscall.ENOTDIR)
	if st, err := root.StatAt("todir/f", false); err != nil || st.Size != 1 {
		t.Fatal("through symlink with a trailing slash")
	}
	// A chain of exactly MaxSymlinks resolves; one more is ELOOP.
	must(t, "symlink", root.Symlink("d/f", "c0"))
	for i := 1; i <= vfs.MaxSymlinks; i++ {
		must(t, "chain", root.Symlink("c"+itoa(i-1), "c"+itoa(i)))
	}
	if _, err := root.StatAt("c"+itoa(vfs.MaxSymlinks-1), true); err != nil {
		t.Fatalf("chain of %d: %v", vfs.MaxSymlinks, err)
	}
	_, err = root.StatAt("c"+itoa(vfs.MaxSymlinks), true)
	wantErr(t, "chain too long", err, syscall.ELOOP)

	target, err := root.Readlink("abs")
	if err != nil || target != "/etc/passwd" {
		t.Fatalf("readlink %q %v", target, err)
	}
	_, err = root.Readlink("d/f")
	wantErr(t, "readlink file", err, syscall.EINVAL)
	_, err = root.Readlink("nope")
	wantErr(t, "readlink missing", err, syscall.ENOENT)
	wantErr(t, "symlink existing", root.Symlink("x", "d/f"), syscall.EEXIST)
	wantErr(t, "symlink over dangling", root.Symlink("x", "dangling"), syscall.EEXIST)
	wantErr(t, "symlink new/", root.Symlink("x", "new/"), syscall.ENOENT)
	wantErr(t, "symlink existing/", root.Symlink("x", "d/"), syscall.EEXIST)
	if st, _ := root.StatAt("abs", false); st.Size != uint64(len("/etc/passwd")) {
		t.Fatal("symlink size")
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestFileIO(t *testing.T) {
	root := newRoot(t)
	f := openFile(t, root, "f", create)
	defer f.Close()
	if _, err := f.Write([]byte("hello"), false); err != nil {
		t.Fatal(err)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 5 {
		t.Fatalf("offset %d", off)
	}
	// A hole reads as zeros.
	if _, err := f.WriteAt([]byte("!"), 200000); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, err := f.ReadAt(buf, 100000)
	if n != 10 || err != nil || string(buf) != string(make([]byte, 10)) {
		t.Fatalf("hole: %d %v %q", n, err, buf)
	}
	n, err = f.ReadAt(buf, 199995)
	if n != 6 || err != io.EOF || string(buf[:6]) != "\x00\x00\x00\x00\x00!" {
		t.Fatalf("read at end: %d %v %q", n, err, buf[:n])
	}
	if n, err := f.ReadAt(buf, 300000); n != 0 || err != io.EOF {
		t.Fatalf("read past end: %d %v", n, err)
	}
	if off, err := f.Seek(-1, io.SeekEnd); off != 200000 || err != nil {
		t.Fatalf("seek end: %d %v", off, err)
	}
	if _, err := f.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("negative seek")
	}
	if _, err := f.Seek(0, 7); err == nil {
		t.Fatal("bad whence")
	}
	n, err = f.Read(buf, false)
	if n != 1 || err != nil || buf[0] != '!' {
		t.Fatalf("read: %d %v", n, err)
	}
	if n, err := f.Read(buf, false); n != 0 || err != io.EOF {
		t.Fatalf("read at EOF: %d %v", n, err)
	}
	// Shrink and grow: the dropped bytes come back as zeros.
	must(t, "truncate", f.Truncate(3))
	must(t, "truncate", f.Truncate(8))
	n, _ = f.ReadAt(buf, 0)
	if n != 8 || string(buf[:8]) != "hel\x00\x00\x00\x00\x00" {
		t.Fatalf("after truncate: %q", buf[:n])
	}
	wantErr(t, "negative truncate", f.Truncate(-1), syscall.EINVAL)
	// Append.
	must(t, "append", f.SetAppend(true))
	f.Seek(0, io.SeekStart)
	f.Write([]byte("AB"), false)
	if st, _ := f.Stat(); st.Size != 10 {
		t.Fatalf("append size %d", st.Size)
	}
	if off, _ := f.Seek(0, io.SeekCurrent); off != 10 {
		t.Fatalf("append offset %d", off)
	}
	f.WriteAt([]byte("Z"), 0) // pwrite ignores append
	f.ReadAt(buf[:1], 0)
	if buf[0] != 'Z' {
		t.Fatal("pwrite with append")
	}
	// Allocate.
	must(t, "allocate", f.Allocate(0, 4))
	if st, _ := f.Stat(); st.Size != 10 {
		t.Fatal("allocate inside shrank or grew")
	}
	must(t, "allocate", f.Allocate(100, 50))
	if st, _ := f.Stat(); st.Size != 150 {
		t.Fatal("allocate past the end")
	}
	wantErr(t, "allocate 0", f.Allocate(0, 0), syscall.EINVAL)
	must(t, "sync", f.Sync())
	must(t, "datasync", f.Datasync())

	// Handles: a read-only handle cannot write, a write-only one cannot read.
	ro := openFile(t, root, "f", rdonly)
	_, err = ro.Write([]byte("x"), false)
	wantErr(t, "write read-only", err, syscall.EBADF)
	wantErr(t, "truncate read-only", ro.Truncate(0), syscall.EBADF)
	ro.Close()
	wo := openFile(t, root, "f", vfs.OpenOptions{Write: true})
	_, err = wo.Read(buf, false)
	wantErr(t, "read write-only", err, syscall.EBADF)
	if wo.Rights()&(1<<1) != 0 || wo.Rights()&(1<<6) == 0 {
		t.Fatalf("write-only rights %#x", wo.Rights())
	}
	wo.Close()
}

func TestTimes(t *testing.T) {
	now := int64(1000)
	clock := func() int64 { now++; return now }
	root := newTestTree(t, tree.Options{Now: clock}).Root()
	must(t, "mkdir", root.Mkdir("d"))
	st, _ := root.StatAt("d", false)
	if st.Atim != st.Mtim || st.Mtim != st.Ctim || st.Mtim <= 1000 {
		t.Fatalf("new dir times %+v", st)
	}
	rootBefore, _ := root.Stat()
	f := openFile(t, root, "d/f", create)
	dAfter, _ := root.StatAt("d", false)
	if dAfter.Mtim <= st.Mtim || dAfter.Ctim <= st.Ctim {
		t.Fatal("creating an entry left the directory's times")
	}
	if rootAfter, _ := root.Stat(); rootAfter.Mtim != rootBefore.Mtim {
		t.Fatal("creating in d changed the root's mtim")
	}
	fs1, _ := f.Stat()
	f.Write([]byte("x"), false)
	fs2, _ := f.Stat()
	if fs2.Mtim <= fs1.Mtim || fs2.Ctim <= fs1.Ctim || fs2.Atim != fs1.Atim {
		t.Fatalf("write times %+v -> %+v", fs1, fs2)
	}
	buf := make([]byte, 1)
	f.ReadAt(buf, 0)
	if fs3, _ := f.Stat(); fs3.Atim != fs2.Atim {
		t.Fatal("read changed atim (noatime)")
	}
	must(t, "set times", f.SetTimes(vfs.Times{Atim: 5, Mtim: 6, SetAtim: true, SetMtim: true}))
	fs4, _ := f.Stat()
	if fs4.Atim != 5 || fs4.Mtim != 6 || fs4.Ctim <= fs2.Ctim {
		t.Fatalf("set times %+v", fs4)
	}
	must(t, "set atim now", root.SetTimesAt("d/f", true, vfs.Times{AtimNow: true}))
	fs5, _ := root.StatAt("d/f", true)
	if fs5.Atim <= fs4.Ctim || fs5.Mtim != 6 {
		t.Fatalf("atim now %+v", fs5)
	}
	wantErr(t, "both", f.SetTimes(vfs.Times{SetAtim: true, AtimNow: true}), syscall.EINVAL)
	must(t, "symlink", root.Symlink("d/f", "s"))
	must(t, "set times nofollow", root.SetTimesAt("s", false, vfs.Times{Mtim: 77, SetMtim: true}))
	if st, _ := root.StatAt("s", false); st.Mtim != 77 {
		t.Fatal("nofollow times went elsewhere")
	}
	if st, _ := root.StatAt("s", true); st.Mtim != 6 {
		t.Fatal("nofollow times reached the target")
	}
	must(t, "dir set times", root.SetTimes(vfs.Times{Mtim: 9, SetMtim: true}))
	if st, _ := root.Stat(); st.Mtim != 9 {
		t.Fatal("dir set times")
	}
	before, _ := f.Stat()
	must(t, "link", root.Link("d/f", false, root, "f2"))
	if after, _ := f.Stat(); after.Ctim <= before.Ctim {
		t.Fatal("link left ctim")
	}
	f.Close()
}
