package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// MaxTreeNodes bounds the nodes of a tree the client builds or fetches.
const MaxTreeNodes = 10000

// Node is one node of a local tree prepared for publishing.
type Node struct {
	Path  types.TreePath
	Entry types.Entry
	// Body is the canonical JSON of a directory node; nil for a file.
	Body []byte
	// File is the local path of a file node.
	File string
	// hashed is what the opened file was when BuildTree hashed it, and
	// follow whether File may be a symbolic link (only a single-file
	// package's path, which the user named): the upload opens File the
	// same way and refuses a different file (see openHashed).
	hashed os.FileInfo
	follow bool
}

// Tree is a local file or directory with every node's entry computed
// bottom-up (a directory's entry hashes the entries of its children).
// Nodes are in upload order: the root first, parents before children,
// siblings in byte order.
type Tree struct {
	Nodes []Node
}

// Root returns the root node's entry: the body of the tag.
func (t *Tree) Root() types.Entry { return t.Nodes[0].Entry }

// BuildTree prepares path for publishing. A file must be named main.wasm and
// becomes a single-node package. A directory must contain main.wasm; it may
// contain an Enarx.toml, other files and nested directories (unlike
// upstream, which refuses nesting). Every name must be a valid tree name.
//
// Symbolic links inside a package directory are refused (see
// symlinkError); path itself may be one, since the user named it. The
// directory is read through an os.Root, so a directory inside it that is
// replaced by a symbolic link while it is read (after it was seen to be a
// directory) cannot make it hash, and then publish, a file from outside.
func BuildTree(path string) (*Tree, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading package: %w", err)
	}
	t := &Tree{}
	if st.Mode().IsRegular() {
		if filepath.Base(path) != "main.wasm" {
			return nil, fmt.Errorf("invalid file name: %q (a single-file package must be named main.wasm)", filepath.Base(path))
		}
		e, hashed, err := hashFile(nil, path, "", types.WasmType, true)
		if err != nil {
			return nil, err
		}
		t.Nodes = []Node{{Path: types.TreePath{}, Entry: e, File: path, hashed: hashed, follow: true}}
		return t, nil
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("invalid package %q: not a regular file or directory", path)
	}
	w, err := os.Lstat(filepath.Join(path, "main.wasm"))
	if err == nil && w.Mode()&fs.ModeSymlink != 0 {
		return nil, symlinkError(filepath.Join(path, "main.wasm"))
	}
	if err != nil || !w.Mode().IsRegular() {
		return nil, fmt.Errorf("invalid package directory %q: it must contain a main.wasm file", path)
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("reading package: %w", err)
	}
	defer root.Close()
	var nodes []Node
	if _, err := buildDir(root, path, ".", types.TreePath{}, &nodes); err != nil {
		return nil, err
	}
	// buildDir appends children before their parent (bottom-up); upload
	// order is the reverse walk sorted by path.
	slices.SortFunc(nodes, func(a, b Node) int { return comparePaths(a.Path, b.Path) })
	t.Nodes = nodes
	return t, nil
}

func comparePaths(a, b types.TreePath) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := bytes.Compare([]byte(a[i]), []byte(b[i])); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// testHookLstat, if set, is called after buildDir's Lstat of each entry
// (tests: to replace what was seen before it is read).
var testHookLstat func(path string)

