package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"gocloud.dev/blob/memblob"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// buildTree builds the tree of fsys's "p" with file contents filled in.
func buildTree(t *testing.T, fsys fstest.MapFS) []types.Node {
	t.Helper()
	nodes, err := types.BuildTree(fsys, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	nodes[0].Entry.Extra = nil
	for i := range nodes {
		if nodes[i].File != "" {
			nodes[i].Content = fsys[nodes[i].File].Data
		}
	}
	return nodes
}

// flatTree is a directory of n files.
func flatTree(t *testing.T, n int) []types.Node {
	fsys := fstest.MapFS{}
	for i := range n {
		fsys[fmt.Sprintf("p/f%05d", i)] = &fstest.MapFile{Data: []byte(fmt.Sprint(i))}
	}
	return buildTree(t, fsys)
}

// nestedTree has dirs directories of files files each, plus a deep chain.
func nestedTree(t *testing.T, dirs, files int) []types.Node {
	fsys := fstest.MapFS{}
	for d := range dirs {
		for f := range files {
			fsys[fmt.Sprintf("p/d%03d/f%03d", d, f)] = &fstest.MapFile{Data: []byte(fmt.Sprint(d, f))}
		}
	}
	fsys["p/d000/a/b/c/d/e/x"] = &fstest.MapFile{Data: []byte("deep")}
	return buildTree(t, fsys)
}

// sortedOrder is the nodes in canonical walk order: parents first.
func sortedOrder(nodes []types.Node) []types.Node {
	out := slices.Clone(nodes)
	slices.SortFunc(out, func(a, b types.Node) int { return slices.Compare(a.Path, b.Path) })
	return out
}

// hostileOrder uploads, after the root, the last node of the walk, then
// everything else in walk order, each node after its parent: before the
// fix every PUT walked everything stored so far.
func hostileOrder(nodes []types.Node) []types.Node {
	s := sortedOrder(nodes)
	last := s[len(s)-1]
	var out []types.Node
	placed := map[string]bool{}
	var place func(p types.TreePath)
	byPath := map[string]types.Node{}
	for _, n := range s {
		byPath[n.Path.String()] = n
	}
	place = func(p types.TreePath) {
		if placed[p.String()] {
			return
		}
		if !p.IsRoot() {
			place(p.Parent())
		}
		placed[p.String()] = true
		out = append(out, byPath[p.String()])
	}
	place(last.Path)
	for _, n := range s {
		place(n.Path)
	}
	return out
}

// reverseOrder uploads parents first, and otherwise in reverse walk order.
func reverseOrder(nodes []types.Node) []types.Node {
	s := sortedOrder(nodes)
	slices.SortStableFunc(s, func(a, b types.Node) int {
		if len(a.Path) != len(b.Path) {
			return len(a.Path) - len(b.Path)
		}
		return -slices.Compare(a.Path, b.Path)
	})
	return s
}

// randomOrder is a random order with every node after its parent.
func randomOrder(nodes []types.Node, seed uint64) []types.Node {
	rng := rand.New(rand.NewPCG(seed, 1))
	placed := map[string]bool{}
	var out []types.Node
	pending := slices.Clone(nodes)
	for len(pending) > 0 {
		// Any node whose parent is placed.
		start := rng.IntN(len(pending))
		for k := range pending {
			i := (start + k) % len(pending)
			n := pending[i]
			if n.Path.IsRoot() || placed[n.Path.Parent().String()] {
				placed[n.Path.String()] = true
				out = append(out, n)
				pending = slices.Delete(pending, i, i+1)
				break
			}
		}
	}
	return out
}

func memRegistry(t *testing.T) *Registry {
	s := NewBlob(memblob.OpenBucket(nil))
	t.Cleanup(func() { s.Close() })
	return NewRegistry(s)
}

// upload creates the tag and uploads nodes in the given order, checking that
// the tag becomes visible exactly with the last one.
func upload(t *testing.T, r *Registry, ref TagRef, all, order []types.Node) {
	t.Helper()
	m, b := tagBody(t, all)
	if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
		t.Fatal(err)
	}
	for i, n := range order {
		if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
			t.Fatalf("%s: %v", n.Path, err)
		}
		err := r.visible(ctx, ref)
		if last := i == len(order)-1; last != (err == nil) {
			t.Fatalf("after node %d of %d (%s): visible err = %v", i+1, len(order), n.Path, err)
		}
	}
}

