package hostfs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// posixTree is the layout the POSIX tests start from.
func posixTree(t *testing.T) func(root, outside string) {
	return func(root, _ string) {
		must(t, os.MkdirAll(filepath.Join(root, "d", "sub"), 0o755))
		must(t, os.Mkdir(filepath.Join(root, "empty"), 0o755))
		must(t, os.WriteFile(filepath.Join(root, "f"), []byte("file"), 0o644))
		must(t, os.WriteFile(filepath.Join(root, "d", "g"), []byte("gee"), 0o644))
		must(t, os.Symlink("f", filepath.Join(root, "lf")))
		must(t, os.Symlink("d", filepath.Join(root, "ld")))
		must(t, os.Symlink("d/sub/../g", filepath.Join(root, "lg")))
		must(t, os.Symlink("lf", filepath.Join(root, "llf")))
		must(t, os.Symlink("nowhere", filepath.Join(root, "dangling")))
		must(t, os.Symlink("nowhere", filepath.Join(root, "dangling2")))
	}
}

func TestPOSIX(t *testing.T) {
	e := newEnv(t, false, posixTree(t))
	d := e.d
	cases := []struct {
		name string
		err  func() error
		want error
	}{
		{"Mkdir existing dir", func() error { return d.Mkdir("d") }, syscall.EEXIST},
		{"Mkdir existing file", func() error { return d.Mkdir("f") }, syscall.EEXIST},
		{"Mkdir dangling symlink", func() error { return d.Mkdir("dangling") }, syscall.EEXIST},
		{"Mkdir .", func() error { return d.Mkdir(".") }, syscall.EEXIST},
		{"Mkdir d/..", func() error { return d.Mkdir("d/..") }, syscall.EEXIST},
		{"Mkdir missing parent", func() error { return d.Mkdir("no/x") }, syscall.ENOENT},
		{"Mkdir under a file", func() error { return d.Mkdir("f/x") }, syscall.ENOTDIR},
		{"Mkdir trailing slash", func() error { return d.Mkdir("new1/") }, nil},
		{"Mkdir through dir symlink", func() error { return d.Mkdir("ld/new2") }, nil},
		{"Mkdir empty", func() error { return d.Mkdir("") }, syscall.ENOENT},
		{"Rmdir non-empty", func() error { return d.Rmdir("d") }, syscall.ENOTEMPTY},
		{"Rmdir file", func() error { return d.Rmdir("f") }, syscall.ENOTDIR},
		{"Rmdir symlink to dir", func() error { return d.Rmdir("ld") }, syscall.ENOTDIR},
		{"Rmdir symlink to dir/", func() error { return d.Rmdir("ld/") }, syscall.ENOTDIR},
		{"Rmdir .", func() error { return d.Rmdir(".") }, syscall.EINVAL},
		{"Rmdir d/..", func() error { return d.Rmdir("d/..") }, syscall.ENOTEMPTY},
		{"Rmdir missing", func() error { return d.Rmdir("nope") }, syscall.ENOENT},
		{"Rmdir empty/", func() error { return d.Rmdir("new1/") }, nil},
		{"Unlink dir", func() error { return d.Unlink("d") }, syscall.EISDIR},
		{"Unlink dir/", func() error { return d.Unlink("empty/") }, syscall.EISDIR},
		{"Unlink file/", func() error { return d.Unlink("f/") }, syscall.ENOTDIR},
		{"Unlink .", func() error { return d.Unlink(".") }, syscall.EISDIR},
		{"Unlink missing", func() error { return d.Unlink("nope") }, syscall.ENOENT},
		{"Unlink dangling symlink", func() error { return d.Unlink("dangling2") }, nil},
		{"Symlink existing", func() error { return d.Symlink("x", "f") }, syscall.EEXIST},
		{"Symlink .", func() error { return d.Symlink("x", "d/.") }, syscall.EEXIST},
		{"Symlink", func() error { return d.Symlink("d/g", "lnew") }, nil},
		{"Link existing", func() error { return d.Link("f", false, d, "d/g") }, syscall.EEXIST},
		{"Link dir", func() error { return d.Link("d", false, d, "dl") }, syscall.EPERM},
		{"Link .", func() error { return d.Link(".", false, d, "dl") }, syscall.EPERM},
		{"Link missing", func() error { return d.Link("nope", false, d, "x") }, syscall.ENOENT},
		{"Link to .", func() error { return d.Link("f", false, d, "d/..") }, syscall.EEXIST},
		{"Link file/", func() error { return d.Link("f/", false, d, "x") }, syscall.ENOTDIR},
		{"Link", func() error { return d.Link("f", false, d, "d/hard") }, nil},
		{"Rename file over dir", func() error { return d.Rename("f", d, "empty") }, syscall.EISDIR},
		{"Rename dir over file", func() error { return d.Rename("empty", d, "f") }, syscall.ENOTDIR},
		{"Rename dir over non-empty dir", func() error { return d.Rename("empty", d, "d") }, syscall.ENOTEMPTY},
		{"Rename file/", func() error { return d.Rename("f/", d, "x") }, syscall.ENOTDIR},
		{"Rename .", func() error { return d.Rename(".", d, "x") }, syscall.EBUSY},
		{"Rename to ..", func() error { return d.Rename("f", d, "d/..") }, syscall.EBUSY},
		{"Rename dir into itself", func() error { return d.Rename("d", d, "d/sub/x") }, syscall.EINVAL},
		{"Rename missing", func() error { return d.Rename("nope", d, "x") }, syscall.ENOENT},
		{"Rename dir/ to new/", func() error { return d.Rename("empty/", d, "empty2/") }, nil},
		{"Rename over file", func() error { return d.Rename("d/hard", d, "d/g") }, nil},
		{"Readlink file", func() error { _, err := d.Readlink("f"); return err }, syscall.EINVAL},
		{"Readlink dir", func() error { _, err := d.Readlink("d"); return err }, syscall.EINVAL},
		{"Readlink ld/", func() error { _, err := d.Readlink("ld/"); return err }, syscall.EINVAL},
		{"Readlink ..", func() error { _, err := d.Readlink("d/.."); return err }, syscall.EINVAL},
		{"Readlink missing", func() error { _, err := d.Readlink("nope"); return err }, syscall.ENOENT},
		{"StatAt file/", func() error { _, err := d.StatAt("f/", false); return err }, syscall.ENOTDIR},
		{"StatAt lf/", func() error { _, err := d.StatAt("lf/", false); return err }, syscall.ENOTDIR},
		{"StatAt dangling follow", func() error { _, err := d.StatAt("dangling", true); return err }, syscall.ENOENT},
		{"StatAt dangling", func() error { _, err := d.StatAt("dangling", false); return err }, nil},
		{"StatAt long name", func() error { _, err := d.StatAt(strings.Repeat("n", 256), false); return err }, syscall.ENAMETOOLONG},
		{"StatAt long middle name", func() error { _, err := d.StatAt(strings.Repeat("n", 256)+"/x", false); return err }, syscall.ENAMETOOLONG},
		{"StatAt long path", func() error { _, err := d.StatAt(strings.Repeat("d/../", 820)+"f", false); return err }, syscall.ENAMETOOLONG},
		{"StatAt NUL", func() error { _, err := d.StatAt("f\x00", false); return err }, syscall.EINVAL},
	}
	for _, c := range cases {
		if err := c.err(); !isErr(err, c.want) {
			t.Errorf("%s = %v, want %v", c.name, err, c.want)
		}
	}
	for _, p := range []string{"new2", "g"} {
		if _, err := os.Lstat(filepath.Join(e.root, "d", p)); err != nil {
			t.Errorf("d/%s: %v", p, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(e.root, "lnew")); err != nil || target != "d/g" {
		t.Errorf("lnew -> %q, %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "empty2")); err != nil {
		t.Errorf("empty2: %v", err)
	}
}

func TestOpenPOSIX(t *testing.T) {
	e := newEnv(t, false, posixTree(t))
	d := e.d
	cases := []struct {
		path string
		o    vfs.OpenOptions
		want error
		ft   fd.Filetype
	}{
		{"f", rd, nil, fd.FiletypeRegularFile},
		{"f/", rd, syscall.ENOTDIR, 0},
		{"f", dirO, syscall.ENOTDIR, 0},
		{"d", rd, nil, fd.FiletypeDirectory},
		{"d/", dirO, nil, fd.FiletypeDirectory},
		{"d", wr, syscall.EISDIR, 0},
		{"d", vfs.OpenOptions{Write: true}, syscall.EISDIR, 0},
		{"d", create, syscall.EISDIR, 0},
		{"d", vfs.OpenOptions{Read: true, Trunc: true}, syscall.EISDIR, 0},
		{"d", vfs.OpenOptions{Read: true, Write: true, Directory: true}, syscall.EISDIR, 0},
		{"f", excl, syscall.EEXIST, 0},
		{"dangling", excl, syscall.EEXIST, 0},
		{"lf", vfs.OpenOptions{Read: true}, syscall.ELOOP, 0},
		{"lf", rd, nil, fd.FiletypeRegularFile},
		{"llf", rd, nil, fd.FiletypeRegularFile},
		{"lg", rd, nil, fd.FiletypeRegularFile},
		{"ld", dirO, nil, fd.FiletypeDirectory},
		{"ld/", vfs.OpenOptions{Read: true, Directory: true}, nil, fd.FiletypeDirectory},
		{"ld/g", vfs.OpenOptions{Read: true}, nil, fd.FiletypeRegularFile},
		{"nope", rd, syscall.ENOENT, 0},
		{"nope/x", create, syscall.ENOENT, 0},
		{"new/", create, syscall.EISDIR, 0},
		{"d/sub/../new", excl, nil, fd.FiletypeRegularFile},
		{"d//sub/./..//new2", create, nil, fd.FiletypeRegularFile},
		{".", dirO, nil, fd.FiletypeDirectory},
		{"d/..", dirO, nil, fd.FiletypeDirectory},
		{"", rd, syscall.ENOENT, 0},
		{strings.Repeat("n", 256), create, syscall.ENAMETOOLONG, 0},
	}
	for _, c := range cases {
		f, err := d.Open(c.path, c.o)
		if !isErr(err, c.want) {
			t.Errorf("Open(%q, %+v) = %v, want %v", c.path, c.o, err, c.want)
		}
		if err != nil {
			continue
		}
		if f.Filetype() != c.ft {
			t.Errorf("Open(%q): filetype %v, want %v", c.path, f.Filetype(), c.ft)
		}
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(e.root, "d", "new")); err != nil {
		t.Errorf("d/new not created: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.root, "d", "new2")); err != nil {
		t.Errorf("d/new2 not created: %v", err)
	}

	// A Dir opened beneath works relative to itself and stays beneath
	// itself.
	sub := open(t, d, "d", dirO).(vfs.Dir)
	defer sub.Close()
	if st, err := sub.StatAt("g", false); err != nil || st.Size != 3 {
		t.Errorf("sub StatAt(g) = %+v, %v", st, err)
	}
	if _, err := sub.StatAt("../f", false); !isErr(err, vfs.ErrNotCapable) {
		t.Errorf("sub StatAt(../f) = %v, want ErrNotCapable", err)
	}
	if _, err := sub.Open("../f", rd); !isErr(err, vfs.ErrNotCapable) {
		t.Errorf("sub Open(../f) = %v, want ErrNotCapable", err)
	}
	// Rename and Link between two Dirs of the source.
	must(t, d.Rename("f", sub, "moved"))
	must(t, sub.Link("moved", false, d, "f"))
	if st, err := d.StatAt("f", false); err != nil || st.Nlink != 2 {
		t.Errorf("after Link: %+v, %v", st, err)
	}
	if err := d.Rename("f", otherDir{}, "x"); !isErr(err, syscall.EXDEV) {
		t.Errorf("Rename to another source = %v, want EXDEV", err)
	}
	if err := d.Link("f", false, otherDir{}, "x"); !isErr(err, syscall.EXDEV) {
		t.Errorf("Link to another source = %v, want EXDEV", err)
	}
	// Link with follow links what the symlink names, not the symlink.
	must(t, d.Link("lg", true, d, "glink"))
	if st, err := d.StatAt("glink", false); err != nil || st.Type != fd.FiletypeRegularFile || st.Size != 3 {
		t.Errorf("followed link: %+v, %v", st, err)
	}
	must(t, d.Link("lg", false, d, "lglink"))
	if st, err := d.StatAt("lglink", false); err != nil || st.Type != fd.FiletypeSymbolicLink {
		t.Errorf("unfollowed link: %+v, %v", st, err)
	}
}

// otherDir stands for a directory of another source.
type otherDir struct{ vfs.Dir }

func TestStatAndTimes(t *testing.T) {
	e := newEnv(t, false, posixTree(t))
	d := e.d
	for _, c := range []struct {
		path   string
		follow bool
		ft     fd.Filetype
		size   uint64
	}{
		{"f", false, fd.FiletypeRegularFile, 4},
		{"lf", false, fd.FiletypeSymbolicLink, 1},
		{"lf", true, fd.FiletypeRegularFile, 4},
		{"llf", true, fd.FiletypeRegularFile, 4},
		{"lg", true, fd.FiletypeRegularFile, 3},
		{"ld", false, fd.FiletypeSymbolicLink, 1},
		{"ld/", false, fd.FiletypeDirectory, 0},
		{"ld", true, fd.FiletypeDirectory, 0},
		{".", false, fd.FiletypeDirectory, 0},
		{"d/sub/..", false, fd.FiletypeDirectory, 0},
	} {
		st, err := d.StatAt(c.path, c.follow)
		if err != nil || st.Type != c.ft || (c.ft != fd.FiletypeDirectory && st.Size != c.size) {
			t.Errorf("StatAt(%q, %v) = %+v, %v; want type %v size %d", c.path, c.follow, st, err, c.ft, c.size)
		}
	}
	// Stat of the Dir and of "." agree; Ino and Dev are the host's.
	st, err := d.Stat()
	must(t, err)
	dot, err := d.StatAt(".", true)
	must(t, err)
	if st.Ino != dot.Ino || st.Dev != dot.Dev {
		t.Errorf("Stat %+v, StatAt(.) %+v", st, dot)
	}
	var hst syscall.Stat_t
	must(t, syscall.Stat(e.root, &hst))
	if st.Ino != hst.Ino {
		t.Errorf("Ino %d, host %d", st.Ino, hst.Ino)
	}

	// SetTimesAt with and without follow.
	must(t, d.SetTimesAt("lf", true, vfs.Times{SetAtim: true, Atim: 3e9, SetMtim: true, Mtim: 4e9}))
	if st, _ := d.StatAt("f", false); st.Atim != 3e9 || st.Mtim != 4e9 {
		t.Errorf("followed SetTimesAt: %+v", st)
	}
	must(t, d.SetTimesAt("lf", false, vfs.Times{SetMtim: true, Mtim: 7e9}))
	if st, _ := d.StatAt("lf", false); st.Mtim != 7e9 {
		t.Errorf("SetTimesAt on the symlink: %+v", st)
	}
	if st, _ := d.StatAt("f", false); st.Mtim != 4e9 {
		t.Errorf("SetTimesAt on the symlink changed its target: %+v", st)
	}
	must(t, d.SetTimesAt("d/sub/..", false, vfs.Times{SetMtim: true, Mtim: 5e9}))
	if st, _ := d.StatAt("d", false); st.Mtim != 5e9 {
		t.Errorf("SetTimesAt(d/sub/..): %+v", st)
	}
	must(t, d.SetTimes(vfs.Times{SetMtim: true, Mtim: 6e9}))
	if st, _ := d.Stat(); st.Mtim != 6e9 {
		t.Errorf("SetTimes: %+v", st)
	}
	if err := d.SetTimesAt("dangling", true, vfs.Times{MtimNow: true}); !isErr(err, syscall.ENOENT) {
		t.Errorf("SetTimesAt dangling = %v", err)
	}
	must(t, d.Sync())
}