// buildDir reads dir, rel (".": the top) in root: every open goes through
// root, which refuses a path that leaves it.
func buildDir(root *os.Root, dir, rel string, at types.TreePath, nodes *[]Node) (types.Entry, error) {
	if len(at) >= types.MaxPathDepth {
		return types.Entry{}, fmt.Errorf("package directory %q is nested deeper than %d levels", dir, types.MaxPathDepth)
	}
	des, err := readDir(root, dir, rel)
	if err != nil {
		return types.Entry{}, err
	}
	d := types.Directory{}
	for _, de := range des {
		name, err := types.ParseTreeName(de.Name())
		if err != nil {
			return types.Entry{}, fmt.Errorf("invalid file name: %q in %s: %w", de.Name(), dir, err)
		}
		p := filepath.Join(dir, de.Name())
		r := filepath.Join(rel, de.Name())
		st, err := root.Lstat(r)
		if err != nil {
			return types.Entry{}, fmt.Errorf("reading package: %w", err)
		}
		if testHookLstat != nil {
			testHookLstat(p)
		}
		child := at.Child(name)
		switch {
		case st.Mode()&fs.ModeSymlink != 0:
			return types.Entry{}, symlinkError(p)
		case st.IsDir():
			e, err := buildDir(root, p, r, child, nodes)
			if err != nil {
				return types.Entry{}, err
			}
			d[name] = e
		case st.Mode().IsRegular():
			e, hashed, err := hashFile(root, p, r, types.MediaTypeFor(string(name)), false)
			if err != nil {
				return types.Entry{}, err
			}
			*nodes = append(*nodes, Node{Path: child, Entry: e, File: p, hashed: hashed})
			d[name] = e
		default:
			return types.Entry{}, fmt.Errorf("%s: only regular files and directories can be published", p)
		}
		if len(*nodes) >= MaxTreeNodes {
			return types.Entry{}, fmt.Errorf("package has more than %d files and directories", MaxTreeNodes)
		}
	}
	body, e, err := types.DirectoryNode(d)
	if err != nil {
		return types.Entry{}, fmt.Errorf("%s: %w", dir, err)
	}
	if e.Length > MaxDirectorySize {
		return types.Entry{}, fmt.Errorf("%s: directory listing of %d bytes exceeds the limit of %d bytes", dir, e.Length, MaxDirectorySize)
	}
	*nodes = append(*nodes, Node{Path: at, Entry: e, Body: body})
	return e, nil
}

