package hostfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// hostileTree puts symlinks leading out of root, loops and long chains
// into root.
func hostileTree(t testing.TB) func(root, outside string) {
	return func(root, outside string) {
		must(t, os.MkdirAll(filepath.Join(root, "d", "e"), 0o755))
		must(t, os.WriteFile(filepath.Join(root, "d", "secret"), []byte("inside"), 0o644))
		links := map[string]string{
			"abs":       outside,
			"etc":       "/etc",
			"up":        "../..",
			"upo":       "../outside",
			"chain1":    "chain2",
			"chain2":    "d/chain3",
			"d/chain3":  "../../outside/secret",
			"loop1":     "loop2",
			"loop2":     "loop1",
			"self":      "self",
			"d/esc":     "../../outside",
			"d/e/esc":   "../../../outside/sub",
			"dotdot":    "..",
			"d/updir":   "..",
			"d/rootabs": "/",
			"proc":      "/proc/self/root",
		}
		for l, target := range links {
			must(t, os.Symlink(target, filepath.Join(root, l)))
		}
		// A chain longer than the kernel's and vfs's limit of 40.
		for i := 0; i < 45; i++ {
			must(t, os.Symlink(fmt.Sprintf("long%d", i+1), filepath.Join(root, fmt.Sprintf("long%d", i))))
		}
		must(t, os.WriteFile(filepath.Join(root, "long45"), []byte("end"), 0o644))
	}
}

// pathOps runs every Dir call that takes a path on p and returns the
// errors by call name.
func pathOps(d vfs.Dir, p string) map[string]error {
	errs := map[string]error{}
	openErr := func(o vfs.OpenOptions) error {
		f, err := d.Open(p, o)
		if err == nil {
			f.Close()
		}
		return err
	}
	errs["Open"] = openErr(rd)
	errs["OpenNofollow"] = openErr(vfs.OpenOptions{Read: true})
	errs["OpenCreate"] = openErr(create)
	errs["OpenExcl"] = openErr(excl)
	errs["OpenTrunc"] = openErr(vfs.OpenOptions{Write: true, Trunc: true, Follow: true})
	errs["OpenDir"] = openErr(dirO)
	_, errs["StatAt"] = d.StatAt(p, true)
	_, errs["StatAtNofollow"] = d.StatAt(p, false)
	errs["SetTimesAt"] = d.SetTimesAt(p, true, vfs.Times{MtimNow: true, AtimNow: true})
	errs["SetTimesAtNofollow"] = d.SetTimesAt(p, false, vfs.Times{MtimNow: true})
	errs["Mkdir"] = d.Mkdir(p)
	errs["Symlink"] = d.Symlink("x", p)
	errs["LinkFrom"] = d.Link(p, true, d, "linked")
	d.Unlink("linked")
	errs["LinkTo"] = d.Link("d/secret", false, d, p)
	_, errs["Readlink"] = d.Readlink(p)
	errs["RenameTo"] = d.Rename("d/tmp", d, p)
	errs["RenameFrom"] = d.Rename(p, d, "renamed")
	d.Rename("renamed", d, p) // put back whatever moved (inside)
	errs["Unlink"] = d.Unlink(p)
	errs["Rmdir"] = d.Rmdir(p)
	return errs
}

