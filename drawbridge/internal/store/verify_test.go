package store

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// storeForeign stores tag ref and the nodes of its tree as another server
// would have (upstream Drawbridge, or an earlier version of this one): as
// objects without verification markers. For the paths in stored, the
// content (and, if given, meta) stored is that instead of the node's own,
// as upstream keeps the bytes of an upload that failed its digest check
// under the meta the request claimed.
func storeForeign(t *testing.T, r *Registry, ref TagRef, nodes []types.Node, stored map[string]foreignNode) {
	t.Helper()
	m, b := tagBody(t, nodes)
	if err := r.b.Create(ctx, ref.key(), m, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		meta, content := n.Entry.Meta, n.Content
		if f, ok := stored[n.Path.String()]; ok {
			content = f.content
			if f.meta != nil {
				meta = *f.meta
			}
		}
		if err := r.b.Create(ctx, nodeKey(ref.key(), n.Path), meta, bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
}

type foreignNode struct {
	content []byte
	meta    *types.Meta // nil: the node's entry
}

func flipLast(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)-1] ^= 1
	return b
}

func nodeAt(t *testing.T, nodes []types.Node, path string) types.Node {
	t.Helper()
	for _, n := range nodes {
		if n.Path.String() == path {
			return n
		}
	}
	t.Fatalf("no node %q", path)
	return types.Node{}
}

// readNode reads a node of a visible tag.
func readNode(t *testing.T, r *Registry, ref TagRef, path types.TreePath) (types.Meta, []byte) {
	t.Helper()
	o, err := r.Node(ctx, ref, path)
	if err != nil {
		t.Fatalf("GET /%s: %v", path, err)
	}
	defer o.Content.Close()
	b, err := io.ReadAll(o.Content)
	if err != nil {
		t.Fatal(err)
	}
	return o.Meta, b
}

// putAll re-publishes nodes in canonical order, as publishers do; it
// returns the existed flags.
func putAll(t *testing.T, r *Registry, ref TagRef, nodes []types.Node) map[string]bool {
	t.Helper()
	existed := map[string]bool{}
	for _, n := range sortedOrder(nodes) {
		ex, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content))
		if err != nil {
			t.Fatalf("PUT /%s: %v", n.Path, err)
		}
		existed[n.Path.String()] = ex
	}
	return existed
}

// TestRepublishRehashesForeignNodes: a hidden tag whose nodes another
// server stored, one of them poisoned (its content is not what its entry
// pins; its meta is). Resuming the publish must not make the tag visible
// by comparing metas: every node without a marker is hashed, the poisoned
// one is rejected, and the tag stays hidden until that node is uploaded
// again, which replaces it. Before node markers, the tag PUT alone made
// the tag visible and the poisoned bytes were served.
func TestRepublishRehashesForeignNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		data := nodeAt(t, nodes, "sub/data.bin")
		storeForeign(t, r, ref, nodes, map[string]foreignNode{"sub/data.bin": {content: flipLast(data.Content)}})
		r = NewRegistry(r.b) // a server started on that store

		m, b := tagBody(t, nodes)
		resumed, err := r.CreateTag(ctx, ref, m, b)
		if err != nil || !resumed {
			t.Fatalf("resume: %v %v", resumed, err)
		}
		if err := r.visible(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Fatalf("tag with a poisoned node visible after the tag PUT: %v", err)
		}
		if _, err := r.Node(ctx, ref, data.Path); !errors.Is(err, ErrNotFound) {
			t.Fatalf("poisoned node served: %v", err)
		}
		// The nodes before it (in the order publishers upload) are fine;
		// one after it, while it has not been uploaded again, is an error
		// naming it.
		for _, n := range sortedOrder(nodes) {
			if slices.Compare(n.Path, data.Path) >= 0 {
				break
			}
			if ex, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil || !ex {
				t.Fatalf("PUT /%s: existed=%v err=%v", n.Path, ex, err)
			}
		}
		x := nodeAt(t, nodes, "sub/deep/x.txt")
		_, err = r.CreateNode(ctx, ref, x.Path, x.Entry.Meta, bytes.NewReader(x.Content))
		var rej *RejectedError
		if !errors.As(err, &rej) || !rej.Node || rej.Path.String() != "sub/data.bin" || !strings.Contains(err.Error(), "upload it again") {
			t.Fatalf("PUT after the poisoned node: %v", err)
		}
		if err := r.visible(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Fatalf("tag visible with a rejected node: %v", err)
		}
		// A wrong body for the poisoned node does not replace it.
		if _, err := r.CreateNode(ctx, ref, data.Path, data.Entry.Meta, bytes.NewReader(flipLast(data.Content))); err == nil {
			t.Fatal("a wrong body replaced the node")
		}
		// Uploading it again replaces it (201), and completes the tag.
		ex, err := r.CreateNode(ctx, ref, data.Path, data.Entry.Meta, bytes.NewReader(data.Content))
		if err != nil || ex {
			t.Fatalf("re-upload of the poisoned node: existed=%v err=%v", ex, err)
		}
		if err := r.visible(ctx, ref); err != nil {
			t.Fatalf("tag not visible after the re-upload: %v", err)
		}
		for _, n := range nodes {
			meta, got := readNode(t, r, ref, n.Path)
			if !bytes.Equal(got, n.Content) || !meta.Equal(n.Entry.Meta) {
				t.Fatalf("/%s: served content or meta differs", n.Path)
			}
		}
		// Every node now has a marker covering its entry.
		for _, n := range nodes {
			mk, err := r.b.Stat(ctx, nodeMarkerKey(nodeKey(ref.key(), n.Path)))
			if err != nil || !markerCovers(mk, n.Entry) {
				t.Fatalf("/%s: marker %v %v", n.Path, mk, err)
			}
		}
	})
}

