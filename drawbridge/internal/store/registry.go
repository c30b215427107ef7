package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// Size limits for bodies the registry reads into memory.
const (
	// MaxRecordSize bounds user records, repository configs and tags.
	MaxRecordSize = 64 << 10
	// MaxDirectorySize bounds a directory node's JSON.
	MaxDirectorySize = 16 << 20
)

// verifiedMarkerType is the media type of the marker object that makes a
// tag visible.
const verifiedMarkerType = "application/vnd.enarx.drawbridge.verified"

// Registry implements the registry's data rules on a Backend.
type Registry struct {
	b Backend
	// VerifyAllDigests makes file node uploads verify every algorithm of
	// the parent entry. By default a file node is verified against the
	// entry's sha-256 only (all algorithms if the entry has no sha-256):
	// SHA-256's collision resistance already binds the bytes to the Merkle
	// tree, and hashing SHA-384 and SHA-512 as well costs several times
	// the rest of an upload. The other values are then recorded as the
	// publisher states them, and clients check them when they read.
	// Directories, tags, users and repositories are always verified
	// against every digest given.
	VerifyAllDigests bool
	// MaxTreeNodes bounds the nodes of one tag's tree: the root plus
	// every entry of every directory. A directory PUT whose entries would
	// take the tag's stored tree past it is refused before it is stored
	// (InvalidError), as is a tree PUT or tag resume whose completeness
	// walk finds a tree naming more; so are further nodes of that tag,
	// and the tag never becomes visible. The count of what is stored is
	// exact within one process while the tag's cursor lives (see
	// progress.go for how it is approximate across restarts, replicas
	// and evictions).
	// NewRegistry sets DefaultMaxTreeNodes; zero or less also means that.
	// Set it before use.
	MaxTreeNodes int
	// Logger receives warnings about stored nodes that fail verification
	// (nil: slog.Default()). Set it before use.
	Logger *slog.Logger
	// MaxDirectoryBuffers bounds the bytes of directory node uploads held
	// in memory at once, in all (dirbudget.go): CreateNode takes a
	// directory's length from this budget before it reads the body, and
	// gives it back once the node is stored or refused. A directory larger
	// than the whole budget takes all of it. Zero or less:
	// DefaultMaxDirectoryBuffers. Set it before use.
	MaxDirectoryBuffers int64
	// DirectoryBufferWait is how long a directory upload waits for room in
	// that budget before CreateNode gives up with an error that wraps
	// ErrBusy (nothing read, nothing stored). Zero:
	// DefaultDirectoryBufferWait; below zero: no wait. A wait also ends
	// with the request's context. Set it before use.
	DirectoryBufferWait time.Duration
	dirBudget           dirBudget
	// MaxUploadBuffers bounds the bytes of buffers that node uploads of a
	// MiB or more take, in all, to hash and write their body pipelined
	// (uploadbudget.go); one that finds no room is hashed and copied in
	// one goroutine with a small buffer, more slowly. Zero:
	// DefaultMaxUploadBuffers; below zero: no upload is pipelined. Set it
	// before use.
	MaxUploadBuffers int64
	uploadBudget     uploadBudget

	// Objects are never deleted, and only unverified tree nodes are ever
	// replaced (verify.go), so what was read once is kept: directories
	// (parsed, verified ones only), the Meta of objects that exist (of tree
	// nodes: verified ones only), and small records. A GET then costs one
	// open of the content.
	dirs    *dirCache
	metas   *lru[types.Meta]
	records *lru[smallRecord]

	// progress holds the completeness cursors of tags being published
	// (progress.go).
	progress *progressTable
	// nodeLocks serialises, per node, a PUT's look at what is stored with
	// its storing (or replacing) the node and writing its marker, and the
	// hashing of a stored node: so that a concurrent PUT of the same node
	// never takes one just stored, and not yet marked, for a node this
	// registry did not verify, and no hash reads a node being replaced.
	// A holder waits for no other lock of the Registry's while it holds
	// one (a check, holding its tag's cursor, may wait for a node's).
	nodeLocks ctxLocks
	// nodeChecks counts the node lookups made by completeness checks.
	nodeChecks atomic.Int64
}

// NewRegistry returns a Registry on b.
func NewRegistry(b Backend) *Registry {
	return &Registry{
		b: b, MaxTreeNodes: DefaultMaxTreeNodes,
		dirs: newDirCache(64 << 20), metas: newLRU[types.Meta](32 << 20), records: newLRU[smallRecord](16 << 20),
		progress: newProgressTable(progressBudget),
	}
}

