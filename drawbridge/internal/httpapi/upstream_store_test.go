package httpapi

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// writeUpstreamObject writes one object of upstream Drawbridge's store
// layout (reference §4.1): a directory with meta.json and content.
func writeUpstreamObject(t *testing.T, dir string, meta types.Meta, content []byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mj, err := meta.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), mj, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "content"), content, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeUpstreamStore writes what upstream Drawbridge leaves in its store
// directory after user alice (testSubject) created the public repository
// pub and published tag into it: no verification markers. The nodes named
// in poisoned hold those bytes instead of their own, under their own meta:
// upstream writes an upload's meta.json and content in place and keeps
// them when the body fails its digest check.
func writeUpstreamStore(t *testing.T, dir, tag string, nodes []types.Node, poisoned map[string][]byte) {
	t.Helper()
	record := func(body string) (types.Meta, []byte) {
		d, n := types.Compute([]byte(body))
		return types.Meta{Digest: d, Length: n, Type: "application/json"}, []byte(body)
	}
	user := filepath.Join(dir, "users", "alice")
	m, b := record(`{"subject":"` + testSubject + `"}`)
	writeUpstreamObject(t, user, m, b)
	repo := filepath.Join(user, "repos", "pub")
	m, b = record(`{"public":true}`)
	writeUpstreamObject(t, repo, m, b)
	tagDir := filepath.Join(repo, "tags", tag)
	entry, _ := nodes[0].Entry.MarshalJSON()
	d, n := types.Compute(entry)
	writeUpstreamObject(t, tagDir, types.Meta{Digest: d, Length: n, Type: types.EntryType}, entry)
	for _, nd := range nodes {
		p := filepath.Join(tagDir, "tree")
		for _, name := range nd.Path {
			p = filepath.Join(p, "entries", string(name))
		}
		content := nd.Content
		if c, ok := poisoned[nd.Path.String()]; ok {
			content = c
		}
		writeUpstreamObject(t, p, nd.Entry.Meta, content)
		if nd.Entry.Type == types.DirectoryType {
			os.MkdirAll(filepath.Join(p, "entries"), 0o700)
		}
	}
}

// TestRepublishOverUpstreamStore: a store upstream Drawbridge wrote, served
// as is. Its tag stays hidden (not verified), and one node holds the bytes
// of a failed upload under the meta its entry pins. Re-publishing the tag
// must not make it visible on the strength of stored metas: the tag PUT
// answers 200 (a resume) and the tag stays hidden, the poisoned node is
// never served, a PUT of a node after it (in the order publishers upload)
// while it has not been uploaded again is refused (409, naming it), and
// uploading it again replaces it and completes the tag, which then serves
// the real bytes. Before node markers, the tag PUT made the tag visible
// and GET served the poisoned bytes.
func TestRepublishOverUpstreamStore(t *testing.T) {
	dir := t.TempDir()
	nodes := testPackage(t, "")
	slices.SortFunc(nodes, func(a, b types.Node) int { return slices.Compare(a.Path, b.Path) })
	const poisonedPath = "test-dir-1/sub/b.42"
	var poisoned types.Node
	for _, n := range nodes {
		if n.Path.String() == poisonedPath {
			poisoned = n
		}
	}
	bad := bytes.Clone(poisoned.Content)
	bad[0] ^= 1
	writeUpstreamStore(t, dir, "1.0.0", nodes, map[string][]byte{poisonedPath: bad})
	fs, err := store.OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, fs)
	const repo = "/alice/pub"
	const tag = repo + "/_tag/1.0.0"
	hidden := func(what string) {
		t.Helper()
		if r := e.req(e.anon, "GET", tag+"/tree/"+poisonedPath, "", nil, nil); r.code != 404 {
			t.Fatalf("%s: GET of the poisoned node: %d, serving the poisoned bytes: %v", what, r.code, bytes.Equal(r.body, bad))
		}
		if r := e.req(e.anon, "GET", repo+"/_tag", "", nil, nil); string(r.body) != "[]" {
			t.Fatalf("%s: tag list %d %s", what, r.code, r.body)
		}
		e.expect(e.req(e.anon, "GET", tag, "", nil, nil), 404, what+": GET tag")
	}
	hidden("upstream store")

	entry, _ := nodes[0].Entry.MarshalJSON()
	e.expect(e.putEntity(e.anon, tag, e.token, types.EntryType, entry), 200, "resume tag")
	hidden("after the tag PUT")
	var after []types.Node
	for _, n := range nodes {
		if slices.Compare(n.Path, poisoned.Path) < 0 {
			e.expect(e.putNode(e.anon, repo, "1.0.0", e.token, n), 200, "PUT /"+n.Path.String())
		} else if slices.Compare(n.Path, poisoned.Path) > 0 {
			after = append(after, n)
		}
	}
	hidden("before the poisoned node")
	if len(after) == 0 {
		t.Fatal("test setup: no node after the poisoned one")
	}
	r := e.req(e.anon, "PUT", tag+"/tree/"+after[0].Path.String(), e.token, after[0].Content, map[string]string{
		"Content-Type": after[0].Entry.Type, "Content-Digest": after[0].Entry.Digest.String(),
	})
	e.expect(r, 409, "PUT after the poisoned node")
	// The text docs/drawbridge.md documents.
	if want := `Stored node "/` + poisonedPath + `" of tag 1.0.0 does not match its entry (content digest mismatch): it was not written by this registry, or is damaged; upload it again to replace it`; string(r.body) != want {
		t.Fatalf("409 body %q, want %q", r.body, want)
	}
	hidden("after the refused PUT")

	e.expect(e.putNode(e.anon, repo, "1.0.0", e.token, poisoned), 201, "upload the poisoned node again")
	for _, n := range after {
		e.expect(e.putNode(e.anon, repo, "1.0.0", e.token, n), 200, "PUT /"+n.Path.String())
	}
	if r := e.req(e.anon, "GET", repo+"/_tag", "", nil, nil); string(r.body) != `["1.0.0"]` {
		t.Fatalf("tag list after the re-publish: %s", r.body)
	}
	for _, n := range nodes {
		r := e.req(e.anon, "GET", tag+"/tree/"+n.Path.String(), "", nil, nil)
		e.expect(r, 200, "GET /"+n.Path.String())
		if !bytes.Equal(r.body, n.Content) {
			t.Fatalf("GET /%s: served bytes differ from the published ones", n.Path)
		}
		checkEntityHeaders(t, "GET /"+n.Path.String(), r, n.Entry.Meta)
	}
	// Markers live beside the nodes, where no tree path leads.
	if _, err := os.Stat(filepath.Join(dir, "users/alice/repos/pub/tags/1.0.0/tree/entries/test-dir-1/entries/sub/entries/b.42/verified/meta.json")); err != nil {
		t.Fatalf("no marker for the replaced node: %v", err)
	}
}