// TestRepublishReplacesPoisonedDirectory: upstream kept a directory whose
// bytes are a valid directory naming other content (of the same length),
// and that content. A full re-publish replaces both and serves the real
// tree; before node markers the poisoned tree was served.
func TestRepublishReplacesPoisonedDirectory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		evil := testTree(t, "")
		for i := range evil {
			if evil[i].Path.String() == "sub/data.bin" {
				evil[i].Content = bytes.Repeat([]byte{6}, 100000)
			}
		}
		evil = rebuild(t, evil)
		sub, evilSub := nodeAt(t, nodes, "sub"), nodeAt(t, evil, "sub")
		evilData := nodeAt(t, evil, "sub/data.bin")
		if sub.Entry.Length != evilSub.Entry.Length || sub.Entry.Digest.Equal(evilSub.Entry.Digest) {
			t.Fatal("test setup: the poisoned directory must differ and have the same length")
		}
		storeForeign(t, r, ref, nodes, map[string]foreignNode{
			"sub":          {content: evilSub.Content},
			"sub/data.bin": {content: evilData.Content, meta: &evilData.Entry.Meta},
		})
		r = NewRegistry(r.b)
		m, b := tagBody(t, nodes)
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		if err := r.visible(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Fatalf("tag with a poisoned directory visible: %v", err)
		}
		existed := putAll(t, r, ref, nodes)
		if existed["sub"] || existed["sub/data.bin"] || !existed[""] || !existed["sub/deep/x.txt"] {
			t.Fatalf("existed: %v (the two poisoned nodes are replaced, the others were stored)", existed)
		}
		for _, n := range nodes {
			meta, got := readNode(t, r, ref, n.Path)
			if !bytes.Equal(got, n.Content) || !meta.Equal(n.Entry.Meta) {
				t.Fatalf("/%s: served content or meta differs", n.Path)
			}
		}
	})
}

// rebuild recomputes the directory nodes of a tree whose file contents
// changed.
func rebuild(t *testing.T, nodes []types.Node) []types.Node {
	fsys := fstest.MapFS{}
	for _, n := range nodes {
		if n.Entry.Type != types.DirectoryType {
			fsys["p/"+n.Path.String()] = &fstest.MapFile{Data: n.Content}
		}
	}
	return buildTree(t, fsys)
}

