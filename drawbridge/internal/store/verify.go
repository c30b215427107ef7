package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// Node verification.
//
// A tree node is verified when this registry has hashed its stored content
// against the entry its parent directory (or the tag) gives. Uploads are
// hashed as they stream in; nodes stored by someone else (upstream
// Drawbridge stores, which keep the bytes of failed uploads under the
// claimed meta) or left unmarked by a crash are hashed when a check
// reaches them. Either way the result is recorded in a marker object at
// "<node key>/verified", written only after the hash matched, with
// Backend.Create (FS: staged, fsynced and renamed like every object; Blob:
// one conditional write), so a marker is complete and durable or absent.
// Its Meta is {digest: the digests the content was checked against (a
// subset of the entry's: sha-256 for a file upload unless
// VerifyAllDigests; every digest for directories and for nodes hashed
// later), length: 0, type: nodeMarkerType}; its content is empty.
//
// No request can write a marker: every node key has the word "entries"
// between names ("…/tree/entries/a/entries/b"), and a marker key has
// "verified" in such a place ("…/tree/verified", "…/tree/entries/a/verified"),
// so no tree path names one; markers are written only here. A crash after a
// node is stored and before its marker leaves an unmarked node, which is
// hashed once more later: never served unverified. Stores written by
// earlier versions of this registry have no node markers either: their
// hidden tags' nodes are hashed once, when a publish (or
// --verify-existing) checks them; visible tags are not affected.
//
// A node of a hidden tag that is not verified may be replaced by a new
// upload, verified against its entry (Backend.Replace). Verified nodes are
// never replaced, and are the only ones whose Meta and content the
// Registry caches.

// nodeMarkerType is the media type of a node's verification marker.
const nodeMarkerType = "application/vnd.enarx.drawbridge.node-verified"

// nodeMarkerKey is the key of the verification marker of the node at key.
func nodeMarkerKey(node string) string { return node + "/verified" }

// markerCovers reports whether marker m vouches for content matching e: it
// is a node marker, every digest it names equals e's, and it names e's
// sha-256 (all of e's digests if e has no sha-256), which is what a file
// upload is always checked against.
func markerCovers(m types.Meta, e types.Entry) bool {
	if m.Type != nodeMarkerType || len(m.Digest) == 0 {
		return false
	}
	for a, v := range m.Digest {
		if w, ok := e.Digest[a]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	if _, ok := e.Digest[types.SHA256]; ok {
		_, has := m.Digest[types.SHA256]
		return has
	}
	return len(m.Digest) == len(e.Digest)
}

// nodeState is what checkNode found.
type nodeState int

const (
	nodeMissing    nodeState = iota // not stored
	nodeVerified                    // stored, agrees with the entry, marker present
	nodeUnverified                  // stored, not verified, not hashed
	nodeRejected                    // stored, hashed, does not match (err says why)
)

// checkMode says what checkNode may do about a stored node that is not
// verified.
type checkMode int

const (
	// checkLocked: the caller holds the node's lock; only look.
	checkLocked checkMode = iota
	// checkNoHash: only look, but not while a PUT stores or replaces the
	// node (the walk, stopped at a node it rejected, waiting for a new
	// upload of it).
	checkNoHash
	// checkHash: look, and hash the node if it is not verified.
	checkHash
)

// checkNode reports the state of stored node p of tag t against e, the
// entry its verified parent (or the tag) gives. A node is verified if its
// stored meta is e's and its marker covers e. With checkHash, a stored node
// that is not is hashed now: its stored content, read from the Backend
// (never from a cache), against all of e's digests; if it matches, its
// marker is written and it is verified, otherwise it is rejected and err is
// a *RejectedError saying why. Other errors are the Backend's.
//
// Unless the caller holds it, a node that is not found verified is looked
// at again under the node's lock, so never while a PUT stores or replaces
// it (a replacement is not atomic on every Backend: FS swaps two files,
// fileblob rewrites its metadata file in place); that PUT may have
// verified it meanwhile. A node that is missing or verified costs no lock:
// a check never waits for an upload of a node that is not stored yet.
func (r *Registry) checkNode(ctx context.Context, t TagRef, p types.TreePath, e types.Entry, mode checkMode) (nodeState, error) {
	key := nodeKey(t.key(), p)
	state, err := r.peekNode(ctx, key, e)
	if mode == checkLocked || (err == nil && state != nodeUnverified) {
		return state, err
	}
	unlock, lerr := r.nodeLocks.lock(ctx, key)
	if lerr != nil {
		return 0, lerr
	}
	defer unlock()
	if state, err = r.peekNode(ctx, key, e); err != nil || state != nodeUnverified || mode == checkNoHash {
		return state, err
	}
	return r.rehash(ctx, t, p, e)
}

// peekNode looks at node key: missing, verified, or (also if its meta
// cannot be read) unverified.
func (r *Registry) peekNode(ctx context.Context, key string, e types.Entry) (nodeState, error) {
	m, err := r.nodeMeta(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nodeMissing, nil
	case errors.Is(err, ErrCorrupt):
		return nodeUnverified, nil // rehash rejects it
	case err != nil:
		return 0, err
	}
	if !m.Equal(e.Meta) {
		return nodeUnverified, nil
	}
	ok, err := r.hasMarker(ctx, key, e)
	if err != nil || !ok {
		return nodeUnverified, err
	}
	r.metas.put(key, cloneMeta(m), metaCost)
	return nodeVerified, nil
}

// hasMarker reports whether node key has a marker that covers e.
func (r *Registry) hasMarker(ctx context.Context, key string, e types.Entry) (bool, error) {
	mk := nodeMarkerKey(key)
	if m, ok := r.cachedMeta(mk); ok && markerCovers(m, e) {
		return true, nil
	}
	m, err := r.b.Stat(ctx, mk)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("reading the marker of %s: %w", key, err)
	}
	if !markerCovers(m, e) {
		return false, nil
	}
	r.metas.set(mk, cloneMeta(m), metaCost)
	return true, nil
}

