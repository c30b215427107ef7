package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/enarx-go/enarx/drawbridge/bundle"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// FetchTree downloads the package p into the directory dst, which must not
// exist. Every node is verified from the tag down (digest, length and type
// equal to the entry that names it) before the directory appears: the tree
// is assembled in a temporary sibling directory and renamed into place, so
// an interrupted or failed fetch leaves nothing at dst. A single-file
// package is written as dst/main.wasm.
func (c *Client) FetchTree(ctx context.Context, p PackageSpec, dst string) (*Tag, error) {
	// "out/" names out, but to filepath.Dir it is its own parent: the
	// staging directory would go inside the directory not yet made.
	dst = filepath.Clean(dst)
	if _, err := os.Lstat(dst); err == nil {
		return nil, fmt.Errorf("%s already exists; choose a new directory", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	tag, err := c.GetTag(ctx, p)
	if err != nil {
		return nil, err
	}
	stage, err := mkdirStage(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-")
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", dst, err)
	}
	defer os.RemoveAll(stage) // after a successful rename there is nothing left
	budget := &fetchBudget{}
	if tag.Entry.Type == types.DirectoryType {
		err = c.fetchDir(ctx, p, types.TreePath{}, tag.Entry.Meta, stage, budget)
	} else {
		err = c.fetchFile(ctx, p, types.TreePath{}, tag.Entry.Meta, filepath.Join(stage, bundle.WasmName))
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(stage, dst); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dst, err)
	}
	return tag, nil
}

// dirMode is the mode FetchTree creates directories with, less the umask
// (the kernel applies it, and a default ACL if the parent has one), as
// mkdir(1) does; files get fileMode, less the umask.
const (
	dirMode  = 0o777
	fileMode = 0o644
)

// mkdirStage creates a new directory parent/prefix<random> with dirMode.
// Unlike os.MkdirTemp, which creates it 0o700 (and FetchTree then chmodded
// it 0o755, whatever the umask), the mode follows the umask as it does for
// the directories and files inside, without reading the umask: that
// takes umask(2), which changes it for the whole process while it reads
// it, a race with every other thread creating files.
func mkdirStage(parent, prefix string) (string, error) {
	for range 100 {
		var b [8]byte
		rand.Read(b[:])
		p := filepath.Join(parent, prefix+hex.EncodeToString(b[:]))
		if err := os.Mkdir(p, dirMode); !errors.Is(err, fs.ErrExist) {
			return p, err
		}
	}
	return "", fmt.Errorf("no unused name for a directory in %s", parent)
}

// MaxFetchSize bounds the total size of a tree FetchTree downloads.
const MaxFetchSize = 16 << 30

// fetchBudget counts what FetchTree has committed to download.
type fetchBudget struct {
	nodes int
	bytes int64
}

func (b *fetchBudget) take(p PackageSpec, m types.Meta) error {
	b.nodes++
	b.bytes += m.Length
	if b.nodes > MaxTreeNodes {
		return fmt.Errorf("package %s has more than %d nodes", p, MaxTreeNodes)
	}
	if b.bytes > MaxFetchSize {
		return fmt.Errorf("package %s is larger than %d bytes", p, int64(MaxFetchSize))
	}
	return nil
}

func (c *Client) fetchDir(ctx context.Context, p PackageSpec, at types.TreePath, want types.Meta, dir string, budget *fetchBudget) error {
	if err := budget.take(p, want); err != nil {
		return err
	}
	if len(at) > types.MaxPathDepth {
		return fmt.Errorf("package %s is nested deeper than %d levels", p, types.MaxPathDepth)
	}
	r, err := c.GetNode(ctx, p, at, want, MaxDirectorySize)
	if err != nil {
		return err
	}
	d, err := types.ParseDirectory(r.Body)
	if err != nil {
		return fmt.Errorf("node %q of %s: %w", "/"+at.String(), p, err)
	}
	for _, name := range d.Names() {
		e := d[name]
		child := at.Child(name)
		path := filepath.Join(dir, string(name))
		if e.Type == types.DirectoryType {
			if err := os.Mkdir(path, dirMode); err != nil {
				return err
			}
			if err := c.fetchDir(ctx, p, child, e.Meta, path, budget); err != nil {
				return err
			}
			continue
		}
		if err := budget.take(p, e.Meta); err != nil {
			return err
		}
		if err := c.fetchFile(ctx, p, child, e.Meta, path); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) fetchFile(ctx context.Context, p PackageSpec, at types.TreePath, want types.Meta, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	err = c.GetNodeTo(ctx, p, at, want, MaxFileSize, func() (io.Writer, error) { return f, nil })
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Cache keeps verified node bodies on disk, per registry, by the SHA-256 of
// their content (Dir/registry-<host>/sha-256/<hex>), so deploying a package
// again does not download it again. A cached body is re-hashed when read; a
// corrupt entry is removed and fetched anew, and a name that is not a
// regular file (a FIFO, say) is not an entry.
//
// Entries are kept apart by registry: a body is taken from the cache only
// for the registry it was fetched from, whose tag (fetched with the
// caller's credentials every time) named it. With one cache for all
// registries, a registry that only had to name a digest (which a Keep's
// certificate shows) made a fetch take a private package's bodies that
// another caller, with the rights to read it, had fetched into a shared
// cache (the containerd shim's, shared by every pod of a node).
type Cache struct{ Dir string }

// of is c for the registry at host: its own directory in c.
func (c *Cache) of(host string) *Cache {
	if c == nil || c.Dir == "" {
		return c
	}
	h := strings.TrimSuffix(strings.ToLower(host), ":443")
	// QueryEscape leaves letters, digits and "-_.~", so that the name is
	// one path element on every system ("[v6]:port" included), and the
	// prefix keeps "." and ".." out.
	return &Cache{Dir: filepath.Join(c.Dir, "registry-"+url.QueryEscape(h))}
}

// DefaultCacheDir returns os.UserCacheDir()/enarx/drawbridge.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the user cache directory: %w", err)
	}
	return filepath.Join(d, "enarx", "drawbridge"), nil
}

func (c *Cache) path(m types.Meta) (string, bool) {
	if c == nil || c.Dir == "" {
		return "", false
	}
	sum, ok := m.Digest[types.SHA256]
	if !ok {
		return "", false
	}
	return filepath.Join(c.Dir, string(types.SHA256), hex.EncodeToString(sum)), true
}

// readInto fills dst (len(dst) == m.Length) with the cached body for m and
// reports whether it was present and intact. pin (nodePin) applies to the
// body too: the cache is keyed by the SHA-256 the entry names, which for a
// pinned root comes from the same registry as the entry, so a cached body
// is used as that root only if it also matches the pin. A body that does
// not is dropped like a corrupt one (the fetch that follows fails).
func (c *Cache) readInto(m types.Meta, pin types.Digests, dst []byte) bool {
	p, ok := c.path(m)
	if !ok {
		return false
	}
	// Without waiting for a writer if the name is a FIFO (a cache
	// directory others can write to, given with --package-cache, held
	// deploy at the open forever): only a regular file is an entry.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != m.Length || int64(len(dst)) != m.Length {
		return false
	}
	if _, err := io.ReadFull(f, dst); err != nil {
		return false
	}
	// VerificationSet(m.Digest) is the SHA-256 the path names (path has
	// checked it is there), plus the pin.
	if bundle.CheckPinnedBody(dst, m.Digest, pin, m.Length) != nil {
		os.Remove(p)
		return false
	}
	return true
}