func TestHostilePaths(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, c := range []struct {
		path string
		want error // of every call (nil: look only at the sentinel)
	}{
		{"/", vfs.ErrNotCapable},
		{"/etc/passwd", vfs.ErrNotCapable},
		{"//etc", vfs.ErrNotCapable},
		{"..", vfs.ErrNotCapable},
		{"../", vfs.ErrNotCapable},
		{"../outside/secret", vfs.ErrNotCapable},
		{"../outside/new", vfs.ErrNotCapable},
		{"d/../../outside/secret", vfs.ErrNotCapable},
		{"d/../../outside/sub/..", vfs.ErrNotCapable},
		{"d/e/../../../outside", vfs.ErrNotCapable},
		{"./../outside", vfs.ErrNotCapable},
		{"abs/secret", vfs.ErrNotCapable},
		{"abs/new", vfs.ErrNotCapable},
		{"etc/passwd", vfs.ErrNotCapable},
		{"up/outside/secret", vfs.ErrNotCapable},
		{"upo/secret", vfs.ErrNotCapable},
		{"upo/sub/new", vfs.ErrNotCapable},
		{"d/esc/secret", vfs.ErrNotCapable},
		{"d/e/esc/x", vfs.ErrNotCapable},
		{"dotdot/outside", vfs.ErrNotCapable},
		{"d/updir/dotdot/x", vfs.ErrNotCapable},
		{"d/rootabs/etc", vfs.ErrNotCapable},
		{"proc/etc", vfs.ErrNotCapable},
		{"loop1/x", syscall.ELOOP},
		{"self/x", syscall.ELOOP},
		{"long0/x", syscall.ELOOP},
		{long, syscall.ENAMETOOLONG},
		{"d/" + long + "/x", syscall.ENAMETOOLONG},
		{strings.Repeat("d/", vfs.MaxPath/2+1), syscall.ENAMETOOLONG},
		// Final symlinks: refused when followed, the link itself
		// otherwise (so no single expected error).
		{"abs", nil},
		{"etc", nil},
		{"up", nil},
		{"upo", nil},
		{"chain1", nil},
		{"dotdot", nil},
		{"d/rootabs", nil},
		{"proc", nil},
		{"loop1", nil},
		{"long0", nil},
		{"d/esc/", nil},
		{"upo/", nil},
		{"upo/.", vfs.ErrNotCapable},
		{"abs/..", vfs.ErrNotCapable},
	} {
		// A fresh tree each time: the calls change what is inside.
		e := newEnv(t, false, hostileTree(t))
		before := e.snapshot(t)
		for op, err := range pathOps(e.d, c.path) {
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("%s(%.40q) = %v, want %v", op, c.path, err, c.want)
			}
		}
		if after := e.snapshot(t); after != before {
			t.Fatalf("calls on %q changed the outside:\n%s\n%s", c.path, before, after)
		}
	}
	// Followed final symlinks leading out: ErrNotCapable; loops: ELOOP.
	e := newEnv(t, false, hostileTree(t))
	before := e.snapshot(t)
	for _, c := range []struct {
		path string
		want error
	}{
		{"abs", vfs.ErrNotCapable}, {"etc", vfs.ErrNotCapable}, {"up", vfs.ErrNotCapable},
		{"upo", vfs.ErrNotCapable}, {"chain1", vfs.ErrNotCapable}, {"dotdot", vfs.ErrNotCapable},
		{"d/rootabs", vfs.ErrNotCapable}, {"proc", vfs.ErrNotCapable}, {"d/esc/", vfs.ErrNotCapable},
		{"loop1", syscall.ELOOP}, {"self", syscall.ELOOP}, {"long0", syscall.ELOOP},
	} {
		if _, err := e.d.Open(c.path, rd); !errors.Is(err, c.want) {
			t.Errorf("Open(%q, follow) = %v, want %v", c.path, err, c.want)
		}
		if _, err := e.d.StatAt(c.path, true); !errors.Is(err, c.want) {
			t.Errorf("StatAt(%q, follow) = %v, want %v", c.path, err, c.want)
		}
		if err := e.d.SetTimesAt(c.path, true, vfs.Times{MtimNow: true}); !errors.Is(err, c.want) {
			t.Errorf("SetTimesAt(%q, follow) = %v, want %v", c.path, err, c.want)
		}
		if err := e.d.Link(c.path, true, e.d, "x"); !errors.Is(err, c.want) {
			t.Errorf("Link(%q, follow) = %v, want %v", c.path, err, c.want)
		}
		if st, err := e.d.StatAt(c.path, false); err != nil && !strings.HasSuffix(c.path, "/") {
			t.Errorf("StatAt(%q, nofollow) = %+v, %v", c.path, st, err)
		}
	}
	// 40 links are followed, as in the kernel.
	for _, p := range []string{"long5", "long4"} {
		_, errStat := e.d.StatAt(p, true)
		f, errOpen := e.d.Open(p, rd)
		if errOpen == nil {
			f.Close()
		}
		if (errStat == nil) != (errOpen == nil) {
			t.Errorf("%s: StatAt %v, Open %v: the same chain resolves differently", p, errStat, errOpen)
		}
		if p == "long5" && errStat != nil {
			t.Errorf("StatAt(long5: 40 links) = %v", errStat)
		}
		if p == "long4" && !errors.Is(errStat, syscall.ELOOP) {
			t.Errorf("StatAt(long4: 41 links) = %v, want ELOOP", errStat)
		}
	}
	// Dot segments that stay inside are fine.
	for _, p := range []string{"d/./secret", "d/e/../secret", "./d//secret", "d/e/../../d/secret", "d/updir/d/secret"} {
		f, err := e.d.Open(p, rd)
		if err != nil {
			t.Errorf("Open(%q) = %v", p, err)
			continue
		}
		f.Close()
	}
	if after := e.snapshot(t); after != before {
		t.Fatalf("the outside changed:\n%s\n%s", before, after)
	}
}