// hashBufSize is the read size when hashing a stored node.
const hashBufSize = 1 << 20

// rehash hashes stored node p against all of e's digests (and, for a
// directory, parses it); if it matches, it writes the node's marker and
// caches the node.
func (r *Registry) rehash(ctx context.Context, t TagRef, p types.TreePath, e types.Entry) (nodeState, error) {
	key := nodeKey(t.key(), p)
	reject := func(reason string) (nodeState, error) {
		return nodeRejected, &RejectedError{Tag: t.Tag, Node: true, Path: p, Reason: reason}
	}
	o, err := r.b.Open(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return nodeMissing, nil
	case errors.Is(err, ErrCorrupt):
		return reject("its stored object is unreadable or inconsistent")
	case err != nil:
		return 0, fmt.Errorf("opening stored node %q: %w", "/"+p.String(), err)
	}
	defer o.Content.Close()
	if !o.Meta.Equal(e.Meta) {
		return reject("its stored type, length or digests differ from the entry")
	}
	dir := e.Type == types.DirectoryType
	if dir && e.Length > MaxDirectorySize {
		return reject(fmt.Sprintf("a directory larger than %d bytes", MaxDirectorySize))
	}
	vr, err := types.NewVerifyingReader(ctxReader{ctx, o.Content}, e.Digest, e.Length)
	if err != nil {
		return reject(err.Error())
	}
	var body []byte
	if dir {
		body, err = io.ReadAll(vr)
	} else {
		bp := copyBufs.Get().(*[]byte)
		_, err = io.CopyBuffer(struct{ io.Writer }{io.Discard}, vr, (*bp)[:hashBufSize])
		copyBufs.Put(bp)
	}
	if err != nil {
		if errors.Is(err, types.ErrDigestMismatch) || errors.Is(err, types.ErrLengthMismatch) {
			return reject(err.Error())
		}
		return 0, fmt.Errorf("hashing stored node %q: %w", "/"+p.String(), err)
	}
	var d types.Directory
	if dir {
		release, err := parseSlot(ctx)
		if err != nil {
			return 0, err
		}
		d, err = types.ParseDirectory(body)
		release()
		if err != nil {
			return reject(fmt.Sprintf("not a valid directory: %v", err))
		}
	}
	if err := r.writeMarker(ctx, key, e.Digest, e); err != nil {
		return 0, err
	}
	r.metas.set(key, cloneMeta(e.Meta), metaCost)
	if dir {
		r.dirs.set(key, cachedDir{d, d.Names()}, len(body))
	}
	return nodeVerified, nil
}