// Put stores a verified body (best effort: errors only cost a re-download).
func (c *Cache) Put(m types.Meta, body []byte) {
	p, ok := c.path(m)
	if !ok {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(body)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}

// cacheWriter receives a body as it is downloaded into a temporary file in
// the cache, and puts it in place only once the caller says it verified.
// Best effort like Put: a failure only costs a re-download, so Write never
// fails (the failure is remembered and the file dropped).
type cacheWriter struct {
	f       *os.File
	path    string
	n, size int64
	failed  bool
}

// create starts a cache entry for m; nil (which accepts and drops writes)
// if there is no cache or it cannot be written.
func (c *Cache) create(m types.Meta) *cacheWriter {
	p, ok := c.path(m)
	if !ok {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return nil
	}
	return &cacheWriter{f: f, path: p, size: m.Length}
}

func (w *cacheWriter) Write(b []byte) (int, error) {
	if w == nil || w.failed {
		return len(b), nil
	}
	n, err := w.f.Write(b)
	w.n += int64(n)
	if err != nil {
		w.failed = true
	}
	return len(b), nil
}

// commit puts a complete, verified body in place; abort drops it.
func (w *cacheWriter) commit() {
	if w == nil {
		return
	}
	err := w.f.Close()
	if w.failed || err != nil || w.n != w.size || os.Rename(w.f.Name(), w.path) != nil {
		os.Remove(w.f.Name())
	}
}

func (w *cacheWriter) abort() {
	if w == nil {
		return
	}
	w.f.Close()
	os.Remove(w.f.Name())
}

// Fetched is a package bundle ready for a Keep.
type Fetched struct {
	// Bundle is the encoded bundle (the input of bundle.Verify).
	Bundle []byte
	// Config is the fetched Enarx.toml (a sub-slice of Bundle), nil if the
	// package has none. The host may use it only to open host resources.
	Config []byte
	// Tag is the tag entry the bundle starts from.
	Tag *Tag
}

// bundleNode is one node FetchBundle puts into the bundle.
type bundleNode struct {
	path  types.TreePath
	rec   string
	want  types.Meta
	limit int64
	body  []byte // set for nodes fetched before the buffer exists
}

// FetchBundle fetches the nodes a Keep needs to run package p — the tag
// entry, the root node and, for a directory, main.wasm and Enarx.toml — and
// encodes them as a bundle for bundle.Verify, downloading each body straight
// into the final buffer. The host checks the chain too (to fail early and
// to cache only verified bodies), but the Keep's check is the one that
// counts. Bodies found in cache (by the SHA-256 their parent names) are not
// downloaded again.
func (c *Client) FetchBundle(ctx context.Context, p PackageSpec, cache *Cache) (*Fetched, error) {
	cache = cache.of(p.Host)
	tag, err := c.GetTag(ctx, p)
	if err != nil {
		return nil, err
	}
	var nodes []*bundleNode
	switch tag.Entry.Type {
	case types.WasmType:
		nodes = append(nodes, &bundleNode{path: types.TreePath{}, rec: bundle.RootPath, want: tag.Entry.Meta, limit: bundle.MaxWasmSize})
	case types.DirectoryType:
		root := &bundleNode{path: types.TreePath{}, rec: bundle.RootPath, want: tag.Entry.Meta, limit: bundle.MaxDirectorySize}
		if root.body, err = c.fetchSmall(ctx, p, root, cache); err != nil {
			return nil, err
		}
		d, err := types.ParseDirectory(root.body)
		if err != nil {
			return nil, fmt.Errorf("node \"/\" of %s: %w", p, err)
		}
		we, ok := d[bundle.WasmName]
		if !ok {
			return nil, fmt.Errorf("package %s has no main.wasm", p)
		}
		nodes = append(nodes, root, &bundleNode{path: types.TreePath{bundle.WasmName}, rec: bundle.WasmName, want: we.Meta, limit: bundle.MaxWasmSize})
		if ce, ok := d[bundle.ConfigName]; ok {
			nodes = append(nodes, &bundleNode{path: types.TreePath{bundle.ConfigName}, rec: bundle.ConfigName, want: ce.Meta, limit: bundle.MaxConfigSize})
		}
	default:
		return nil, fmt.Errorf("package %s: unsupported root type %q", p, tag.Entry.Type)
	}

	source := p.RepoSpec.String() + ":" + string(p.Tag)
	pin := ""
	if len(p.Pin) > 0 {
		pin = p.Pin.String()
	}
	tagDigest := tag.Meta.Digest.String()
	size := bundle.HeaderSize(source, pin) + bundle.RecordHeaderSize(bundle.TagPath, tag.Meta.Type, tagDigest) + len(tag.Body)
	for _, n := range nodes {
		if n.want.Length > n.limit {
			return nil, fmt.Errorf("node %q of %s: %d bytes exceeds the limit of %d bytes", "/"+n.path.String(), p, n.want.Length, n.limit)
		}
		size += bundle.RecordHeaderSize(n.rec, n.want.Type, n.want.Digest.String()) + int(n.want.Length)
	}
	buf, err := bundle.AppendHeader(make([]byte, 0, size), source, pin)
	if err != nil {
		return nil, err
	}
	if buf, err = bundle.AppendRecordHeader(buf, bundle.TagPath, tag.Meta.Type, tagDigest, len(tag.Body)); err != nil {
		return nil, err
	}
	buf = append(buf, tag.Body...)
	f := &Fetched{Tag: tag}
	for _, n := range nodes {
		if buf, err = bundle.AppendRecordHeader(buf, n.rec, n.want.Type, n.want.Digest.String(), int(n.want.Length)); err != nil {
			return nil, err
		}
		start := len(buf)
		buf = buf[:start+int(n.want.Length)]
		body := buf[start:]
		switch {
		case n.body != nil:
			copy(body, n.body)
		case cache.readInto(n.want, nodePin(p, n.path), body):
		default:
			// The cache file is written while the body downloads and is
			// put in place only after it verified.
			cw := cache.create(n.want)
			if err := c.GetNodeTo(ctx, p, n.path, n.want, n.limit, func() (io.Writer, error) { return &sliceWriter{b: body, tee: cw}, nil }); err != nil {
				cw.abort()
				return nil, err
			}
			cw.commit()
		}
		if n.rec == bundle.ConfigName {
			f.Config = body
		}
	}
	f.Bundle = buf
	return f, nil
}

// fetchSmall fetches a node into memory, from cache if possible.
func (c *Client) fetchSmall(ctx context.Context, p PackageSpec, n *bundleNode, cache *Cache) ([]byte, error) {
	if n.want.Length > n.limit {
		return nil, fmt.Errorf("node %q of %s: %d bytes exceeds the limit of %d bytes", "/"+n.path.String(), p, n.want.Length, n.limit)
	}
	body := make([]byte, n.want.Length)
	if cache.readInto(n.want, nodePin(p, n.path), body) {
		return body, nil
	}
	r, err := c.GetNode(ctx, p, n.path, n.want, n.limit)
	if err != nil {
		return nil, err
	}
	cache.Put(n.want, r.Body)
	return r.Body, nil
}

// sliceWriter fills a fixed slice; writing past its end is an error. If
// tee is set, everything written goes there too.
type sliceWriter struct {
	b   []byte
	n   int
	tee *cacheWriter
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.b)-w.n {
		return 0, errors.New("body longer than announced")
	}
	w.n += copy(w.b[w.n:], p)
	w.tee.Write(p)
	return len(p), nil
}

// ReadFrom reads straight into the slice (io.Copy uses it), saving a copy
// through an intermediate buffer for large bodies.
func (w *sliceWriter) ReadFrom(r io.Reader) (int64, error) {
	start := w.n
	for w.n < len(w.b) {
		n, err := r.Read(w.b[w.n:])
		w.tee.Write(w.b[w.n : w.n+n])
		w.n += n
		if err == io.EOF {
			return int64(w.n - start), nil
		}
		if err != nil {
			return int64(w.n - start), err
		}
	}
	// Full: the stream must end here (a verifying reader checks its
	// digest at this EOF).
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n > 0 {
			return int64(w.n - start), errors.New("body longer than announced")
		}
		if err == io.EOF {
			return int64(w.n - start), nil
		}
		if err != nil {
			return int64(w.n - start), err
		}
	}
}