// TestCompletenessChecksLinear: whatever the upload order, completeness
// tracking checks O(N) nodes for a publish of N nodes. Before the walk was
// resumable, the hostile order cost one walk of everything stored so far
// per PUT: about N²/2 checks (2 million here).
func TestCompletenessChecksLinear(t *testing.T) {
	trees := map[string][]types.Node{
		"flat":   flatTree(t, 2000),
		"nested": nestedTree(t, 40, 50),
	}
	orders := map[string]func([]types.Node) []types.Node{
		"sorted":  sortedOrder,
		"hostile": hostileOrder,
		"reverse": reverseOrder,
		"random":  func(n []types.Node) []types.Node { return randomOrder(n, 7) },
	}
	for tn, nodes := range trees {
		for on, order := range orders {
			t.Run(tn+"/"+on, func(t *testing.T) {
				t.Parallel()
				r := memRegistry(t)
				ref := setupRepo(t, r)
				upload(t, r, ref, nodes, order(nodes))
				n := int64(len(nodes))
				if got := r.nodeChecks.Load(); got > 3*n {
					t.Fatalf("%d node checks for a publish of %d nodes; want at most %d", got, n, 3*n)
				} else {
					t.Logf("%d nodes, %d checks", n, got)
				}
			})
		}
	}
}

// TestCompletenessAcrossReplicasAndRestarts: the cursor is only a cache. A
// publish spread over two replicas sharing a bucket, one of them restarted
// halfway, becomes visible exactly when its last node is stored, on both;
// each replica catches up with one walk.
func TestCompletenessAcrossReplicasAndRestarts(t *testing.T) {
	bucket := memblob.OpenBucket(nil)
	defer bucket.Close()
	regs := []*Registry{NewRegistry(NewBlob(bucket)), NewRegistry(NewBlob(bucket))}
	ref := setupRepo(t, regs[0])
	nodes := flatTree(t, 1000)
	order := hostileOrder(nodes)
	m, b := tagBody(t, nodes)
	if _, err := regs[1].CreateTag(ctx, ref, m, b); err != nil {
		t.Fatal(err)
	}
	var checks int64
	for i, n := range order {
		if i == len(order)/2 {
			checks += regs[0].nodeChecks.Load()
			regs[0] = NewRegistry(NewBlob(bucket)) // restart
		}
		r := regs[i%2]
		if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
			t.Fatalf("%s: %v", n.Path, err)
		}
		for j, r := range regs {
			err := r.visible(ctx, ref)
			if last := i == len(order)-1; last != (err == nil) {
				t.Fatalf("replica %d after node %d: visible err = %v", j, i, err)
			}
		}
	}
	checks += regs[0].nodeChecks.Load() + regs[1].nodeChecks.Load()
	if n := int64(len(nodes)); checks > 6*n {
		t.Fatalf("%d node checks for %d nodes on two replicas and a restart", checks, n)
	}
	for _, r := range regs {
		if tags, err := r.Tags(ctx, ref.User, ref.Repo); err != nil || len(tags) != 1 {
			t.Fatalf("tags %v %v", tags, err)
		}
	}
}

