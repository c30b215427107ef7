package tree_test

import (
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

// byteStore is a plain store: each file a []byte, kept by inode number
// (as a persistent store keeps them on disk), commits and frees recorded.
type byteStore struct {
	mu      sync.Mutex
	files   map[uint64]*byteContent
	commits []*tree.Snapshot
	freed   []uint64
	charged int64
	syncs   int
}

type byteContent struct {
	s    *byteStore
	data []byte
}

func newByteStore() *byteStore { return &byteStore{files: map[uint64]*byteContent{}} }

func (s *byteStore) New(ino uint64) (tree.Content, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &byteContent{s: s}
	s.files[ino] = c
	return c, nil
}

func (s *byteStore) Open(ino uint64, size int64) (tree.Content, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.files[ino]
	if c == nil && size == 0 {
		c = &byteContent{s: s}
		s.files[ino] = c
	}
	if c == nil || int64(len(c.data)) != size {
		return nil, syscall.EIO
	}
	return c, nil
}

func (s *byteStore) Free(ino uint64, c tree.Content) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.freed = append(s.freed, ino)
	delete(s.files, ino)
}

func (s *byteStore) Charge(n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.charged += n
	return nil
}

func (s *byteStore) Commit(t *tree.Tree) error {
	snap := t.Snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commits = append(s.commits, snap)
	return nil
}

func (c *byteContent) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(c.data)) {
		return 0, io.EOF
	}
	n := copy(p, c.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (c *byteContent) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(c.data)) {
		c.data = append(c.data, make([]byte, end-int64(len(c.data)))...)
	}
	return copy(c.data[off:], p), nil
}

func (c *byteContent) Truncate(size int64) error {
	if size <= int64(len(c.data)) {
		c.data = c.data[:size]
	} else {
		c.data = append(c.data, make([]byte, size-int64(len(c.data)))...)
	}
	return nil
}

func (c *byteContent) Size() int64 { return int64(len(c.data)) }

func (c *byteContent) Sync() error {
	c.s.mu.Lock()
	c.s.syncs++
	c.s.mu.Unlock()
	return nil
}

func newTestTree(t *testing.T, o tree.Options) *tree.Tree {
	t.Helper()
	if o.Store == nil {
		o.Store = newByteStore()
	}
	tr, err := tree.New(o)
	must(t, "tree", err)
	return tr
}

func TestCommitAndSnapshot(t *testing.T) {
	s := newByteStore()
	tr := newTestTree(t, tree.Options{Store: s, Dev: 7})
	root := tr.Root()
	must(t, "mkdir", root.Mkdir("d"))
	writeFile(t, root, "d/f", "data")
	must(t, "link", root.Link("d/f", false, root, "g"))
	must(t, "symlink", root.Symlink("d/f", "s"))
	must(t, "mkdir", root.Mkdir("d/e"))
	f := openFile(t, root, "g", rw)
	f.Write([]byte("DATA"), false)
	gen := tr.Gen()
	must(t, "fsync", f.Sync())
	if s.syncs != 1 || len(s.commits) != 1 {
		t.Fatalf("fsync: %d content syncs, %d commits", s.syncs, len(s.commits))
	}
	must(t, "dir sync", root.Sync())
	if len(s.commits) != 2 {
		t.Fatal("directory sync did not commit")
	}
	snap := s.commits[1]
	if snap.Gen != gen || len(snap.Nodes) != 5 {
		t.Fatalf("snapshot gen %d (tree %d), %d nodes", snap.Gen, gen, len(snap.Nodes))
	}
	byIno := map[uint64]tree.Record{}
	for _, r := range snap.Nodes {
		byIno[r.Ino] = r
	}
	rootRec := byIno[snap.Root]
	if rootRec.Type != fd.FiletypeDirectory || len(rootRec.Entries) != 3 {
		t.Fatalf("root record %+v", rootRec)
	}
	st, _ := root.StatAt("g", false)
	if r := byIno[st.Ino]; r.Size != 4 || r.Nlink != 2 || r.Content == nil {
		t.Fatalf("file record %+v", r)
	}

	// An unlinked open file is not in a snapshot; Load rebuilds the rest.
	writeFile(t, root, "tmp", "t")
	tmp := openFile(t, root, "tmp", rdonly)
	must(t, "unlink", root.Unlink("tmp"))
	snap = tr.Snapshot()
	if len(snap.Nodes) != 5 {
		t.Fatalf("snapshot has %d nodes", len(snap.Nodes))
	}
	tmp.Close()
	tr2, err := tree.Load(snap, tree.Options{Store: s, Dev: 7})
	must(t, "load", err)
	r2 := tr2.Root()
	if got := readFile(t, r2, "s"); got != "DATA" {
		t.Fatalf("loaded file %q", got)
	}
	for _, p := range []string{"d", "d/e", "d/f", "g", "s", "."} {
		a, err1 := root.StatAt(p, false)
		b, err2 := r2.StatAt(p, false)
		if err1 != nil || err2 != nil || a != b {
			t.Fatalf("%s: %+v %v vs loaded %+v %v", p, a, err1, b, err2)
		}
	}
	if got := names(t, r2); !slices.Equal(got, names(t, root)) {
		t.Fatalf("loaded listing %q", got)
	}
	must(t, "mkdir after load", r2.Mkdir("new"))
	st, _ = r2.StatAt("new", false)
	if st.Ino != snap.NextIno {
		t.Fatalf("new inode %d after load, next was %d", st.Ino, snap.NextIno)
	}
}

