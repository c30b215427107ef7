package tree_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
	"github.com/enarx-go/enarx/keep/internal/vfs/tree"
)

var loadNames = []string{"a", "b", "c", "", ".", "..", "a/b", strings.Repeat("x", vfs.MaxName+1), "d"}

// snapshotFrom decodes b into a snapshot: b[0] the root, b[1] NextIno,
// then records of [ino, type, n, n × (name, ino), target].
func snapshotFrom(b []byte) *tree.Snapshot {
	if len(b) < 2 {
		return &tree.Snapshot{}
	}
	s := &tree.Snapshot{Root: uint64(b[0] % 10), NextIno: uint64(b[1] % 20)}
	types := []fd.Filetype{fd.FiletypeDirectory, fd.FiletypeRegularFile, fd.FiletypeSymbolicLink, fd.FiletypeSocketStream}
	targets := []string{"a", "", "../..", strings.Repeat("t", vfs.MaxPath+1), "/x"}
	b = b[2:]
	for len(b) >= 3 && len(s.Nodes) < 32 {
		r := tree.Record{Ino: uint64(b[0] % 16), Type: types[int(b[1])%len(types)]}
		n := int(b[2] % 6)
		b = b[3:]
		for ; n > 0 && len(b) >= 2; n-- {
			r.Entries = append(r.Entries, tree.Entry{Name: loadNames[int(b[0])%len(loadNames)], Ino: uint64(b[1] % 16)})
			b = b[2:]
		}
		if len(b) > 0 {
			r.Target = targets[int(b[0])%len(targets)]
			b = b[1:]
		}
		s.Nodes = append(s.Nodes, r)
	}
	return s
}

// FuzzLoad: Load never panics on any snapshot, and one it accepts is a
// proper tree: every node reachable, every directory linked once, link
// counts right, and taking a snapshot of it and loading that gives the
// same namespace.
func FuzzLoad(f *testing.F) {
	f.Add([]byte{1, 5, 1, 0, 2, 0, 2, 1, 3, 2, 0, 0, 1, 2, 1, 1, 3, 4, 2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		snap := snapshotFrom(b)
		tr, err := tree.Load(snap, tree.Options{Store: newByteStore()})
		if err != nil {
			return
		}
		got := tr.Snapshot()
		if len(got.Nodes) != len(snap.Nodes) || got.Root != snap.Root || got.NextIno != snap.NextIno {
			t.Fatalf("loaded %d nodes of %d", len(got.Nodes), len(snap.Nodes))
		}
		links := map[uint64]uint64{}
		byIno := map[uint64]tree.Record{}
		for _, r := range snap.Nodes {
			byIno[r.Ino] = r
		}
		for _, r := range got.Nodes {
			in := byIno[r.Ino]
			if r.Type != in.Type || !slices.Equal(r.Entries, in.Entries) {
				t.Fatalf("inode %d: loaded %+v from %+v", r.Ino, r, in)
			}
			for _, e := range r.Entries {
				links[e.Ino]++
			}
		}
		for _, r := range got.Nodes {
			switch {
			case r.Type == fd.FiletypeDirectory:
				sub := 0
				for _, e := range r.Entries {
					if byIno[e.Ino].Type == fd.FiletypeDirectory {
						sub++
					}
				}
				if r.Nlink != uint64(2+sub) || (r.Ino != got.Root && links[r.Ino] != 1) {
					t.Fatalf("directory %d: nlink %d, %d subdirectories, %d links", r.Ino, r.Nlink, sub, links[r.Ino])
				}
			case r.Nlink != links[r.Ino] || r.Nlink == 0:
				t.Fatalf("inode %d: nlink %d, linked %d times", r.Ino, r.Nlink, links[r.Ino])
			}
		}
		if _, err := tree.Load(got, tree.Options{Store: newByteStore()}); err != nil {
			t.Fatalf("reloading a snapshot of a loaded tree: %v", err)
		}
		// The namespace works: list and stat everything from the root.
		root := tr.Root()
		var walk func(d vfs.Dir, depth int)
		walk = func(d vfs.Dir, depth int) {
			ents, err := d.ReadDir(0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents[2:] {
				if _, err := d.StatAt(e.Name, false); err != nil {
					t.Fatalf("stat %q: %v", e.Name, err)
				}
				if e.Type == fd.FiletypeDirectory && depth < 40 {
					h, err := d.Open(e.Name, vfs.OpenOptions{Read: true})
					if err != nil {
						t.Fatal(err)
					}
					walk(h.(vfs.Dir), depth+1)
					h.Close()
				}
			}
		}
		walk(root, 0)
	})
}