// TestCompletenessEvictedCursors: with cursors dropped all the time (two
// tags published in turn, room for one cursor), publishes still complete
// exactly with their last node.
func TestCompletenessEvictedCursors(t *testing.T) {
	r := memRegistry(t)
	r.progress = newProgressTable(1)
	ref := setupRepo(t, r)
	refs := []TagRef{ref, {ref.User, ref.Repo, "2.0.0"}}
	trees := [][]types.Node{nestedTree(t, 5, 5), flatTree(t, 30)}
	orders := [][]types.Node{hostileOrder(trees[0]), randomOrder(trees[1], 3)}
	for i := range refs {
		m, b := tagBody(t, trees[i])
		if _, err := r.CreateTag(ctx, refs[i], m, b); err != nil {
			t.Fatal(err)
		}
	}
	for k := range max(len(orders[0]), len(orders[1])) {
		for i := range refs {
			if k >= len(orders[i]) {
				continue
			}
			n := orders[i][k]
			if _, err := r.CreateNode(ctx, refs[i], n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
				t.Fatalf("%s: %v", n.Path, err)
			}
			err := r.visible(ctx, refs[i])
			if last := k == len(orders[i])-1; last != (err == nil) {
				t.Fatalf("tag %d after node %d: visible err = %v", i, k, err)
			}
		}
	}
	if r.progress.order.Len() != 0 || len(r.progress.m) != 0 {
		t.Fatalf("%d cursors kept after both tags completed", len(r.progress.m))
	}
}

// TestCompletenessConcurrentPuts: many PUTs of one tag at once (run with
// -race); the tag is visible once all have returned, and not before the
// last node is stored.
func TestCompletenessConcurrentPuts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := nestedTree(t, 6, 8)
		m, b := tagBody(t, nodes)
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		// Directories first (children need their parents), then the files
		// from 8 goroutines in random orders, some sent twice.
		var dirs, files []types.Node
		for _, n := range sortedOrder(nodes) {
			if n.Entry.Type == types.DirectoryType {
				dirs = append(dirs, n)
			} else {
				files = append(files, n)
			}
		}
		for _, n := range dirs {
			if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				share := slices.Clone(files[g*len(files)/8 : (g+1)*len(files)/8])
				share = append(share, files[rand.IntN(len(files))])
				rand.Shuffle(len(share), func(i, j int) { share[i], share[j] = share[j], share[i] })
				for _, n := range share {
					if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
						t.Errorf("%s: %v", n.Path, err)
					}
				}
			})
		}
		wg.Wait()
		if err := r.visible(ctx, ref); err != nil {
			t.Fatalf("complete tag not visible: %v", err)
		}
	})
}

// TestMaxTreeNodes: a tree naming more nodes than MaxTreeNodes is refused
// (400) as soon as a directory that passes the bound is stored, its further
// nodes are not stored, and the tag never becomes visible. A tree at the
// bound is fine.
func TestMaxTreeNodes(t *testing.T) {
	r := memRegistry(t)
	r.MaxTreeNodes = 21
	ref := setupRepo(t, r)
	upload(t, r, ref, flatTree(t, 20), sortedOrder(flatTree(t, 20))) // 21 nodes

	big := TagRef{ref.User, ref.Repo, "2.0.0"}
	nodes := sortedOrder(nestedTree(t, 2, 9)) // 1 + 2 + (9+1) + 9 + 5 = 27 nodes
	m, b := tagBody(t, nodes)
	if _, err := r.CreateTag(ctx, big, m, b); err != nil {
		t.Fatal(err)
	}
	var inv *InvalidError
	refused := 0
	for _, n := range nodes {
		_, err := r.CreateNode(ctx, big, n.Path, n.Entry.Meta, bytes.NewReader(n.Content))
		if err == nil {
			if refused > 0 {
				t.Fatalf("%s accepted after the tree was refused", n.Path)
			}
			continue
		}
		if !errors.As(err, &inv) || !strings.Contains(err.Error(), "The tree of tag 2.0.0 has more than 21 nodes") {
			t.Fatalf("%s: %v", n.Path, err)
		}
		if refused++; refused > 1 {
			if _, err := r.b.Stat(ctx, nodeKey(big.key(), n.Path)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s stored after the tree was refused: %v", n.Path, err)
			}
		}
	}
	if refused == 0 || r.visible(ctx, big) == nil {
		t.Fatalf("oversized tree: %d PUTs refused, visible = %v", refused, r.visible(ctx, big) == nil)
	}
	// Resuming the tag says so too.
	if _, err := r.CreateTag(ctx, big, m, b); !errors.As(err, &inv) {
		t.Fatalf("resume: %v", err)
	}
}

