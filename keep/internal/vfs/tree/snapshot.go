package tree

import (
	"fmt"
	"sort"

	"github.com/enarx-go/enarx/keep/internal/fd"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// Snapshot is a tree's namespace: what a persistent store serializes on
// Commit and hands back to Load.
type Snapshot struct {
	// Root is the root directory's inode number.
	Root uint64
	// NextIno is the next inode number the tree would assign (greater
	// than every Ino in Nodes).
	NextIno uint64
	// Gen is Tree.Gen when the snapshot was taken.
	Gen uint64
	// Nodes are the nodes reachable from the root, by inode number.
	Nodes []Record
}

// Record is one node of a Snapshot.
type Record struct {
	Ino  uint64
	Type fd.Filetype // FiletypeDirectory, FiletypeRegularFile or FiletypeSymbolicLink
	// Nlink is the link count (Load recomputes it from the entries).
	Nlink uint64
	// Size is a regular file's size (its Content's Size).
	Size             int64
	Atim, Mtim, Ctim int64
	// Target is a symlink's target.
	Target string
	// Entries are a directory's entries ("." and ".." excluded).
	Entries []Entry
	// Content is a regular file's content (Snapshot only; Load gets it
	// from Store.Open).
	Content Content
}

// Entry is a directory entry of a Record.
type Entry struct {
	Name string
	Ino  uint64
}

// Snapshot returns the tree's namespace. File sizes are read under each
// file's data lock, so a snapshot taken while a write is under way sees
// the file before or after it.
func (t *Tree) Snapshot() *Snapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &Snapshot{Root: t.root.ino, NextIno: t.nextIno, Gen: t.gen}
	// Iteratively (a tree may be deeper than is wise to recurse), each
	// node once (hard links).
	seen := make(map[*node]bool)
	stack := []*node{t.root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[n] {
			continue
		}
		seen[n] = true
		r := Record{Ino: n.ino, Type: n.kind, Nlink: n.nlink, Atim: n.atim, Mtim: n.mtim, Ctim: n.ctim}
		switch n.kind {
		case fd.FiletypeRegularFile:
			n.io.RLock()
			r.Content = n.content
			r.Size = n.content.Size()
			n.io.RUnlock()
		case fd.FiletypeSymbolicLink:
			r.Target = n.target
		case fd.FiletypeDirectory:
			r.Entries = make([]Entry, 0, len(n.entries))
			for _, e := range n.order {
				if !e.dead {
					r.Entries = append(r.Entries, Entry{Name: e.name, Ino: e.node.ino})
					stack = append(stack, e.node)
				}
			}
		}
		s.Nodes = append(s.Nodes, r)
	}
	sort.Slice(s.Nodes, func(i, j int) bool { return s.Nodes[i].Ino < s.Nodes[j].Ino })
	return s
}

// Load rebuilds a tree from s (as Snapshot returned it, possibly
// serialized and read back) with o's store, whose Open supplies each
// regular file's content. It checks s: inode numbers unique and below
// NextIno, the root a directory, every entry a valid name naming a node
// of s, every directory linked once (the root never) and reachable from
// the root, no node unreachable, symlink targets non-empty, without NUL
// and at most vfs.MaxPath bytes. Link counts are recomputed. Load charges the
// metadata to the store.
func Load(s *Snapshot, o Options) (*Tree, error) {
	t, err := newTree(o)
	if err != nil {
		return nil, err
	}
	if s == nil || len(s.Nodes) == 0 {
		return nil, fmt.Errorf("tree: load: empty snapshot")
	}
	nodes := make(map[uint64]*node, len(s.Nodes))
	recs := make(map[uint64]*Record, len(s.Nodes))
	var cost int64
	for i := range s.Nodes {
		r := &s.Nodes[i]
		if r.Ino == 0 || r.Ino >= s.NextIno {
			return nil, fmt.Errorf("tree: load: inode %d out of range (next %d)", r.Ino, s.NextIno)
		}
		if nodes[r.Ino] != nil {
			return nil, fmt.Errorf("tree: load: inode %d listed twice", r.Ino)
		}
		n := &node{ino: r.Ino, kind: r.Type, atim: r.Atim, mtim: r.Mtim, ctim: r.Ctim}
		switch r.Type {
		case fd.FiletypeDirectory:
			n.entries = make(map[string]*entry, len(r.Entries))
			n.nextSeq = firstSeq
			n.nlink = 2
		case fd.FiletypeRegularFile:
			if r.Size < 0 {
				return nil, fmt.Errorf("tree: load: file %d has size %d", r.Ino, r.Size)
			}
		case fd.FiletypeSymbolicLink:
			if err := checkPath(r.Target); err != nil {
				return nil, fmt.Errorf("tree: load: symlink %d has a target of %d bytes: %w", r.Ino, len(r.Target), err)
			}
			n.target = r.Target
		default:
			return nil, fmt.Errorf("tree: load: inode %d has type %d", r.Ino, r.Type)
		}
		if r.Type != fd.FiletypeDirectory && len(r.Entries) != 0 {
			return nil, fmt.Errorf("tree: load: non-directory %d has entries", r.Ino)
		}
		nodes[r.Ino] = n
		recs[r.Ino] = r
		cost += nodeCost(n)
	}
	root := nodes[s.Root]
	if root == nil || root.kind != fd.FiletypeDirectory {
		return nil, fmt.Errorf("tree: load: root %d is not a directory", s.Root)
	}
	root.parent = root
	// Link the entries breadth-first from the root, so that every
	// directory is reached once, from its parent.
	reached := map[*node]bool{root: true}
	queue := []*node{root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, e := range recs[d.ino].Entries {
			if err := vfs.ValidName(e.Name); err != nil {
				return nil, fmt.Errorf("tree: load: directory %d has an entry named %q: %w", d.ino, e.Name, err)
			}
			if d.entries[e.Name] != nil {
				return nil, fmt.Errorf("tree: load: directory %d has two entries named %q", d.ino, e.Name)
			}
			n := nodes[e.Ino]
			if n == nil {
				return nil, fmt.Errorf("tree: load: entry %q of directory %d names no inode (%d)", e.Name, d.ino, e.Ino)
			}
			if n.kind == fd.FiletypeDirectory {
				if reached[n] {
					return nil, fmt.Errorf("tree: load: directory %d is linked twice", n.ino)
				}
				queue = append(queue, n)
			} else {
				n.nlink++
			}
			reached[n] = true
			d.link(e.Name, n)
			cost += entryCost(e.Name)
		}
	}
	if len(reached) != len(nodes) {
		return nil, fmt.Errorf("tree: load: %d inodes are not reachable from the root", len(nodes)-len(reached))
	}
	if err := t.store.Charge(cost); err != nil {
		return nil, fmt.Errorf("tree: load: %w", err)
	}
	for ino, n := range nodes {
		if n.kind != fd.FiletypeRegularFile {
			continue
		}
		c, err := t.store.Open(ino, recs[ino].Size)
		if err != nil {
			for _, m := range nodes {
				if m.content != nil {
					t.store.Free(m.ino, m.content)
				}
			}
			t.store.Charge(-cost)
			return nil, fmt.Errorf("tree: load: file %d: %w", ino, err)
		}
		n.content = c
	}
	t.root = root
	t.nextIno = s.NextIno
	t.gen = s.Gen
	return t, nil
}