// ContentOpener is implemented by Backends that can open an object's
// content without reading its Meta again (the Registry caches Metas).
type ContentOpener interface {
	// OpenContent opens the content of the object at key, which exists.
	OpenContent(ctx context.Context, key string) (io.ReadCloser, error)
}

// cachedMeta returns the cached Meta of key with a digest map of its own,
// so that no caller can change the cache.
func (r *Registry) cachedMeta(key string) (types.Meta, bool) {
	m, ok := r.metas.get(key)
	m.Digest = maps.Clone(m.Digest)
	return m, ok
}

// stat is Backend.Stat through the Meta cache.
func (r *Registry) stat(ctx context.Context, key string) (types.Meta, error) {
	if m, ok := r.cachedMeta(key); ok {
		return m, nil
	}
	m, err := r.b.Stat(ctx, key)
	if err == nil {
		r.metas.put(key, cloneMeta(m), metaCost)
	}
	return m, err
}

func cloneMeta(m types.Meta) types.Meta {
	m.Digest = maps.Clone(m.Digest)
	return m
}

// open is Backend.Open through the Meta cache.
func (r *Registry) open(ctx context.Context, key string) (Object, error) {
	if co, ok := r.b.(ContentOpener); ok {
		if m, ok := r.cachedMeta(key); ok {
			c, err := co.OpenContent(ctx, key)
			if err != nil {
				return Object{}, err
			}
			return Object{Meta: m, Content: c}, nil
		}
	}
	o, err := r.b.Open(ctx, key)
	if err == nil {
		r.metas.put(key, cloneMeta(o.Meta), metaCost)
	}
	return o, err
}

// fileDigests is the subset of want a file node upload is verified
// against.
func (r *Registry) fileDigests(want types.Digests) types.Digests {
	if v, ok := want[types.SHA256]; ok && !r.VerifyAllDigests {
		return types.Digests{types.SHA256: v}
	}
	return want
}

// Close closes the backend.
func (r *Registry) Close() error { return r.b.Close() }

// ctxLocks are per-key locks whose waits end with their context.
type ctxLocks struct {
	mu sync.Mutex
	m  map[string]*ctxLock
}

type ctxLock struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

// lock locks key; the returned function unlocks it (once).
func (k *ctxLocks) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*ctxLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &ctxLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.ch
			release()
		})
	}, nil
}

func (r *Registry) log() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

// nodeMeta is the Meta of tree node key: from the cache, which holds only
// verified nodes, or else from the Backend without caching it (an
// unverified node may be replaced).
func (r *Registry) nodeMeta(ctx context.Context, key string) (types.Meta, error) {
	if m, ok := r.cachedMeta(key); ok {
		return m, nil
	}
	return r.b.Stat(ctx, key)
}

// forget drops what is cached about tree node key, which is being replaced.
func (r *Registry) forget(key string) {
	r.metas.remove(key)
	r.metas.remove(nodeMarkerKey(key))
	r.records.remove(key)
	r.dirs.remove(key)
}

// Keys. The layout matches upstream's directory layout (reference §4.1).
func userKey(u types.UserName) string { return "users/" + string(u) }
func repoKey(u types.UserName, p types.RepoName) string {
	return userKey(u) + "/repos/" + string(p)
}
func tagsKey(u types.UserName, p types.RepoName) string { return repoKey(u, p) + "/tags" }
func tagKey(u types.UserName, p types.RepoName, t types.TagName) string {
	return tagsKey(u, p) + "/" + string(t)
}
func verifiedKey(tag string) string { return tag + "/verified" }
func nodeKey(tag string, p types.TreePath) string {
	k := tag + "/tree"
	for _, n := range p {
		k += "/entries/" + string(n)
	}
	return k
}

// TagRef names a tag.
type TagRef struct {
	User types.UserName
	Repo types.RepoName
	Tag  types.TagName
}

func (t TagRef) key() string { return tagKey(t.User, t.Repo, t.Tag) }

// String is user/repo:tag.
func (t TagRef) String() string { return fmt.Sprintf("%s/%s:%s", t.User, t.Repo, t.Tag) }