// TestMaxTreeNodesBeyondWalk: the bound applies to what is stored, not to
// what the completeness walk has reached. The root names a and b; a is
// never uploaded, so the walk never gets past it, while b and the
// directories below it are. Once they would take the tree past
// MaxTreeNodes they are refused (400) before being stored, and so are
// later nodes of the tag: what is stored stays within the bound.
func TestMaxTreeNodesBeyondWalk(t *testing.T) {
	r := memRegistry(t)
	const limit = 20
	r.MaxTreeNodes = limit
	ref := setupRepo(t, r)
	fsys := fstest.MapFS{"p/a/x": {Data: []byte("x")}}
	for d := range 10 {
		for f := range 5 {
			fsys[fmt.Sprintf("p/b/c%02d/f%d", d, f)] = &fstest.MapFile{Data: []byte(fmt.Sprint(d, f))}
		}
	}
	nodes := sortedOrder(buildTree(t, fsys)) // 1 + 2 + 1 + 10 + 50 nodes
	m, b := tagBody(t, nodes)
	if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
		t.Fatal(err)
	}
	var inv *InvalidError
	refused := 0
	for _, n := range nodes {
		if !n.Path.IsRoot() && n.Path[0] == "a" {
			continue // never uploaded: the walk stays at /a
		}
		_, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content))
		if err == nil {
			if refused > 0 {
				t.Fatalf("%s accepted after the tree was refused", n.Path)
			}
			continue
		}
		if !errors.As(err, &inv) || !strings.Contains(err.Error(), "The tree of tag 1.0.0 has more than 20 nodes") {
			t.Fatalf("%s: %v", n.Path, err)
		}
		refused++
	}
	stored := 0
	for _, n := range nodes {
		if _, err := r.b.Stat(ctx, nodeKey(ref.key(), n.Path)); err == nil {
			stored++
		} else if !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if refused == 0 || stored > limit || r.visible(ctx, ref) == nil {
		t.Fatalf("%d PUTs refused, %d of %d nodes stored (bound %d), visible = %v",
			refused, stored, len(nodes), limit, r.visible(ctx, ref) == nil)
	}
	t.Logf("%d PUTs refused, %d of %d nodes stored", refused, stored, len(nodes))
}

// TestMaxTreeNodesConcurrentDuplicates: a tree of exactly MaxTreeNodes
// nodes whose directories are each PUT several times at once (run with
// -race) is accepted: a PUT that loses the race to store a directory does
// not count its entries twice.
func TestMaxTreeNodesConcurrentDuplicates(t *testing.T) {
	for seed := range uint64(5) {
		r := memRegistry(t)
		ref := setupRepo(t, r)
		nodes := nestedTree(t, 4, 3)
		r.MaxTreeNodes = len(nodes)
		m, b := tagBody(t, nodes)
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		// Directories level by level, each PUT by three goroutines; then
		// the files, one goroutine each.
		levels := map[int][]types.Node{}
		var files []types.Node
		depth := 0
		for _, n := range randomOrder(nodes, seed) {
			if n.Entry.Type == types.DirectoryType {
				levels[len(n.Path)] = append(levels[len(n.Path)], n, n, n)
				depth = max(depth, len(n.Path))
			} else {
				files = append(files, n)
			}
		}
		put := func(batch []types.Node) {
			var wg sync.WaitGroup
			for _, n := range batch {
				wg.Go(func() {
					if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
						t.Errorf("%s: %v", n.Path, err)
					}
				})
			}
			wg.Wait()
		}
		for d := range depth + 1 {
			put(levels[d])
		}
		put(files)
		if t.Failed() {
			t.FailNow()
		}
		if err := r.visible(ctx, ref); err != nil {
			t.Fatalf("tree of %d nodes (the bound) not visible: %v", len(nodes), err)
		}
	}
}
