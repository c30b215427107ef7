package tree_test

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

// TestReadDirCookies lists a directory a few entries at a time while
// entries are created and removed between the calls: an entry present
// for the whole listing is listed exactly once, a removed one is not
// listed after its removal, one created meanwhile at most once, and
// nothing twice.
func TestReadDirCookies(t *testing.T) {
	root := newRoot(t)
	must(t, "mkdir", root.Mkdir("d"))
	h, err := root.Open("d", rdonly)
	must(t, "open", err)
	d := h.(vfs.Dir)
	defer d.Close()
	for i := 0; i < 100; i++ {
		writeFile(t, d, fmt.Sprintf("f%03d", i), "")
	}
	seen := map[string]int{}
	removed := map[string]bool{}
	var cookie uint64
	created := 0
	for round := 0; round < 1000; round++ {
		ents, err := d.ReadDir(cookie, 3)
		must(t, "readdir", err)
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			seen[e.Name]++
			if removed[e.Name] {
				t.Errorf("%s listed after its removal", e.Name)
			}
			if e.Next <= cookie {
				t.Fatalf("cookie went back: %d after %d", e.Next, cookie)
			}
			cookie = e.Next
		}
		// Remove one entry not yet listed and one listed, create one.
		if victim := fmt.Sprintf("f%03d", 99-round); round < 40 {
			must(t, "unlink", d.Unlink(victim))
			removed[victim] = true
		}
		if round < 40 {
			must(t, "unlink", d.Unlink(fmt.Sprintf("f%03d", round)))
		}
		if round < 50 {
			writeFile(t, d, fmt.Sprintf("new%03d", created), "")
			created++
		}
	}
	for i := 0; i < created; i++ {
		if name := fmt.Sprintf("new%03d", i); seen[name] != 1 {
			t.Errorf("%s, created during the listing, listed %d times", name, seen[name])
		}
	}
	if seen["."] != 1 || seen[".."] != 1 {
		t.Fatalf(". and ..: %v", seen)
	}
	for i := 0; i < 100; i++ {
		name := fmt.Sprintf("f%03d", i)
		if seen[name] > 1 {
			t.Errorf("%s listed %d times", name, seen[name])
		}
		if !removed[name] && i >= 40 && seen[name] != 1 {
			t.Errorf("%s, never removed, listed %d times", name, seen[name])
		}
	}
	for name, n := range seen {
		if n > 1 {
			t.Errorf("%s listed %d times", name, n)
		}
	}
	// A cookie from before stays valid after the entry it followed is gone.
	ents, _ := d.ReadDir(0, 5)
	last := ents[4]
	must(t, "unlink", d.Unlink(last.Name))
	rest, _ := d.ReadDir(last.Next, 1000)
	all, _ := d.ReadDir(0, 1000)
	if len(rest) != len(all)-4 {
		t.Fatalf("continuing after a removed entry: %d of %d", len(rest), len(all))
	}
	// Entry types and inodes.
	must(t, "mkdir", d.Mkdir("sub"))
	must(t, "symlink", d.Symlink("sub", "sl"))
	all, _ = d.ReadDir(0, 1000)
	types := map[string]fd.Filetype{}
	for _, e := range all[2:] {
		types[e.Name] = e.Type
		st, err := d.StatAt(e.Name, false)
		must(t, "stat", err)
		if st.Ino != e.Ino {
			t.Errorf("%s: dirent ino %d, stat %d", e.Name, e.Ino, st.Ino)
		}
	}
	if types["sub"] != fd.FiletypeDirectory || types["sl"] != fd.FiletypeSymbolicLink || types["new000"] != fd.FiletypeRegularFile {
		t.Fatalf("types %v", types)
	}
	if ents, _ := d.ReadDir(1<<62, 10); len(ents) != 0 {
		t.Fatal("cookie past the end lists entries")
	}
	if ents, _ := d.ReadDir(0, 0); len(ents) != 0 {
		t.Fatal("max 0 lists entries")
	}
}