// readSmall reads a whole small object.
// The caller gets its own copy of the bytes.
func (r *Registry) readSmall(ctx context.Context, key string, limit int64) (types.Meta, []byte, error) {
	if rec, ok := r.records.get(key); ok && int64(len(rec.body)) <= limit {
		return cloneMeta(rec.meta), bytes.Clone(rec.body), nil
	}
	o, err := r.open(ctx, key)
	if err != nil {
		return types.Meta{}, nil, err
	}
	defer o.Content.Close()
	if o.Meta.Length > limit {
		return types.Meta{}, nil, fmt.Errorf("%s: %d bytes exceeds the limit of %d", key, o.Meta.Length, limit)
	}
	b, err := io.ReadAll(io.LimitReader(o.Content, limit+1))
	if err != nil {
		return types.Meta{}, nil, fmt.Errorf("reading %s: %w", key, err)
	}
	if int64(len(b)) != o.Meta.Length {
		return types.Meta{}, nil, fmt.Errorf("%s: stored content is %d bytes, meta says %d", key, len(b), o.Meta.Length)
	}
	if int64(len(b)) <= MaxRecordSize {
		r.records.put(key, smallRecord{cloneMeta(o.Meta), bytes.Clone(b)}, len(b)+metaCost)
	}
	return o.Meta, b, nil
}

// createSmall verifies an in-memory body against meta and stores it.
func (r *Registry) createSmall(ctx context.Context, key string, meta types.Meta, body []byte) error {
	if int64(len(body)) != meta.Length {
		return invalidf("Content length mismatch, expected: %d, got %d", meta.Length, len(body))
	}
	sum, _ := types.Compute(body)
	for a, v := range meta.Digest {
		if !bytes.Equal(sum[a], v) {
			return invalidf("Content digest mismatch")
		}
	}
	return r.b.Create(ctx, key, meta, bytes.NewReader(body))
}

// completeMeta fills in all digests when the uploader gave none (users and
// repositories may omit Content-Digest), so later GETs carry a header.
func completeMeta(meta types.Meta, body []byte) types.Meta {
	if len(meta.Digest) == 0 {
		meta.Digest, _ = types.Compute(body)
	}
	return meta
}

// CreateUser stores a user record (already validated by the caller).
func (r *Registry) CreateUser(ctx context.Context, u types.UserName, meta types.Meta, body []byte) error {
	return r.createSmall(ctx, userKey(u), completeMeta(meta, body), body)
}

// User returns a user record's meta and bytes.
func (r *Registry) User(ctx context.Context, u types.UserName) (types.Meta, []byte, error) {
	return r.readSmall(ctx, userKey(u), MaxRecordSize)
}

// CreateRepo stores a repository config (already validated by the caller).
// The user must exist.
func (r *Registry) CreateRepo(ctx context.Context, u types.UserName, p types.RepoName, meta types.Meta, body []byte) error {
	if _, err := r.stat(ctx, userKey(u)); err != nil {
		return err
	}
	return r.createSmall(ctx, repoKey(u, p), completeMeta(meta, body), body)
}

// Repo returns a repository config's meta and bytes.
func (r *Registry) Repo(ctx context.Context, u types.UserName, p types.RepoName) (types.Meta, []byte, error) {
	return r.readSmall(ctx, repoKey(u, p), MaxRecordSize)
}

// Tags lists the visible (complete and verified) tags of a repository in
// semantic version order. The repository must exist.
func (r *Registry) Tags(ctx context.Context, u types.UserName, p types.RepoName) ([]types.TagName, error) {
	if _, err := r.stat(ctx, repoKey(u, p)); err != nil {
		return nil, err
	}
	names, err := r.b.List(ctx, tagsKey(u, p))
	if err != nil {
		return nil, err
	}
	var out []types.TagName
	for _, n := range names {
		t, err := types.ParseTagName(n)
		if err != nil {
			continue // not ours
		}
		if _, err := r.stat(ctx, verifiedKey(tagKey(u, p, t))); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // incomplete: invisible
			}
			return nil, err
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b types.TagName) int {
		va, _ := types.ParseSemver(string(a))
		vb, _ := types.ParseSemver(string(b))
		if c := va.Compare(vb); c != 0 {
			return c
		}
		return strings.Compare(string(a), string(b)) // build metadata: no precedence
	})
	return out, nil
}

