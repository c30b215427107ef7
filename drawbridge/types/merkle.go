package types

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
)

// Node is one node of a tree as it is uploaded: its path, the entry that
// names it in its parent (or in the tag, for the root), and its content
// source. Directory nodes carry their canonical JSON in Content; file nodes
// carry the file's name in the file system they were built from in File.
type Node struct {
	Path    TreePath
	Entry   Entry
	Content []byte // directory JSON; nil for a file node
	File    string // fs path of a file node; "" for a directory node
}

// isDir reports whether n is a directory node.
func (n Node) isDir() bool { return n.Entry.Type == DirectoryType }

// maxTreeNodes bounds the nodes BuildTree accepts.
const maxTreeNodes = 100000

// BuildTree walks root inside fsys and computes the Merkle tree bottom-up:
// each file is hashed, each directory's canonical JSON is built from its
// children's entries and hashed. If root is a regular file the tree is that
// single file. Nested directories are allowed. Entries that are neither
// regular files nor directories, and names that are not valid tree names,
// are errors. mediaType chooses a file's type from its name (nil means
// MediaTypeFor).
//
// The result lists the root first, then every other node in byte-wise order
// of its path components, so parents precede children: the order in which
// to upload them.
func BuildTree(fsys fs.FS, root string, mediaType func(name string) string) ([]Node, error) {
	if mediaType == nil {
		mediaType = MediaTypeFor
	}
	var nodes []Node
	var walk func(p TreePath, name string) (Entry, error)
	walk = func(p TreePath, name string) (Entry, error) {
		if len(nodes) >= maxTreeNodes {
			return Entry{}, fmt.Errorf("tree has more than %d nodes", maxTreeNodes)
		}
		if len(p) > MaxPathDepth {
			return Entry{}, fmt.Errorf("%s: nested deeper than %d levels", name, MaxPathDepth)
		}
		st, err := fs.Stat(fsys, name)
		if err != nil {
			return Entry{}, err
		}
		switch {
		case st.Mode().IsRegular():
			f, err := fsys.Open(name)
			if err != nil {
				return Entry{}, err
			}
			defer f.Close()
			e, err := FileEntry(f, mediaType(path.Base(name)))
			if err != nil {
				return Entry{}, fmt.Errorf("%s: %w", name, err)
			}
			nodes = append(nodes, Node{Path: p, Entry: e, File: name})
			return e, nil
		case st.IsDir():
			des, err := fs.ReadDir(fsys, name)
			if err != nil {
				return Entry{}, err
			}
			dir := make(Directory, len(des))
			for _, de := range des {
				n, err := ParseTreeName(de.Name())
				if err != nil {
					return Entry{}, fmt.Errorf("%s: %w", path.Join(name, de.Name()), err)
				}
				e, err := walk(p.Child(n), path.Join(name, de.Name()))
				if err != nil {
					return Entry{}, err
				}
				dir[n] = e
			}
			body, e, err := DirectoryNode(dir)
			if err != nil {
				return Entry{}, fmt.Errorf("%s: %w", name, err)
			}
			nodes = append(nodes, Node{Path: p, Entry: e, Content: body})
			return e, nil
		default:
			return Entry{}, fmt.Errorf("%s: not a regular file or directory (%s)", name, st.Mode().Type())
		}
	}
	if _, err := walk(TreePath{}, root); err != nil {
		return nil, fmt.Errorf("building tree: %w", err)
	}
	slices.SortFunc(nodes, func(a, b Node) int { return comparePaths(a.Path, b.Path) })
	return nodes, nil
}

// comparePaths orders paths component-wise (byte-wise per name), so a
// parent sorts before its children.
func comparePaths(a, b TreePath) int {
	return slices.Compare(a, b)
}