// TestConcurrent runs namespace changes, listings, stats and file I/O from
// several goroutines (run with -race); at the end the tree is consistent.
func TestConcurrent(t *testing.T) {
	root := newRoot(t)
	must(t, "mkdir", root.Mkdir("shared"))
	writeFile(t, root, "shared/file", "")
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			dir := fmt.Sprintf("w%d", w)
			if err := root.Mkdir(dir); err != nil {
				t.Error(err)
				return
			}
			f, err := root.Open("shared/file", rw)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			file := f.(vfs.File)
			buf := make([]byte, 512)
			for i := 0; i < 200; i++ {
				p := fmt.Sprintf("%s/%d", dir, i%10)
				switch i % 6 {
				case 0:
					root.Mkdir(p)
				case 1:
					root.Rmdir(p)
					root.Unlink(p)
				case 2:
					if g, err := root.Open(p, create); err == nil {
						g.(vfs.File).Write(buf, false)
						g.Close()
					}
				case 3:
					root.Rename(p, root, fmt.Sprintf("w%d/%d", (w+1)%6, i%7))
				case 4:
					root.ReadDir(0, 100)
					root.StatAt(p, true)
				case 5:
					file.WriteAt(buf, int64(w*512))
					file.ReadAt(buf, int64(((w+1)%6)*512))
					file.Stat()
					root.Symlink("../shared", p)
				}
			}
		}(w)
	}
	wg.Wait()
	// Every listed entry stats, and every directory's nlink is 2 + its
	// subdirectories.
	var check func(d vfs.Dir, path string)
	check = func(d vfs.Dir, path string) {
		ents, err := d.ReadDir(0, 1<<20)
		must(t, "readdir "+path, err)
		subdirs := 0
		for _, e := range ents[2:] {
			st, err := d.StatAt(e.Name, false)
			if err != nil || st.Ino != e.Ino || st.Type != e.Type {
				t.Fatalf("%s/%s: %+v %v vs %+v", path, e.Name, st, err, e)
			}
			if e.Type == fd.FiletypeDirectory {
				subdirs++
				h, err := d.Open(e.Name, rdonly)
				must(t, "open", err)
				check(h.(vfs.Dir), path+"/"+e.Name)
				h.Close()
			}
		}
		st, _ := d.Stat()
		if st.Nlink != uint64(2+subdirs) {
			t.Fatalf("%s: nlink %d with %d subdirectories", path, st.Nlink, subdirs)
		}
	}
	check(root, ".")
	f := openFile(t, root, "shared/file", rdonly)
	defer f.Close()
	if st, _ := f.Stat(); st.Size != 6*512 {
		t.Fatalf("shared file size %d", st.Size)
	}
	n, err := f.ReadAt(make([]byte, 8192), 0)
	if n != 6*512 || err != io.EOF {
		t.Fatalf("read %d %v", n, err)
	}
}

// TestCloseWhileInUse closes an unlinked file while other goroutines read,
// write, truncate and stat it (run with -race): every call succeeds or
// fails with EBADF, and the content is freed once.
func TestCloseWhileInUse(t *testing.T) {
	for round := 0; round < 20; round++ {
		s := newByteStore()
		root := newTestTree(t, tree.Options{Store: s}).Root()
		f := openFile(t, root, "f", create)
		f.Write(make([]byte, 1000), false)
		must(t, "unlink", root.Unlink("f"))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				<-start
				buf := make([]byte, 100)
				for i := 0; i < 50; i++ {
					var err error
					switch (w + i) % 5 {
					case 0:
						_, err = f.ReadAt(buf, 10)
					case 1:
						_, err = f.WriteAt(buf, 20)
					case 2:
						err = f.Truncate(500)
					case 3:
						_, err = f.Seek(0, io.SeekEnd)
					case 4:
						err = f.Sync()
					}
					if err != nil && !errors.Is(err, syscall.EBADF) {
						t.Errorf("call %d: %v", (w+i)%5, err)
					}
				}
			}(w)
		}
		close(start)
		f.Close()
		wg.Wait()
		if len(s.freed) != 1 || len(s.files) != 0 {
			t.Fatalf("freed %v, left %d", s.freed, len(s.files))
		}
	}
}