// CreateTag stores a tag. meta is what the request claims (Content-Type
// must be types.EntryType or types.JWSType, at least one digest). The
// tag stays invisible until its tree is complete.
//
// If an identical tag body exists but its tree is not yet complete (an
// interrupted publish), CreateTag returns resumed=true and no error, so
// the publisher can upload the missing nodes. Any other existing tag gives
// ErrExists.
func (r *Registry) CreateTag(ctx context.Context, t TagRef, meta types.Meta, body []byte) (resumed bool, err error) {
	if len(meta.Digest) == 0 {
		return false, invalidf("At least one content digest value must be specified")
	}
	if meta.Type != types.EntryType && meta.Type != types.JWSType {
		return false, invalidf("Invalid content type")
	}
	if _, err := r.stat(ctx, repoKey(t.User, t.Repo)); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, notFoundf("Repository `%s/%s` does not exist", t.User, t.Repo)
		}
		return false, err
	}
	if _, err := types.ParseTag(meta.Type, body); err != nil {
		return false, invalidf("Invalid tag: %v", err)
	}
	err = r.createSmall(ctx, t.key(), meta, body)
	if !errors.Is(err, ErrExists) {
		return false, err
	}
	// It exists. Resume only an identical, incomplete one.
	if _, verr := r.stat(ctx, verifiedKey(t.key())); !errors.Is(verr, ErrNotFound) {
		return false, err
	}
	oldMeta, old, rerr := r.readSmall(ctx, t.key(), MaxRecordSize)
	if rerr != nil {
		return false, err
	}
	// A stored tag that does not match its own digests (upstream keeps the
	// body of a failed upload) would be served as it is: refuse it.
	if sum, _ := types.Compute(old); !digestsMatch(oldMeta.Digest, sum) {
		return false, &RejectedError{Tag: t.Tag, Reason: "its body does not match its stored digests"}
	}
	if !bytes.Equal(old, body) || oldMeta.Type != meta.Type {
		return false, err
	}
	err = r.checkComplete(ctx, t)
	var rej *RejectedError
	if errors.As(err, &rej) && rej.Node {
		// A stored node this registry did not write fails its hash; the
		// publisher is about to upload every node, and its upload of that
		// one replaces it. The tag stays hidden until then.
		r.log().Info("resumed publish of a tag with a rejected node", "tag", t.String(), "err", err)
		err = nil
	}
	return true, err
}

// rootEntry reads a tag's root entry (visible or not). The tag's body is
// checked against its stored digests (cheap: at most MaxRecordSize bytes,
// usually a few hundred), so that no tree is verified against a tag that
// upstream stored from a failed upload.
func (r *Registry) rootEntry(ctx context.Context, t TagRef) (types.Entry, error) {
	meta, body, err := r.readSmall(ctx, t.key(), MaxRecordSize)
	if err != nil {
		return types.Entry{}, err
	}
	if sum, _ := types.Compute(body); !digestsMatch(meta.Digest, sum) {
		return types.Entry{}, &RejectedError{Tag: t.Tag, Reason: "its body does not match its stored digests"}
	}
	e, err := types.ParseTag(meta.Type, body)
	if err != nil {
		return types.Entry{}, fmt.Errorf("stored tag %s is corrupt: %w", t.key(), err)
	}
	return e, nil
}

// Visible reports whether a tag's tree is complete (ErrNotFound if not).
func (r *Registry) visible(ctx context.Context, t TagRef) error {
	_, err := r.stat(ctx, verifiedKey(t.key()))
	return err
}

// Tag opens a visible tag.
func (r *Registry) Tag(ctx context.Context, t TagRef) (Object, error) {
	if err := r.visible(ctx, t); err != nil {
		return Object{}, err
	}
	return r.open(ctx, t.key())
}

// StatTag returns a visible tag's meta.
func (r *Registry) StatTag(ctx context.Context, t TagRef) (types.Meta, error) {
	if err := r.visible(ctx, t); err != nil {
		return types.Meta{}, err
	}
	return r.stat(ctx, t.key())
}

// Node opens a tree node of a visible tag.
func (r *Registry) Node(ctx context.Context, t TagRef, p types.TreePath) (Object, error) {
	if err := r.visible(ctx, t); err != nil {
		return Object{}, err
	}
	if _, err := r.inTree(ctx, t, p); err != nil {
		return Object{}, err
	}
	return r.open(ctx, nodeKey(t.key(), p))
}