func TestLoadRejects(t *testing.T) {
	good := func() *tree.Snapshot {
		return &tree.Snapshot{Root: 1, NextIno: 5, Nodes: []tree.Record{
			{Ino: 1, Type: fd.FiletypeDirectory, Entries: []tree.Entry{{Name: "d", Ino: 2}, {Name: "s", Ino: 4}}},
			{Ino: 2, Type: fd.FiletypeDirectory, Entries: []tree.Entry{{Name: "f", Ino: 3}}},
			{Ino: 3, Type: fd.FiletypeRegularFile},
			{Ino: 4, Type: fd.FiletypeSymbolicLink, Target: "d/f"},
		}}
	}
	s := newByteStore()
	s.files[3] = &byteContent{s: s}
	if _, err := tree.Load(good(), tree.Options{Store: s}); err != nil {
		t.Fatalf("good snapshot: %v", err)
	}
	bad := map[string]func(*tree.Snapshot){
		"dir linked twice": func(s *tree.Snapshot) {
			s.Nodes[0].Entries = append(s.Nodes[0].Entries, tree.Entry{Name: "again", Ino: 2})
		},
		"cycle": func(s *tree.Snapshot) {
			s.Nodes[1].Entries = append(s.Nodes[1].Entries, tree.Entry{Name: "up", Ino: 1})
		},
		"unreachable":     func(s *tree.Snapshot) { s.Nodes[0].Entries = s.Nodes[0].Entries[:1] },
		"dangling entry":  func(s *tree.Snapshot) { s.Nodes[1].Entries[0].Ino = 9 },
		"bad name":        func(s *tree.Snapshot) { s.Nodes[1].Entries[0].Name = "a/b" },
		"dot name":        func(s *tree.Snapshot) { s.Nodes[1].Entries[0].Name = ".." },
		"duplicate name":  func(s *tree.Snapshot) { s.Nodes[0].Entries[1].Name = "d" },
		"root not dir":    func(s *tree.Snapshot) { s.Root = 3 },
		"ino too big":     func(s *tree.Snapshot) { s.NextIno = 4 },
		"ino twice":       func(s *tree.Snapshot) { s.Nodes[3].Ino = 3 },
		"empty target":    func(s *tree.Snapshot) { s.Nodes[3].Target = "" },
		"NUL in target":   func(s *tree.Snapshot) { s.Nodes[3].Target = "d\x00f" },
		"file entries":    func(s *tree.Snapshot) { s.Nodes[2].Entries = []tree.Entry{{Name: "x", Ino: 4}} },
		"unknown type":    func(s *tree.Snapshot) { s.Nodes[2].Type = fd.FiletypeSocketStream },
		"negative size":   func(s *tree.Snapshot) { s.Nodes[2].Size = -1 },
		"content missing": func(s *tree.Snapshot) { s.Nodes[2].Size = 10 },
	}
	for name, mutate := range bad {
		snap := good()
		mutate(snap)
		if _, err := tree.Load(snap, tree.Options{Store: s}); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
	if _, err := tree.Load(&tree.Snapshot{}, tree.Options{Store: s}); err == nil {
		t.Error("empty snapshot loaded")
	}
}

func TestReadOnly(t *testing.T) {
	s := newByteStore()
	rwTree := newTestTree(t, tree.Options{Store: s})
	root := rwTree.Root()
	must(t, "mkdir", root.Mkdir("d"))
	writeFile(t, root, "f", "x")
	snap := rwTree.Snapshot()
	ro, err := tree.Load(snap, tree.Options{Store: s, ReadOnly: true})
	must(t, "load", err)
	r := ro.Root()
	wantErr(t, "mkdir", r.Mkdir("x"), syscall.EROFS)
	wantErr(t, "rmdir", r.Rmdir("d"), syscall.EROFS)
	wantErr(t, "unlink", r.Unlink("f"), syscall.EROFS)
	wantErr(t, "symlink", r.Symlink("f", "s"), syscall.EROFS)
	wantErr(t, "link", r.Link("f", false, r, "g"), syscall.EROFS)
	wantErr(t, "rename", r.Rename("f", r, "g"), syscall.EROFS)
	wantErr(t, "set times", r.SetTimesAt("f", false, vfs.Times{MtimNow: true}), syscall.EROFS)
	_, err = r.Open("f", vfs.OpenOptions{Write: true})
	wantErr(t, "open for write", err, syscall.EROFS)
	_, err = r.Open("new", create)
	wantErr(t, "create", err, syscall.EROFS)
	_, err = r.Open("f", vfs.OpenOptions{Read: true, Trunc: true})
	wantErr(t, "trunc", err, syscall.EROFS)
	if got := readFile(t, r, "f"); got != "x" {
		t.Fatal("read-only read")
	}
	if r.Rights()&(1<<9) != 0 {
		t.Fatal("read-only dir grants path_create_directory")
	}
	must(t, "sync", r.Sync())
}