// writeMarker records that node key's stored content matched the digests
// verified (a subset of e's, covering e). The node is stored.
func (r *Registry) writeMarker(ctx context.Context, key string, verified types.Digests, e types.Entry) error {
	mk := nodeMarkerKey(key)
	m := types.Meta{Digest: verified, Length: 0, Type: nodeMarkerType}
	err := r.b.Create(ctx, mk, m, bytes.NewReader(nil))
	if errors.Is(err, ErrExists) {
		// Another upload or check verified it too; or a marker that does
		// not cover this entry is left from a replaced node: replace it.
		old, serr := r.b.Stat(ctx, mk)
		if serr == nil && markerCovers(old, e) {
			return nil
		}
		r.metas.remove(mk)
		err = r.b.Replace(ctx, mk, m, bytes.NewReader(nil))
	}
	if err != nil {
		return fmt.Errorf("writing the verification marker of %s: %w", key, err)
	}
	return nil
}

// verifiedDirectory returns directory node p of tag t, with its names in
// canonical order, once p is stored and verified: its entry comes from its
// own verified parent (or the tag), and a p that is not verified is hashed
// now (a *RejectedError if it fails). Callers must not change the results.
func (r *Registry) verifiedDirectory(ctx context.Context, t TagRef, p types.TreePath) (types.Directory, []types.TreeName, error) {
	if d, ok := r.dirs.get(nodeKey(t.key(), p)); ok {
		return d.d, d.names, nil // only verified directories are cached
	}
	e, err := r.expectedEntry(ctx, t, p)
	if err != nil {
		return nil, nil, err
	}
	state, err := r.checkNode(ctx, t, p, e, checkHash)
	if err != nil {
		return nil, nil, err
	}
	if state == nodeMissing {
		return nil, nil, fmt.Errorf("node %q: %w", "/"+p.String(), ErrNotFound)
	}
	return r.sortedDirectory(ctx, t, p)
}

// VerifyExisting looks for tags that are stored but not visible — all tags
// of a store written by upstream Drawbridge, or a tag whose last node was
// stored just before a crash — and makes each visible if its whole tree
// verifies against the Merkle chain: the tag body against its own digests,
// every node's stored meta equal to its parent's entry, and every node's
// content verified, by its marker or else by hashing it against all of
// that entry's digests (which writes its marker, also in tags that stay
// hidden). Tags that fail stay hidden; report (if not nil) is told about
// each tag checked, with nil for success. It returns how many tags it made
// visible.
func (r *Registry) VerifyExisting(ctx context.Context, report func(TagRef, error)) (int, error) {
	users, err := r.b.List(ctx, "users")
	if err != nil {
		return 0, err
	}
	made := 0
	for _, un := range users {
		u, err := types.ParseUserName(un)
		if err != nil {
			continue
		}
		repos, err := r.b.List(ctx, userKey(u)+"/repos")
		if err != nil {
			return made, err
		}
		for _, rn := range repos {
			p, err := types.ParseRepoName(rn)
			if err != nil {
				continue
			}
			tags, err := r.b.List(ctx, tagsKey(u, p))
			if err != nil {
				return made, err
			}
			for _, tn := range tags {
				tag, err := types.ParseTagName(tn)
				if err != nil {
					continue
				}
				t := TagRef{User: u, Repo: p, Tag: tag}
				if r.visible(ctx, t) == nil {
					continue
				}
				err = r.adoptTag(ctx, t)
				if report != nil {
					report(t, err)
				}
				if err == nil {
					made++
				} else if ctx.Err() != nil {
					return made, ctx.Err()
				}
			}
		}
	}
	return made, nil
}

// adoptTag runs the completeness check of hidden tag t and says why it
// stays hidden, if it does.
func (r *Registry) adoptTag(ctx context.Context, t TagRef) error {
	s := r.progress.get(t.key())
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	if s.done {
		return nil
	}
	if err := s.count.err(); err != nil {
		return err
	}
	check := s.begun.Add(1)
	if err := r.runCheck(ctx, t, s); err != nil {
		return err
	}
	s.covered = check
	if !s.done {
		return fmt.Errorf("tree incomplete: node %q is not stored", "/"+s.stop.String())
	}
	return nil
}

// digestsMatch reports whether every digest in want equals the one in got.
func digestsMatch(want, got types.Digests) bool {
	if len(want) == 0 {
		return false
	}
	for a, v := range want {
		if !bytes.Equal(got[a], v) {
			return false
		}
	}
	return true
}