// StatNode returns a tree node's meta (tag must be visible).
func (r *Registry) StatNode(ctx context.Context, t TagRef, p types.TreePath) (types.Meta, error) {
	if err := r.visible(ctx, t); err != nil {
		return types.Meta{}, err
	}
	return r.inTree(ctx, t, p)
}

// inTree returns the stored meta of node p of visible tag t, or
// ErrNotFound unless p is part of t's tree. A visible tag's tree is
// verified, but its directory in the store may hold more: upstream
// Drawbridge stores any node under a stored directory, named by it or not,
// and keeps the bytes of failed uploads, so an upstream store adopted by
// VerifyExisting (or republished) can have nodes that no directory names,
// with bytes that do not match their meta. Those are never served. A node
// with a verification marker (verify.go; only nodes named by their verified
// parent get one) is part of the tree; one without (a stray, or a tag made
// visible by an earlier version of this registry) is looked up by name from
// the root. The directories on the way are part of the visible tree, hence
// verified, which sortedDirectory requires.
func (r *Registry) inTree(ctx context.Context, t TagRef, p types.TreePath) (types.Meta, error) {
	key := nodeKey(t.key(), p)
	m, err := r.stat(ctx, key)
	if err != nil || p.IsRoot() {
		return m, err
	}
	if ok, err := r.hasMarker(ctx, key, types.Entry{Meta: m}); err != nil {
		return types.Meta{}, err
	} else if ok {
		return m, nil
	}
	notInTree := notFoundf("Node %q is not part of the tree of tag %s", "/"+p.String(), t.Tag)
	for i := range p {
		d, _, err := r.sortedDirectory(ctx, t, p[:i])
		var inv *InvalidError
		if errors.As(err, &inv) {
			return types.Meta{}, notInTree // a file on the way
		} else if err != nil {
			return types.Meta{}, err
		}
		e, ok := d[p[i]]
		if !ok || (i == len(p)-1 && !e.Meta.Equal(m)) {
			return types.Meta{}, notInTree
		}
	}
	return m, nil
}

// expectedEntry returns the entry that the parent of p (or the tag, for the
// root) gives for node p. The parent must be stored and verified (see
// verifiedDirectory): a parent this registry has not verified is hashed
// first, and a *RejectedError if it fails.
func (r *Registry) expectedEntry(ctx context.Context, t TagRef, p types.TreePath) (types.Entry, error) {
	if p.IsRoot() {
		return r.rootEntry(ctx, t)
	}
	parent := p.Parent()
	dir, _, err := r.verifiedDirectory(ctx, t, parent)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return types.Entry{}, notFoundf("Parent node %q does not exist; upload parents before children", "/"+parent.String())
		}
		return types.Entry{}, err
	}
	e, ok := dir[p[len(p)-1]]
	if !ok {
		return types.Entry{}, invalidf("Node %q is not named by its parent directory", "/"+p.String())
	}
	return e, nil
}

// sortedDirectory reads and parses directory node p, with its entry names
// in canonical order. The caller has verified p (checkNode): its content is
// trusted as stored, and cached. Callers must not change either result.
func (r *Registry) sortedDirectory(ctx context.Context, t TagRef, p types.TreePath) (types.Directory, []types.TreeName, error) {
	key := nodeKey(t.key(), p)
	if d, ok := r.dirs.get(key); ok {
		return d.d, d.names, nil
	}
	meta, body, err := r.readSmall(ctx, key, MaxDirectorySize)
	if err != nil {
		return nil, nil, err
	}
	if meta.Type != types.DirectoryType {
		return nil, nil, invalidf("Node %q is a file, not a directory", "/"+p.String())
	}
	release, err := parseSlot(ctx)
	if err != nil {
		return nil, nil, err
	}
	d, err := types.ParseDirectory(body)
	release()
	if err != nil {
		return nil, nil, fmt.Errorf("stored directory %q is corrupt: %w", "/"+p.String(), err)
	}
	names := d.Names()
	// Counted as its JSON, as before: the names share their bytes with
	// the map, and their headers are small beside an entry's JSON.
	r.dirs.put(key, cachedDir{d, names}, len(body))
	return d, names, nil
}