// TestSwapRace: while the host swaps a subdirectory for a symlink leading
// out (atomically, renameat2 RENAME_EXCHANGE, over and over), calls
// beneath it only ever reach the real subdirectory.
func TestSwapRace(t *testing.T) {
	e := newEnv(t, false, func(root, outside string) {
		must(t, os.Mkdir(filepath.Join(root, "d"), 0o755))
		must(t, os.WriteFile(filepath.Join(root, "d", "secret"), []byte("inside"), 0o644))
		must(t, os.Symlink(outside, filepath.Join(root, "swap")))
		must(t, os.Mkdir(filepath.Join(root, "e"), 0o755))
		must(t, os.Symlink("../outside", filepath.Join(root, "e", "swap")))
		must(t, os.Mkdir(filepath.Join(root, "e", "d"), 0o755))
		must(t, os.WriteFile(filepath.Join(root, "e", "d", "secret"), []byte("inside"), 0o644))
	})
	before := e.snapshot(t)
	var inside [2]uint64
	for i, p := range []string{"d/secret", "e/d/secret"} {
		st, err := e.d.StatAt(p, false)
		must(t, err)
		inside[i] = st.Ino
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, dir := range []string{e.root, filepath.Join(e.root, "e")} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, b := filepath.Join(dir, "d"), filepath.Join(dir, "swap")
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE); err != nil {
					t.Errorf("swap: %v", err)
					return
				}
			}
		}()
	}
	var ok, refused atomic.Int64
	buf := make([]byte, 16)
	check := func(err error) {
		switch {
		case err == nil:
			ok.Add(1)
		case errors.Is(err, vfs.ErrNotCapable):
			refused.Add(1)
		}
	}
	for i := 0; i < 200000 && (ok.Load() < 2000 || refused.Load() < 2000); i++ {
		for j, p := range []string{"d", "e/d"} {
			f, err := e.d.Open(p+"/secret", rd)
			check(err)
			if err == nil {
				n, _ := f.(vfs.File).Read(buf, false)
				st, _ := f.(vfs.File).Stat()
				f.Close()
				if string(buf[:n]) != "inside" || st.Ino != inside[j] {
					t.Fatalf("Open(%s/secret) read %q (ino %d) during the swap", p, buf[:n], st.Ino)
				}
			}
			st, err := e.d.StatAt(p+"/secret", true)
			check(err)
			if err == nil && st.Ino != inside[j] {
				t.Fatalf("StatAt(%s/secret) reached ino %d during the swap", p, st.Ino)
			}
			name := fmt.Sprintf("%s/n%d", p, i)
			f, err = e.d.Open(name, excl)
			check(err)
			if err == nil {
				f.Close()
			}
			check(e.d.Mkdir(name + "m"))
			check(e.d.Symlink("x", name+"s"))
			check(e.d.SetTimesAt(p+"/secret", true, vfs.Times{SetMtim: true, Mtim: 1}))
			check(e.d.Link(p+"/secret", false, e.d, name+"l"))
			check(e.d.Unlink(p + "/secret2"))
			check(e.d.Rename(p+"/nothing", e.d, name+"r"))
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d calls succeeded, %d refused (ErrNotCapable) while swapping", ok.Load(), refused.Load())
	if ok.Load() == 0 || refused.Load() == 0 {
		t.Errorf("the race did not happen both ways: %d succeeded, %d refused", ok.Load(), refused.Load())
	}
	if after := e.snapshot(t); after != before {
		t.Fatalf("the outside changed during the swap race:\n%s\n%s", before, after)
	}
}
