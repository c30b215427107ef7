package store

import (
	"bytes"
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// DefaultMaxTreeNodes is the default bound on the nodes of one tag's tree
// (the root plus every entry of every directory); see
// Registry.MaxTreeNodes.
const DefaultMaxTreeNodes = 1_000_000

// progressBudget bounds the memory of the completeness cursors kept for
// tags being published.
const progressBudget = 4 << 20

// Completeness tracking.
//
// A tag becomes visible once every node of its tree is stored, agrees
// with the entry its parent gives, and is verified: its content was hashed
// by this registry against that entry (a marker records it; a stored node
// without one, written by upstream Drawbridge or before a crash, is hashed
// when the walk reaches it, see verify.go). The check is a depth-first walk
// of the tree in canonical (sorted) order that stops at the first node not
// yet stored, or that fails its hash (rejected: only a new upload of it,
// which replaces it, lets the walk go on). Verified nodes are never
// changed or deleted, so what such a walk has confirmed stays true: the
// walk is resumable. A tagProgress is the walk's
// cursor: the path of directories it is inside, and for each the index of
// the first child whose subtree is not yet known to be complete. Everything
// before the cursor (in walk order) is complete; nothing after it has been
// looked at. After each tree PUT the walk resumes at the cursor, so it
// checks every node once per publish, whatever the upload order: O(N) node
// checks in all, and O(1) for a PUT that does not move the cursor.
// Checks of one tag hold its cursor in turn (concurrent PUTs of one tag
// are consistent); a PUT that finds that a check began after its node was
// stored, and succeeded, while it waited, returns without one of its own.
//
// The cursor is a cache of facts read from the Backend, which stays the
// only truth: it lives in memory, is bounded (least recently used cursors
// are dropped), and a tag without one (after a restart, on another replica
// sharing the bucket, after eviction) starts a new walk from the root,
// which catches up with what is stored in one pass. Only the verified
// marker, written when the walk finishes, is persistent and shared.
//
// MaxTreeNodes bounds what is stored of a tag's tree, not only what the
// walk has reached (the walk stops at the first missing node, while a
// client may go on storing nodes beneath other stored directories). A
// treeCount beside the cursor holds two counts of the nodes the tree is
// known to have, each the root plus the entries of a set of distinct
// stored directories: accepted counts the directories whose PUT stored
// them (their entries are known from the body), walked those the walk has
// entered. Either is at most the tree's true size, so their maximum is
// too. A directory PUT reserves its entries before its node is stored and
// is refused (InvalidError, before storing) if that would take the count
// past MaxTreeNodes; the refusal is sticky, like one by the walk. Every
// stored node is named by a stored directory (or is the root), so in one
// process the nodes stored of a tag stay within the bound.
// The count is kept with the cursor, so it is only as good as the cursor:
// after a restart, on another replica, or once the cursor is evicted, it
// starts again from the root, and directories stored before are counted
// only when the catch-up walk enters them. A tag can thus get past the
// bound by what it stored beyond its walk in earlier cursor lifetimes:
// the bound is exact per process and cursor lifetime, approximate across
// them. The walk itself also enforces it, a catch-up included: it counts
// the entries of each directory it enters and refuses the tree beyond it.

// tagProgress is the completeness cursor of one tag.
type tagProgress struct {
	key string
	mu  chan struct{} // held (one token) while the fields below are used
	// begun numbers the checks of this cursor as they begin; it is
	// written with mu held and read without.
	begun atomic.Uint64

	// covered is the number of the latest check that ended without error:
	// a PUT whose node was stored before that check began needs no check
	// of its own (checks of one tag do not queue up behind each other).
	covered uint64

	loaded  bool        // root is set
	root    types.Entry // the tag's root entry
	started bool        // the root node is stored and agrees with root
	done    bool        // the tag is visible
	// The walk's position: idx[k] is the number of leading children (in
	// canonical order) of the directory at path[:k] whose subtrees are
	// complete; path is the innermost directory entered. Empty idx after
	// started: the whole tree is complete.
	idx  []int
	path types.TreePath
	// nodes counts the nodes the walk knows the tree has: the root and
	// every entry of every directory entered (count.walked follows it).
	nodes int
	// stop is the node the walk stopped at, not stored, when the last
	// check ended incomplete without error.
	stop types.TreePath
	// rejected, if not nil, says that the node at the walk's position is
	// stored but failed its hash: later checks do not hash the same bytes
	// again, they only look for a marker (written when it is replaced).
	rejected *RejectedError

	// count bounds the stored tree; it has a lock of its own, so that
	// PUTs do not wait for a check.
	count   treeCount
	element *list.Element
	cost    int // guarded by progressTable.mu
}

// treeCount is what a tag is known to store, against MaxTreeNodes (see
// the comment at the top).
type treeCount struct {
	mu sync.Mutex
	// accepted is 1 (the root) plus the entries of every directory whose
	// node a PUT stored while this cursor existed.
	accepted int
	// walked is the walk's count of nodes (tagProgress.nodes).
	walked int
	// pending is the entries of directories being stored (reserved, not
	// yet stored or released).
	pending int
	// settled, if not nil, is closed when pending next decreases.
	settled chan struct{}
	tooBig  error // sticky: the tree names more than MaxTreeNodes nodes
}

// known is the number of nodes the tree is known to have. c.mu is held.
func (c *treeCount) known() int { return max(c.accepted, c.walked) }

// err returns the sticky error, if any.
func (c *treeCount) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tooBig
}