// CreateNode stores tree node p of tag t. claimed is what the request's
// headers say (Content-Type, Content-Length, Content-Digest); body is read
// to EOF. The node must be named by its parent (the tag for the root), which
// must be verified, and the request must agree with that entry: same type
// and length, and every claimed digest equal to the entry's. The body is
// verified against the entry's digests (see VerifyAllDigests) while it
// streams; on any mismatch nothing is stored. The stored meta is the
// parent's entry, so GET returns exactly what the parent pins. Once the node
// is stored, its marker records which digests its content was verified
// against (verify.go).
//
// An existing node that this registry has verified gives existed=true and
// no error once the body has been read and verified (the node can only
// hold what the parent pins), so an interrupted publish can be resumed. An
// existing node of a hidden tag that it has not verified (stored by
// upstream Drawbridge, or before a crash that came before its marker) is
// replaced by the verified body (existed=false). If the node completes the
// tree, the tag becomes visible. If the tree holds a stored node that fails
// its hash and comes after p in canonical order (the order publishers
// upload in), the error is a *RejectedError naming it.
func (r *Registry) CreateNode(ctx context.Context, t TagRef, p types.TreePath, claimed types.Meta, body io.Reader) (existed bool, err error) {
	if len(claimed.Digest) == 0 {
		return false, invalidf("At least one content digest value must be specified")
	}
	if _, err := r.stat(ctx, t.key()); err != nil {
		if errors.Is(err, ErrNotFound) {
			return false, notFoundf("Tag %s does not exist; create the tag before its tree", t.Tag)
		}
		return false, err
	}
	if err := r.tooBig(t); err != nil {
		return false, err
	}
	want, err := r.expectedEntry(ctx, t, p)
	if err != nil {
		return false, err
	}
	if claimed.Type != want.Type {
		return false, invalidf("Content type %q does not match the parent entry (%q)", claimed.Type, want.Type)
	}
	if claimed.Length != want.Length {
		return false, invalidf("Content length mismatch, expected: %d, got %d", want.Length, claimed.Length)
	}
	for a, v := range claimed.Digest {
		if w, ok := want.Digest[a]; !ok || !bytes.Equal(v, w) {
			// Upstream's text; the node's digest disagrees with the
			// entry its parent (or the tag) gives.
			return false, invalidf("Content digest mismatch")
		}
	}
	key := nodeKey(t.key(), p)
	check := want.Digest
	if want.Type != types.DirectoryType {
		check = r.fileDigests(want.Digest)
	}
	dir := want.Type == types.DirectoryType
	// Hashing runs beside receiving (TLS) and writing: three cores' worth
	// of work on a large upload, if the upload buffer budget has room for
	// its buffers (uploadbudget.go); otherwise it is hashed as it is read
	// and copied with a small buffer. Either way only a body that ends
	// where and as its digests say is stored.
	var vr io.Reader
	if cost := r.pipelineCost(want.Length, dir); cost > 0 {
		if release, ok := r.uploadBuffers().tryAcquire(cost); ok {
			defer release() // after vr.Close: the reader's chunks are back
			pvr, err := types.NewPipelinedVerifyingReader(body, check, want.Length)
			if err != nil {
				return false, invalidf("%v", err)
			}
			defer pvr.Close()
			vr, ctx = pvr, withPipelining(ctx)
		}
	}
	if vr == nil {
		if vr, err = types.NewVerifyingReader(body, check, want.Length); err != nil {
			return false, invalidf("%v", err)
		}
	}
	if dir && want.Length > MaxDirectorySize {
		return false, invalidf("Directory node larger than %d bytes", MaxDirectorySize)
	}
	// A directory's body is held in memory until the node is stored: it
	// takes its length from the server's directory buffer budget before
	// any of it is read, so that many uploads at once (slow ones hold
	// their buffer for long) cannot make the server hold connections ×
	// MaxDirectorySize. It is taken before the node's lock, and given back
	// before any other lock is waited for (finishNode), so that no wait
	// for the budget holds a lock that a holder of the budget may wait for.
	releaseBuf := func() {}
	if dir {
		if releaseBuf, err = r.dirBuffers().acquire(ctx, want.Length); err != nil {
			return false, err
		}
		defer releaseBuf()
	}
	unlock, err := r.nodeLocks.lock(ctx, key)
	if err != nil {
		return false, err
	}
	defer unlock()
	state, err := r.checkNode(ctx, t, p, want, checkLocked)
	if err != nil {
		return false, err
	}
	replace := false
	switch state {
	case nodeVerified:
		// Already stored (a resumed publish). Still read and check the
		// body: the client is owed a clean end of its request, and a wrong
		// body is a wrong request even if the stored node is right.
		unlock()
		releaseBuf() // the body streams
		return true, r.discardAndFinish(ctx, t, p, vr)
	case nodeUnverified:
		// Stored, but not verified by this registry. A visible tag is
		// never changed (it was made visible by an earlier version, which
		// hashed every upload); in a hidden one the verified body
		// replaces what is stored.
		if err := r.visible(ctx, t); err == nil {
			unlock()
			releaseBuf() // the body streams
			return true, r.discardAndFinish(ctx, t, p, vr)
		} else if !errors.Is(err, ErrNotFound) {
			return false, err
		}
		replace = true
	}
	var src io.Reader = vr
	settle := func(bool) {}
	cacheDir := func() {}
	if dir {
		// Exactly the declared length (io.ReadAll would grow its buffer
		// past it, beyond what the budget counts); the reader ends there
		// or fails (ErrLengthMismatch), and verifies the digests at EOF.
		buf := make([]byte, want.Length)
		if _, err := io.ReadFull(vr, buf); err != nil {
			return false, mapVerifyErr(err)
		}
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return false, mapVerifyErr(err)
		}
		// Parsing costs far more than the body's size (see parseSlots):
		// a bounded number of parses run at once, the others wait here,
		// holding their body only.
		release, err := parseSlot(ctx)
		if err != nil {
			return false, err
		}
		d, err := types.ParseDirectory(buf)
		release()
		if err != nil {
			return false, invalidf("Invalid directory: %v", err)
		}
		// Its entries count against MaxTreeNodes before it is stored
		// (progress.go).
		s := r.progress.get(t.key())
		if err := r.reserve(ctx, t, s, p, len(d), replace); errors.Is(err, errNodeStored) {
			unlock()
			releaseBuf()
			return true, r.finishNode(ctx, t, p)
		} else if err != nil {
			return false, err
		}
		settle = func(stored bool) { s.count.settle(len(d), stored) }
		src = bytes.NewReader(buf)
		cacheDir = func() { r.dirs.set(key, cachedDir{d, d.Names()}, len(buf)) }
	}
	if replace {
		r.forget(key)
		err = r.b.Replace(ctx, key, want.Meta, src)
		r.forget(key) // a concurrent reader may have cached the old one
		settle(err == nil)
		if err != nil {
			return false, mapVerifyErr(err)
		}
		r.log().Warn("replaced a stored node this registry had not verified", "tag", t.String(), "node", "/"+p.String())
	} else {
		err = r.b.Create(ctx, key, want.Meta, src)
		settle(err == nil)
		if err != nil {
			if errors.Is(err, ErrExists) {
				// Another replica stored it; it writes the marker.
				unlock()
				releaseBuf()
				return true, r.finishNode(ctx, t, p)
			}
			return false, mapVerifyErr(err)
		}
	}
	if err := r.writeMarker(ctx, key, check, want); err != nil {
		return false, err
	}
	cacheDir()
	unlock()
	releaseBuf()
	return false, r.finishNode(ctx, t, p)
}