// TestForeignTagBodyRefused: a stored tag whose body does not match its
// own stored digests (upstream keeps a failed tag upload) is never
// resumed, even by a PUT of the same bytes; before, the resume made it
// visible and it was served under digests it does not have.
func TestForeignTagBodyRefused(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		real, body := tagBody(t, nodes)
		lie := real
		lie.Digest = types.Digests{types.SHA256: make([]byte, 32)}
		if err := r.b.Create(ctx, ref.key(), lie, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if err := r.b.Create(ctx, nodeKey(ref.key(), n.Path), n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
				t.Fatal(err)
			}
		}
		r = NewRegistry(r.b)
		_, err := r.CreateTag(ctx, ref, real, body)
		var rej *RejectedError
		if !errors.As(err, &rej) || rej.Node {
			t.Fatalf("resume of a tag that does not match its digests: %v", err)
		}
		if _, err := r.CreateNode(ctx, ref, nil, nodes[0].Entry.Meta, bytes.NewReader(nodes[0].Content)); !errors.As(err, &rej) {
			t.Fatalf("PUT root under it: %v", err)
		}
		if err := r.visible(ctx, ref); !errors.Is(err, ErrNotFound) {
			t.Fatalf("visible: %v", err)
		}
		if n, _ := r.VerifyExisting(ctx, nil); n != 0 {
			t.Fatalf("VerifyExisting adopted it")
		}
	})
}

// TestCrashBeforeMarker: a node stored by this registry whose marker was
// not written (a crash in between, or a store written by an earlier
// version) is hashed once when the publish is resumed, gets its marker,
// and the tag completes; nothing is uploaded twice.
func TestCrashBeforeMarker(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		m, b := tagBody(t, nodes)
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		// Root and main.wasm stored as by an earlier version: no markers.
		for _, n := range sortedOrder(nodes)[:3] {
			if err := r.b.Create(ctx, nodeKey(ref.key(), n.Path), n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
				t.Fatal(err)
			}
		}
		r = NewRegistry(r.b) // restart
		for _, n := range sortedOrder(nodes)[3:] {
			if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
				t.Fatalf("/%s: %v", n.Path, err)
			}
		}
		if err := r.visible(ctx, ref); err != nil {
			t.Fatalf("not visible: %v", err)
		}
		for _, n := range nodes {
			if mk, err := r.b.Stat(ctx, nodeMarkerKey(nodeKey(ref.key(), n.Path))); err != nil || !markerCovers(mk, n.Entry) {
				t.Fatalf("/%s: marker %v %v", n.Path, mk, err)
			}
		}
	})
}

// TestConcurrentRepublish: two publishers re-publish a tag with a poisoned
// node at once (run with -race); both succeed, and the real content is
// served.
func TestConcurrentRepublish(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		data := nodeAt(t, nodes, "sub/data.bin")
		wasm := nodeAt(t, nodes, "main.wasm")
		storeForeign(t, r, ref, nodes, map[string]foreignNode{
			"sub/data.bin": {content: flipLast(data.Content)},
			"main.wasm":    {content: wasm.Content[:3]}, // a cut upload
		})
		r = NewRegistry(r.b)
		m, b := tagBody(t, nodes)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
					t.Errorf("tag: %v", err)
					return
				}
				for _, n := range sortedOrder(nodes) {
					if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
						t.Errorf("/%s: %v", n.Path, err)
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for _, n := range nodes {
			if _, got := readNode(t, r, ref, n.Path); !bytes.Equal(got, n.Content) {
				t.Fatalf("/%s: served content differs", n.Path)
			}
		}
	})
}

// TestMarkersNotAddressable: a tree may name its entries "verified" and
// "entries"; such nodes are ordinary nodes, and no tree path's key is a
// marker's key, so no upload can create or replace a marker.
func TestMarkersNotAddressable(t *testing.T) {
	names := []types.TreeName{"verified", "entries", "tree", "a"}
	var paths []types.TreePath
	var gen func(p types.TreePath)
	gen = func(p types.TreePath) {
		paths = append(paths, p)
		if len(p) == 3 {
			return
		}
		for _, n := range names {
			gen(p.Child(n))
		}
	}
	gen(types.TreePath{})
	tag := tagKey("alice", "pkg", "1.0.0")
	keys := map[string]bool{}
	for _, p := range paths {
		keys[nodeKey(tag, p)] = true
	}
	for _, p := range paths {
		if mk := nodeMarkerKey(nodeKey(tag, p)); keys[mk] || mk == verifiedKey(tag) {
			t.Fatalf("marker of /%s is addressable: %s", p, mk)
		}
	}
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := buildTree(t, fstest.MapFS{
			"p/verified":          {Data: []byte("a file named verified")},
			"p/entries/verified":  {Data: []byte("nested")},
			"p/entries/entries/x": {Data: []byte("x")},
		})
		publish(t, r, ref, nodes)
		for _, n := range nodes {
			if _, got := readNode(t, r, ref, n.Path); !bytes.Equal(got, n.Content) {
				t.Fatalf("/%s: served content differs", n.Path)
			}
		}
	})
}