// refuse makes err sticky (unless there is already an error) and returns
// the sticky error.
func (c *treeCount) refuse(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tooBig == nil {
		c.tooBig = err
	}
	return c.tooBig
}

// settle ends a reservation of k entries: stored says whether this PUT
// stored the directory (else another did, or it failed).
func (c *treeCount) settle(k int, stored bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending -= k
	if stored {
		c.accepted += k
	}
	if c.settled != nil {
		close(c.settled)
		c.settled = nil
	}
}

func (s *tagProgress) lock(ctx context.Context) error {
	select {
	case s.mu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *tagProgress) unlock() { <-s.mu }

// size is what s is counted as against progressBudget.
func (s *tagProgress) size() int {
	n := 256 + len(s.key) + 8*cap(s.idx) + 16*cap(s.path)
	for _, name := range s.path {
		n += len(name)
	}
	return n
}

// progressTable holds the cursors of tags being published, least recently
// used dropped first beyond its budget.
type progressTable struct {
	mu    sync.Mutex
	max   int
	size  int
	order *list.List // of *tagProgress, most recent first
	m     map[string]*tagProgress
}

func newProgressTable(maxSize int) *progressTable {
	return &progressTable{max: maxSize, order: list.New(), m: map[string]*tagProgress{}}
}

// get returns the cursor of key, making an empty one if there is none.
func (pt *progressTable) get(key string) *tagProgress {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if s, ok := pt.m[key]; ok {
		pt.order.MoveToFront(s.element)
		return s
	}
	s := &tagProgress{key: key, mu: make(chan struct{}, 1)}
	s.count.accepted = 1
	s.cost = s.size()
	s.element = pt.order.PushFront(s)
	pt.m[key] = s
	pt.size += s.cost
	pt.evict()
	return s
}

// peek returns the cursor of key, if there is one.
func (pt *progressTable) peek(key string) *tagProgress {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.m[key]
}

// resize records s's new size (the caller holds s) and drops cursors
// beyond the budget.
func (pt *progressTable) resize(s *tagProgress) {
	n := s.size()
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.m[s.key] != s {
		return // dropped meanwhile
	}
	pt.size += n - s.cost
	s.cost = n
	pt.evict()
}

// remove drops s (the caller holds s).
func (pt *progressTable) remove(s *tagProgress) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.m[s.key] != s {
		return
	}
	pt.drop(s)
}

func (pt *progressTable) drop(s *tagProgress) {
	pt.order.Remove(s.element)
	delete(pt.m, s.key)
	pt.size -= s.cost
}

