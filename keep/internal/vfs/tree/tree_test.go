package tree_test

import (
	"errors"
	"io"
	"slices"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/memfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

func newRoot(t *testing.T) *tree.Dir {
	t.Helper()
	fs, err := memfs.NewFS(1<<30, false)
	if err != nil {
		t.Fatal(err)
	}
	return fs.Root()
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got %v, want %v", what, err, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

var (
	rw     = vfs.OpenOptions{Read: true, Write: true, Follow: true}
	create = vfs.OpenOptions{Read: true, Write: true, Create: true, Follow: true}
	rdonly = vfs.OpenOptions{Read: true, Follow: true}
)

func openFile(t *testing.T, d vfs.Dir, path string, o vfs.OpenOptions) *tree.File {
	t.Helper()
	f, err := d.Open(path, o)
	if err != nil {
		t.Fatalf("open %q: %v", path, err)
	}
	file, ok := f.(*tree.File)
	if !ok {
		t.Fatalf("open %q: got %T", path, f)
	}
	return file
}

func writeFile(t *testing.T, d vfs.Dir, path, data string) {
	t.Helper()
	f := openFile(t, d, path, vfs.OpenOptions{Write: true, Create: true, Trunc: true, Follow: true})
	if _, err := f.Write([]byte(data), false); err != nil {
		t.Fatal(err)
	}
	must(t, "close", f.Close())
}

func readFile(t *testing.T, d vfs.Dir, path string) string {
	t.Helper()
	f := openFile(t, d, path, rdonly)
	defer f.Close()
	var out []byte
	buf := make([]byte, 7)
	for {
		n, err := f.Read(buf, false)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func names(t *testing.T, d vfs.Dir) []string {
	t.Helper()
	var out []string
	var cookie uint64
	for {
		ents, err := d.ReadDir(cookie, 2)
		must(t, "readdir", err)
		if len(ents) == 0 {
			return out
		}
		for _, e := range ents {
			out = append(out, e.Name)
			cookie = e.Next
		}
	}
}

func TestBasic(t *testing.T) {
	root := newRoot(t)
	must(t, "mkdir", root.Mkdir("a"))
	writeFile(t, root, "a/f", "hello")
	if got := readFile(t, root, "a/f"); got != "hello" {
		t.Fatalf("read %q", got)
	}
	st, err := root.StatAt("a/f", true)
	must(t, "stat", err)
	if st.Type != fd.FiletypeRegularFile || st.Size != 5 || st.Nlink != 1 {
		t.Fatalf("stat %+v", st)
	}
	got := names(t, root)
	if !slices.Equal(got, []string{".", "..", "a"}) {
		t.Fatalf("readdir %q", got)
	}
	wantErr(t, "escape", root.Mkdir("../x"), vfs.ErrNotCapable)
	wantErr(t, "abs", root.Mkdir("/x"), vfs.ErrNotCapable)
	wantErr(t, "rmdir nonempty", root.Rmdir("a"), syscall.ENOTEMPTY)
}