// TestMarkerPathsAreNodes: tree paths that end in the marker's name are
// ordinary nodes (a node "verified"), never a node's marker.
func TestMarkerPathsAreNodes(t *testing.T) {
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	fsys := mapFS([]byte("\x00asm\x01\x00\x00\x00"))
	fsys["p/verified"] = fsys["p/main.wasm"]
	nodes, err := types.BuildTree(fsys, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if nodes[i].File != "" {
			nodes[i].Content = fsys[nodes[i].File].Data
		}
	}
	e.publish(e.anon, "/alice/pub", "1.0.0", e.token, nodes)
	r := e.req(e.anon, "GET", "/alice/pub/_tag/1.0.0/tree/verified", "", nil, nil)
	e.expect(r, 200, "GET node named verified")
	if !bytes.Equal(r.body, fsys["p/verified"].Data) {
		t.Fatalf("body %q", r.body)
	}
}

// TestUpstreamStrayNodeNotServed: upstream Drawbridge stores a node under
// any stored directory, whether the directory names it or not, and keeps
// the bytes of a failed upload under the claimed meta. Once such a store's
// tag is adopted (VerifyExisting), only the nodes of its tree are served:
// a stray node (here with bytes that do not match its meta) and nodes
// beneath it answer 404, as a missing node does, to GET and HEAD; the
// tree's own nodes are served. Before, GET served the stray's bytes with
// the digest of other bytes, from a visible tag.
func TestUpstreamStrayNodeNotServed(t *testing.T) {
	dir := t.TempDir()
	nodes := testPackage(t, "")
	writeUpstreamStore(t, dir, "1.0.0", nodes, nil)
	d, n := types.Compute([]byte("good"))
	tree := filepath.Join(dir, "users", "alice", "repos", "pub", "tags", "1.0.0", "tree")
	writeUpstreamObject(t, filepath.Join(tree, "entries", "stray.wasm"),
		types.Meta{Digest: d, Length: n, Type: types.WasmType}, []byte("evil"))
	sd, sn := types.Compute([]byte("{}"))
	writeUpstreamObject(t, filepath.Join(tree, "entries", "straydir"),
		types.Meta{Digest: sd, Length: sn, Type: types.DirectoryType}, []byte("{}"))
	writeUpstreamObject(t, filepath.Join(tree, "entries", "straydir", "entries", "x"),
		types.Meta{Digest: d, Length: n, Type: types.WasmType}, []byte("good"))
	writeUpstreamObject(t, filepath.Join(tree, "entries", "main.wasm", "entries", "x"),
		types.Meta{Digest: d, Length: n, Type: types.WasmType}, []byte("good"))
	fs, err := store.OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, fs)
	if made, err := e.reg.VerifyExisting(context.Background(), nil); err != nil || made != 1 {
		t.Fatalf("VerifyExisting: %d tags made visible, %v; want 1", made, err)
	}
	const tag = "/alice/pub/_tag/1.0.0"
	for _, p := range []string{"stray.wasm", "straydir", "straydir/x", "main.wasm/x"} {
		for _, m := range []string{"GET", "HEAD"} {
			if r := e.req(e.anon, m, tag+"/tree/"+p, "", nil, nil); r.code != 404 {
				t.Errorf("%s of node /%s, which the tree does not name: %d %q, want 404", m, p, r.code, r.body)
			}
		}
	}
	for _, nd := range nodes {
		r := e.req(e.anon, "GET", tag+"/tree/"+nd.Path.String(), "", nil, nil)
		e.expect(r, 200, "GET /"+nd.Path.String())
		if nd.Content != nil && !bytes.Equal(r.body, nd.Content) {
			t.Errorf("GET /%s: wrong bytes", nd.Path.String())
		}
		e.expect(e.req(e.anon, "HEAD", tag+"/tree/"+nd.Path.String(), "", nil, nil), 200, "HEAD /"+nd.Path.String())
	}
}