// discardAndFinish reads and verifies the body of a PUT whose node is
// already stored, then runs the completeness check.
func (r *Registry) discardAndFinish(ctx context.Context, t TagRef, p types.TreePath, vr io.Reader) error {
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return mapVerifyErr(err)
	}
	return r.finishNode(ctx, t, p)
}

// finishNode runs the completeness check after a PUT of node p. A stored
// node that fails its hash and comes before p in canonical order is the
// publisher's to replace and it has not: that is an error. One that comes
// after p is not yet (publishers upload in canonical order, and the upload
// replaces it), so the PUT succeeds and the tag stays hidden.
func (r *Registry) finishNode(ctx context.Context, t TagRef, p types.TreePath) error {
	err := r.checkComplete(ctx, t)
	var rej *RejectedError
	if errors.As(err, &rej) && rej.Node && slices.Compare(p, rej.Path) < 0 {
		r.log().Debug("node stored; the tag waits for a rejected node to be uploaded again", "tag", t.String(), "node", "/"+p.String(), "rejected", "/"+rej.Path.String())
		return nil
	}
	return err
}

func mapVerifyErr(err error) error {
	switch {
	case errors.Is(err, types.ErrDigestMismatch):
		return invalidf("Content digest mismatch")
	case errors.Is(err, types.ErrLengthMismatch):
		return invalidf("%v", errors.Unwrap(err))
	}
	return err
}