// readDir lists dir, rel in root, sorted by name.
func readDir(root *os.Root, dir, rel string) ([]fs.DirEntry, error) {
	f, err := root.Open(rel)
	if err != nil {
		return nil, escapeError(dir, err)
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("reading package: %w", err)
	}
	slices.SortFunc(des, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return des, nil
}

// escapeError is the error for a failed open of path inside the package
// directory: one through a symbolic link leading out of it (a directory
// replaced by a link after it was read) is refused by the os.Root.
func escapeError(path string, err error) error {
	if st, lerr := os.Lstat(path); lerr == nil && st.Mode()&fs.ModeSymlink != 0 {
		return symlinkError(path)
	}
	return fmt.Errorf("reading package: %w", err)
}

// symlinkError is the error for a symbolic link inside a package
// directory. Upstream's client (Tree::from_path_sync) follows symbolic
// links, so a link to a file outside the package (~/.ssh/id_ed25519,
// /etc/shadow) publishes that file's contents to the registry, where they
// cannot be deleted: enarx refuses them instead.
func symlinkError(p string) error {
	return fmt.Errorf("%s is a symbolic link: enarx does not publish symbolic links, which could publish a file from outside the package; replace the link with a copy of the file it points to", p)
}

// openHashed opens a file of a package without following a symbolic link
// at its last component (unless follow) or, with root set, as rel in root
// (which refuses a path that leads out of it), and checks that it is a regular
// file and, if hashed is not nil, the file hashed was (sameFile): a file
// replaced between hashing and uploading, by a link or otherwise, is
// refused before any of its bytes are sent.
func openHashed(root *os.Root, path, rel string, follow bool, hashed os.FileInfo) (*os.File, os.FileInfo, error) {
	flags := os.O_RDONLY | syscall.O_NONBLOCK // a FIFO must not block the open
	if !follow {
		flags |= oNoFollow
	}
	var f *os.File
	var err error
	if root != nil {
		if f, err = root.OpenFile(rel, flags, 0); err != nil {
			return nil, nil, escapeError(path, err)
		}
	} else {
		f, err = os.OpenFile(path, flags, 0)
	}
	if err != nil {
		if !follow && errors.Is(err, syscall.ELOOP) {
			return nil, nil, symlinkError(path)
		}
		return nil, nil, fmt.Errorf("reading package: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("reading package: %w", err)
	}
	switch {
	case hashed != nil && !sameFile(st, hashed):
		err = fmt.Errorf("%s was replaced or changed after it was hashed; publish again", path)
	case !st.Mode().IsRegular():
		err = fmt.Errorf("%s: only regular files and directories can be published", path)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// sameFile reports whether st is the file hashed was, unchanged as far as
// its size and modification time tell: a new file may reuse the inode of
// the one it replaced. (A change within the file system's timestamp
// granularity can go unseen; the registry still refuses content that does
// not match its digest.)
func sameFile(st, hashed os.FileInfo) bool {
	return os.SameFile(st, hashed) && st.Size() == hashed.Size() && st.ModTime().Equal(hashed.ModTime())
}

// parallelHashSize is the file size from which hashFile splits the four
// digests over two goroutines.
const parallelHashSize = 4 << 20

// hashFile computes a file's entry (all four digests, as upstream clients
// send) and returns what the file was (see openHashed). Large files are
// read twice in parallel, each read feeding one SHA-256-family and one
// SHA-512-family digest (SHA-256 + SHA-512 on one core, SHA-224 + SHA-384
// on another). Pairing them that way balances the two halves: without SHA
// extensions SHA-512 is about as fast as SHA-256, but with them (SHA-NI)
// SHA-256 is two to three times faster, and grouping the two
// SHA-512-family digests together would leave one core waiting for the
// other. The second read comes from the page cache, of the same file.
func hashFile(root *os.Root, path, rel, mediaType string, follow bool) (types.Entry, os.FileInfo, error) {
	if err := types.ValidateMediaType(mediaType); err != nil {
		return types.Entry{}, nil, err
	}
	f, st, err := openHashed(root, path, rel, follow, nil)
	if err != nil {
		return types.Entry{}, nil, err
	}
	files := []*os.File{f}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	groups := [][]types.Algorithm{types.Algorithms}
	if st.Size() >= parallelHashSize && runtime.GOMAXPROCS(0) > 1 {
		groups = [][]types.Algorithm{{types.SHA256, types.SHA512}, {types.SHA224, types.SHA384}}
		f2, _, err := openHashed(root, path, rel, follow, st)
		if err != nil {
			return types.Entry{}, nil, err
		}
		files = append(files, f2)
	}
	type result struct {
		sum types.Digests
		n   int64
		err error
	}
	results := make([]result, len(groups))
	var wg sync.WaitGroup
	for i, algs := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := types.NewHasher(algs...)
			_, err := io.Copy(h, files[i])
			results[i] = result{h.Sum(), h.Len(), err}
		}()
	}
	wg.Wait()
	sum := types.Digests{}
	for _, r := range results {
		if r.err != nil {
			return types.Entry{}, nil, fmt.Errorf("reading package: %w", r.err)
		}
		if r.n != results[0].n {
			return types.Entry{}, nil, fmt.Errorf("%s changed while it was being hashed", path)
		}
		maps.Copy(sum, r.sum)
	}
	return types.Entry{Meta: types.Meta{Digest: sum, Length: results[0].n, Type: mediaType}}, st, nil
}

// Publish uploads t as the tag p: the tag entry first, then every node,
// parents before children, each with its Content-Digest. A file that changed
// since BuildTree hashed it is rejected by the registry.
func (c *Client) Publish(ctx context.Context, p PackageSpec, t *Tree) error {
	if len(t.Nodes) == 0 {
		return errors.New("publish: empty tree")
	}
	if err := CheckPin(p.Pin, t.Root().Digest); err != nil {
		return fmt.Errorf("publish %s: %w", p, err)
	}
	body, err := t.Root().MarshalJSON()
	if err != nil {
		return err
	}
	sum, n := types.Compute(body)
	if err := c.put(ctx, c.url(tagPath(p)...), "", types.Meta{Digest: sum, Length: n, Type: types.EntryType}, bytes.NewReader(body)); err != nil {
		return fmt.Errorf("publishing tag %s: %w", p, err)
	}
	for _, nd := range t.Nodes {
		if err := c.putNode(ctx, p, nd); err != nil {
			return fmt.Errorf("publishing %s: node %q: %w", p, "/"+nd.Path.String(), err)
		}
	}
	return nil
}

func (c *Client) putNode(ctx context.Context, p PackageSpec, nd Node) error {
	u := c.url(treePath(p, nd.Path)...)
	if nd.Body != nil {
		return c.put(ctx, u, "", nd.Entry.Meta, bytes.NewReader(nd.Body))
	}
	f, _, err := openHashed(nil, nd.File, "", nd.follow, nd.hashed)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	return c.put(ctx, u, nodeLabel(nd.Path), nd.Entry.Meta, r)
}