// evict drops the least recently used cursors beyond the budget, but never
// the most recent one. A dropped cursor still in use stays correct (it is
// only a cache); the next check of its tag starts a new one.
func (pt *progressTable) evict() {
	for pt.size > pt.max && pt.order.Len() > 1 {
		pt.drop(pt.order.Back().Value.(*tagProgress))
	}
}

// maxTreeNodes is the effective bound on a tree's nodes.
func (r *Registry) maxTreeNodes() int {
	if r.MaxTreeNodes <= 0 {
		return DefaultMaxTreeNodes
	}
	return r.MaxTreeNodes
}

// tooBig returns the error of a tag whose tree is known to exceed
// MaxTreeNodes, so that no more of its nodes are stored.
func (r *Registry) tooBig(t TagRef) error {
	s := r.progress.peek(t.key())
	if s == nil {
		return nil
	}
	return s.count.err()
}

// errNodeStored is reserve's answer when the directory to be stored turns
// out to be stored already.
var errNodeStored = errors.New("node stored meanwhile")

// reserve counts the k entries of directory node p of tag t, about to be
// stored (the caller found it not stored, or replacing: stored but
// unverified, so its entries are not counted), against MaxTreeNodes. If
// they fit, they are pending in s until s.count.settle. If not, the tree is
// too big: the error is an InvalidError, and sticky. Unless replacing, it
// is errNodeStored if p was stored meanwhile (by a concurrent PUT, whose
// count may already include its entries).
func (r *Registry) reserve(ctx context.Context, t TagRef, s *tagProgress, p types.TreePath, k int, replacing bool) error {
	limit := r.maxTreeNodes()
	c := &s.count
	for {
		c.mu.Lock()
		if c.tooBig != nil {
			c.mu.Unlock()
			return c.tooBig
		}
		known := c.known()
		if known+c.pending+k <= limit {
			c.pending += k
			c.mu.Unlock()
			return nil
		}
		if known+k <= limit {
			// Only reservations in flight are in the way; they may
			// fail, or be of this same node: wait for them.
			if c.settled == nil {
				c.settled = make(chan struct{})
			}
			ch := c.settled
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c.mu.Unlock()
		// known counts distinct stored directories; if p is still not
		// stored now, it was not among them when known was read, and
		// the tree has more than known+k > limit nodes.
		if replacing {
			// Unverified, so never counted.
		} else if _, err := r.nodeMeta(ctx, nodeKey(t.key(), p)); err == nil {
			return errNodeStored
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return c.refuse(invalidf("The tree of tag %s has more than %d nodes", t.Tag, limit))
	}
}

// checkComplete makes tag t visible if every node of its tree is present,
// agrees with the entry its parent gives and is verified, resuming the
// tag's walk where the last check stopped. Callers have stored their node
// (if any) before calling. A stored node that fails its hash stops the
// walk with a *RejectedError naming it.
func (r *Registry) checkComplete(ctx context.Context, t TagRef) error {
	s := r.progress.get(t.key())
	seen := s.begun.Load()
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
	if s.covered > seen {
		// A check that began after the caller's node was stored has
		// ended without error: it saw that node.
		return nil
	}
	check := s.begun.Add(1)
	err := r.runCheck(ctx, t, s)
	if err == nil {
		s.covered = check
	}
	return err
}

// runCheck is checkComplete's work; the caller holds s.
func (r *Registry) runCheck(ctx context.Context, t TagRef, s *tagProgress) error {
	if !s.loaded {
		// A new cursor: the tag may have been completed by another
		// replica, or before a restart.
		if err := r.visible(ctx, t); err == nil {
			s.done = true
			r.progress.remove(s)
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		root, err := r.rootEntry(ctx, t)
		if err != nil {
			return err
		}
		s.root, s.loaded = root, true
	}
	s.stop = nil
	complete, err := r.advance(ctx, t, s)
	r.progress.resize(s)
	if err != nil || !complete {
		return err
	}
	err = r.b.Create(ctx, verifiedKey(t.key()), types.Meta{
		Digest: s.root.Digest, Length: 0, Type: verifiedMarkerType,
	}, bytes.NewReader(nil))
	if errors.Is(err, ErrExists) {
		err = nil // a concurrent upload (maybe on another replica) finished it
	}
	if err == nil {
		s.done = true
		r.progress.remove(s)
	}
	return err
}

// advance moves s's walk forward as far as the stored nodes allow and
// reports whether the whole tree is complete. The caller holds s. s only
// changes after what it records has been read, so an error or a cancelled
// context leaves a cursor that is still right.
func (r *Registry) advance(ctx context.Context, t TagRef, s *tagProgress) (bool, error) {
	if !s.started {
		ok, err := r.walkNode(ctx, t, s, types.TreePath{}, s.root)
		if err != nil || !ok {
			return false, err
		}
		if s.root.Type == types.DirectoryType {
			if err := r.enter(ctx, t, s, types.TreePath{}, 1); err != nil {
				return false, err
			}
		} else {
			s.nodes = 1 // count.walked: accepted is at least 1
		}
		s.started = true
	}
	for len(s.idx) > 0 {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		top := len(s.idx) - 1
		d, names, err := r.sortedDirectory(ctx, t, s.path)
		if err != nil {
			return false, err
		}
		i := s.idx[top]
		if i == len(names) {
			// This directory's subtree is complete.
			s.idx = s.idx[:top]
			if top > 0 {
				s.path = s.path[:top-1]
				s.idx[top-1]++
			}
			continue
		}
		p := s.path.Child(names[i])
		e := d[names[i]]
		ok, err := r.walkNode(ctx, t, s, p, e)
		if err != nil || !ok {
			return false, err
		}
		if e.Type == types.DirectoryType {
			if err := r.enter(ctx, t, s, p, s.nodes); err != nil {
				return false, err
			}
		} else {
			s.idx[top]++
		}
	}
	return true, nil
}

// enter pushes the stored directory at p onto s's walk; nodes is the count
// of nodes known before it (its own entry included).
func (r *Registry) enter(ctx context.Context, t TagRef, s *tagProgress, p types.TreePath, nodes int) error {
	d, _, err := r.sortedDirectory(ctx, t, p)
	if err != nil {
		return err
	}
	nodes += len(d)
	if limit := r.maxTreeNodes(); nodes > limit {
		return s.count.refuse(invalidf("The tree of tag %s has more than %d nodes", t.Tag, limit))
	}
	s.nodes = nodes
	s.count.mu.Lock()
	s.count.walked = nodes
	s.count.mu.Unlock()
	s.idx = append(s.idx, 0)
	if len(p) > 0 {
		s.path = append(s.path, p[len(p)-1])
	}
	return nil
}

// walkNode reports whether node p, at the walk's position, is stored and
// verified against e, the entry its parent gives; if it is stored but fails
// its hash, the error is a *RejectedError (remembered in s, so that the
// bytes are not hashed again at every check). The caller holds s.
func (r *Registry) walkNode(ctx context.Context, t TagRef, s *tagProgress, p types.TreePath, e types.Entry) (bool, error) {
	r.nodeChecks.Add(1)
	mode := checkHash
	if s.rejected != nil {
		mode = checkNoHash
	}
	state, err := r.checkNode(ctx, t, p, e, mode)
	if err != nil {
		var rej *RejectedError
		if errors.As(err, &rej) {
			s.rejected = rej
			r.log().Warn("stored node fails verification; its tag stays hidden until the node is uploaded again",
				"tag", t.String(), "node", "/"+p.String(), "reason", rej.Reason)
		}
		return false, err
	}
	switch state {
	case nodeVerified:
		s.rejected = nil
		return true, nil
	case nodeUnverified: // checkNoHash: still the rejected bytes
		return false, s.rejected
	}
	s.rejected = nil
	s.stop = p
	return false, nil
}