// TestFSReplaceKeepsChildren: FS.Replace swaps an object's files and
// leaves what is below it; it leaves nothing staged, and a failing body
// changes nothing.
func TestFSReplaceKeepsChildren(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m1, b1 := record("old", "text/plain")
	m2, b2 := record("new!", "text/plain")
	if err := s.Create(ctx, "users/a", m1, bytes.NewReader(b1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "users/a/repos/r", m1, bytes.NewReader(b1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Replace(ctx, "users/a", m2, io.MultiReader(bytes.NewReader(b2[:2]), errReader{})); err == nil {
		t.Fatal("failing body accepted")
	}
	if o, err := s.Open(ctx, "users/a"); err != nil || !o.Meta.Equal(m1) {
		t.Fatalf("after a failed replace: %v %v", o.Meta, err)
	} else {
		o.Content.Close()
	}
	if err := s.Replace(ctx, "users/a", m2, bytes.NewReader(b2)); err != nil {
		t.Fatal(err)
	}
	o, err := s.Open(ctx, "users/a")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(o.Content)
	o.Content.Close()
	if !o.Meta.Equal(m2) || string(got) != "new!" {
		t.Fatalf("replaced: %v %q", o.Meta, got)
	}
	if _, err := s.Stat(ctx, "users/a/repos/r"); err != nil {
		t.Fatalf("child lost: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, fsStaging)); len(ents) != 0 {
		t.Fatalf("staging residue: %v", ents)
	}
	if err := s.Replace(ctx, "users/b", m2, bytes.NewReader(b2)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replace of a missing object: %v", err)
	}
}

// TestRepublishOverCorruptMeta: upstream writes a node's meta.json in
// place, so a crash can leave it half-written. Such a node is not
// verified, and a new upload of it replaces it; before, every check of the
// tag failed on it, for good.
func TestRepublishOverCorruptMeta(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := NewRegistry(s)
	ref := setupRepo(t, r)
	nodes := testTree(t, "")
	storeForeign(t, r, ref, nodes, nil)
	wasm := nodeAt(t, nodes, "main.wasm")
	if err := os.WriteFile(filepath.Join(dir, nodeKey(ref.key(), wasm.Path), fsMeta), []byte(`{"digest":{"sha-2`), 0o600); err != nil {
		t.Fatal(err)
	}
	r = NewRegistry(s)
	m, b := tagBody(t, nodes)
	if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
		t.Fatal(err)
	}
	existed := putAll(t, r, ref, nodes)
	if existed["main.wasm"] || !existed["Enarx.toml"] {
		t.Fatalf("existed %v", existed)
	}
	if meta, got := readNode(t, r, ref, wasm.Path); !bytes.Equal(got, wasm.Content) || !meta.Equal(wasm.Entry.Meta) {
		t.Fatal("main.wasm differs")
	}
}

// TestLegacyVisibleTagServed: a tag made visible by an earlier version of
// this registry has no node markers; its nodes are served (found by name
// from the root), and a node stored beside them that no directory names is
// not.
func TestLegacyVisibleTagServed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		storeForeign(t, r, ref, nodes, nil)
		stray := append(slices.Clone(nodes[0].Path), "stray")
		if err := r.b.Create(ctx, nodeKey(ref.key(), stray), nodes[len(nodes)-1].Entry.Meta, bytes.NewReader(nodes[len(nodes)-1].Content)); err != nil {
			t.Fatal(err)
		}
		root := nodes[0].Entry
		if err := r.b.Create(ctx, verifiedKey(ref.key()), types.Meta{Digest: root.Digest, Type: verifiedMarkerType}, bytes.NewReader(nil)); err != nil {
			t.Fatal(err)
		}
		r = NewRegistry(r.b) // restart
		for _, n := range nodes {
			o, err := r.Node(ctx, ref, n.Path)
			if err != nil {
				t.Fatalf("/%s: %v", n.Path, err)
			}
			o.Content.Close()
			if m, err := r.StatNode(ctx, ref, n.Path); err != nil || !m.Equal(n.Entry.Meta) {
				t.Fatalf("stat /%s: %v %v", n.Path, m, err)
			}
		}
		if _, err := r.Node(ctx, ref, stray); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stray node: %v, want ErrNotFound", err)
		}
	})
}
