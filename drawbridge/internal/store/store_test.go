package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"testing/iotest"

	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// backends returns a fresh instance of every Backend implementation.
func backends(t *testing.T) map[string]func(t *testing.T) Backend {
	return map[string]func(t *testing.T) Backend{
		"fs": func(t *testing.T) Backend {
			s, err := OpenFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"memblob": func(t *testing.T) Backend {
			s := NewBlob(memblob.OpenBucket(nil))
			t.Cleanup(func() { s.Close() })
			return s
		},
		"fileblob": func(t *testing.T) Backend {
			b, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{Metadata: fileblob.MetadataInSidecar})
			if err != nil {
				t.Fatal(err)
			}
			s := NewBlob(b)
			t.Cleanup(func() { s.Close() })
			return s
		},
		"s3": s3Backend, // s3_test.go: s3blob against gofakes3
	}
}

func forEachBackend(t *testing.T, f func(t *testing.T, r *Registry)) {
	for name, mk := range backends(t) {
		t.Run(name, func(t *testing.T) { f(t, NewRegistry(mk(t))) })
	}
}

var ctx = context.Background()

func record(body string, typ string) (types.Meta, []byte) {
	d, n := types.Compute([]byte(body))
	return types.Meta{Digest: d, Length: n, Type: typ}, []byte(body)
}

func setupRepo(t *testing.T, r *Registry) TagRef {
	t.Helper()
	m, b := record(`{"subject":"test|subject"}`, "application/json")
	if err := r.CreateUser(ctx, "alice", m, b); err != nil {
		t.Fatal(err)
	}
	m, b = record(`{"public":true}`, "application/json")
	if err := r.CreateRepo(ctx, "alice", "pkg", m, b); err != nil {
		t.Fatal(err)
	}
	return TagRef{"alice", "pkg", "1.0.0"}
}

func testTree(t *testing.T, extra string) []types.Node {
	t.Helper()
	fsys := fstest.MapFS{
		"p/main.wasm":      {Data: []byte("\x00asm\x01\x00\x00\x00" + extra)},
		"p/Enarx.toml":     {Data: []byte("args = []\n")},
		"p/sub/data.bin":   {Data: bytes.Repeat([]byte{7}, 100000)},
		"p/sub/deep/x.txt": {Data: []byte("x")},
	}
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

func tagBody(t *testing.T, nodes []types.Node) (types.Meta, []byte) {
	b, err := nodes[0].Entry.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return record(string(b), types.EntryType)
}

func publish(t *testing.T, r *Registry, ref TagRef, nodes []types.Node) {
	t.Helper()
	m, b := tagBody(t, nodes)
	if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
			t.Fatalf("%s: %v", n.Path, err)
		}
	}
}

func TestPublishAndVisibility(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		m, b := tagBody(t, nodes)
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			tags, err := r.Tags(ctx, ref.User, ref.Repo)
			if err != nil || len(tags) != 0 {
				t.Fatalf("before node %d: tags %v %v", i, tags, err)
			}
			if _, err := r.Tag(ctx, ref); !errors.Is(err, ErrNotFound) {
				t.Fatalf("incomplete tag readable: %v", err)
			}
			if _, err := r.Node(ctx, ref, types.TreePath{}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("incomplete tree readable: %v", err)
			}
			if _, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content)); err != nil {
				t.Fatal(err)
			}
		}
		tags, err := r.Tags(ctx, ref.User, ref.Repo)
		if err != nil || len(tags) != 1 || tags[0] != "1.0.0" {
			t.Fatalf("tags %v %v", tags, err)
		}
		for _, n := range nodes {
			o, err := r.Node(ctx, ref, n.Path)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(o.Content)
			o.Content.Close()
			if !bytes.Equal(got, n.Content) || !o.Meta.Equal(n.Entry.Meta) {
				t.Fatalf("%s: content or meta differs", n.Path)
			}
		}
		// Re-publishing a complete tag is refused, even identically.
		if _, err := r.CreateTag(ctx, ref, m, b); !errors.Is(err, ErrExists) {
			t.Fatalf("re-publish: %v", err)
		}
		// Tags sort by semantic version.
		for _, v := range []types.TagName{"1.10.0", "1.2.0", "1.0.0-rc.1"} {
			publish(t, r, TagRef{ref.User, ref.Repo, v}, testTree(t, string(v)))
		}
		tags, _ = r.Tags(ctx, ref.User, ref.Repo)
		if fmt.Sprint(tags) != "[1.0.0-rc.1 1.0.0 1.2.0 1.10.0]" {
			t.Fatalf("order %v", tags)
		}
	})
}

func TestRejectsAndLeavesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		m, b := tagBody(t, nodes)
		var inv *InvalidError
		// Tag with a wrong digest / type / no digest.
		bad := m
		bad.Digest = types.Digests{types.SHA256: make([]byte, 32)}
		if _, err := r.CreateTag(ctx, ref, bad, b); !errors.As(err, &inv) {
			t.Fatalf("bad tag digest: %v", err)
		}
		bad = m
		bad.Type = "application/json"
		if _, err := r.CreateTag(ctx, ref, bad, b); !errors.As(err, &inv) {
			t.Fatalf("bad tag type: %v", err)
		}
		if _, err := r.CreateTag(ctx, TagRef{"alice", "nope", "1.0.0"}, m, b); !errors.Is(err, ErrNotFound) {
			t.Fatalf("tag in missing repo: %v", err)
		}
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		// Child before parent.
		if _, err := r.CreateNode(ctx, ref, nodes[1].Path, nodes[1].Entry.Meta, bytes.NewReader(nodes[1].Content)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("orphan: %v", err)
		}
		root := nodes[0]
		if _, err := r.CreateNode(ctx, ref, root.Path, root.Entry.Meta, bytes.NewReader(root.Content)); err != nil {
			t.Fatal(err)
		}
		file := nodes[1] // Enarx.toml
		// Tampered body with honest headers: digest mismatch, nothing kept.
		tampered := bytes.Clone(file.Content)
		tampered[0] ^= 1
		if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, bytes.NewReader(tampered)); !errors.As(err, &inv) || !strings.Contains(err.Error(), "digest mismatch") {
			t.Fatalf("tampered: %v", err)
		}
		// Short and long bodies.
		if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, bytes.NewReader(file.Content[1:])); !errors.As(err, &inv) {
			t.Fatalf("short: %v", err)
		}
		if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, bytes.NewReader(append(bytes.Clone(file.Content), 'x'))); !errors.As(err, &inv) {
			t.Fatalf("long: %v", err)
		}
		// A body that fails mid-stream (client went away).
		failing := io.MultiReader(bytes.NewReader(file.Content[:3]), errReader{})
		if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, failing); err == nil {
			t.Fatal("failing body accepted")
		}
		// Headers disagreeing with the parent entry.
		lie := file.Entry.Meta
		lie.Type = "text/plain"
		if _, err := r.CreateNode(ctx, ref, file.Path, lie, bytes.NewReader(file.Content)); !errors.As(err, &inv) {
			t.Fatalf("type lie: %v", err)
		}
		lie = file.Entry.Meta
		lie.Length++
		if _, err := r.CreateNode(ctx, ref, file.Path, lie, bytes.NewReader(file.Content)); !errors.As(err, &inv) {
			t.Fatalf("length lie: %v", err)
		}
		other, _ := types.Compute([]byte("other"))
		lie = file.Entry.Meta
		lie.Digest = types.Digests{types.SHA512: other[types.SHA512]}
		if _, err := r.CreateNode(ctx, ref, file.Path, lie, bytes.NewReader(file.Content)); !errors.As(err, &inv) {
			t.Fatalf("digest lie: %v", err)
		}
		// A path the parent does not name.
		if _, err := r.CreateNode(ctx, ref, types.TreePath{"extra"}, file.Entry.Meta, bytes.NewReader(file.Content)); !errors.As(err, &inv) {
			t.Fatalf("unnamed: %v", err)
		}
		// None of that left anything: the node is absent and a retry works.
		if _, err := r.b.Stat(ctx, nodeKey(ref.key(), file.Path)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("residue: %v", err)
		}
		if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, bytes.NewReader(file.Content)); err != nil {
			t.Fatalf("retry: %v", err)
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestResumeInterruptedPublish(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		m, b := tagBody(t, nodes)
		r.CreateTag(ctx, ref, m, b)
		for _, n := range nodes[:2] {
			r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content))
		}
		// Different content for the same incomplete tag is refused.
		m2, b2 := tagBody(t, testTree(t, "v2"))
		if _, err := r.CreateTag(ctx, ref, m2, b2); !errors.Is(err, ErrExists) {
			t.Fatalf("different content: %v", err)
		}
		// An existing node with a wrong body is a wrong request.
		bad := bytes.Clone(nodes[1].Content)
		bad[0] ^= 1
		var inv *InvalidError
		if _, err := r.CreateNode(ctx, ref, nodes[1].Path, nodes[1].Entry.Meta, bytes.NewReader(bad)); !errors.As(err, &inv) {
			t.Fatalf("existing node, wrong body: %v", err)
		}
		// The same content resumes.
		resumed, err := r.CreateTag(ctx, ref, m, b)
		if err != nil || !resumed {
			t.Fatalf("resume: %v %v", resumed, err)
		}
		for i, n := range nodes {
			existed, err := r.CreateNode(ctx, ref, n.Path, n.Entry.Meta, bytes.NewReader(n.Content))
			if err != nil || existed != (i < 2) {
				t.Fatalf("%s: existed=%v err=%v", n.Path, existed, err)
			}
		}
		if tags, _ := r.Tags(ctx, ref.User, ref.Repo); len(tags) != 1 {
			t.Fatalf("tags %v", tags)
		}
	})
}

func TestConcurrentPublishOneWins(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		trees := make([][]types.Node, n)
		for i := range n {
			trees[i] = testTree(t, fmt.Sprint(i))
		}
		for i := range n {
			wg.Go(func() {
				m, b := tagBody(t, trees[i])
				_, errs[i] = r.CreateTag(ctx, ref, m, b)
			})
		}
		wg.Wait()
		winner := oneWinner(t, errs)
		// Everyone uploads their tree concurrently; only the winner's fits.
		for i := range n {
			wg.Go(func() {
				for _, nd := range trees[i] {
					_, err := r.CreateNode(ctx, ref, nd.Path, nd.Entry.Meta, bytes.NewReader(nd.Content))
					if i == winner && err != nil {
						t.Errorf("winner node %s: %v", nd.Path, err)
					}
				}
			})
		}
		wg.Wait()
		o, err := r.Node(ctx, ref, types.TreePath{"main.wasm"})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(o.Content)
		o.Content.Close()
		if !bytes.Equal(got, trees[winner][2].Content) || trees[winner][2].Path.String() != "main.wasm" {
			t.Fatalf("stored main.wasm is not the winner's: %q", got)
		}
	})
}

func TestFSCrashResidueAndLock(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFS(dir); err == nil {
		t.Fatal("second process could open the store")
	}
	// Simulate a crash mid-upload: a staged object that never got renamed.
	os.MkdirAll(filepath.Join(dir, fsStaging, "deadbeef"), 0o700)
	os.WriteFile(filepath.Join(dir, fsStaging, "deadbeef", fsContent), []byte("partial"), 0o600)
	s.Close()
	s, err = OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ents, _ := os.ReadDir(filepath.Join(dir, fsStaging)); len(ents) != 0 {
		t.Fatalf("staging residue survived reopen: %v", ents)
	}
	// Upstream layout: users/<u>/{meta.json,content}.
	r := NewRegistry(s)
	setupRepo(t, r)
	mj, err := os.ReadFile(filepath.Join(dir, "users", "alice", fsMeta))
	if err != nil || !strings.HasPrefix(string(mj), `{"digest":{"sha-224":`) {
		t.Fatalf("meta.json %s %v", mj, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "users", "alice", "repos", "pkg", fsContent)); err != nil {
		t.Fatal(err)
	}
}

// TestBlobAbortsFailedWrite checks the blob Backend directly: an upload
// whose body fails is not visible, and IfNotExist gives ErrExists.
func TestBlobAbortsFailedWrite(t *testing.T) {
	b := memblob.OpenBucket(nil)
	s := NewBlob(b)
	defer s.Close()
	m, _ := record("hello", "text/plain")
	err := s.Create(ctx, "k", m, io.MultiReader(strings.NewReader("hel"), errReader{}))
	if err == nil {
		t.Fatal("failed body accepted")
	}
	if ok, _ := b.Exists(ctx, "k/content"); ok {
		t.Fatal("aborted write is visible")
	}
	if err := s.Create(ctx, "k", m, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "k", m, strings.NewReader("hello")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	var _ *blob.Bucket = b
}

// TestFileDigestPolicy: by default a file node is verified against
// sha-256; VerifyAllDigests checks every algorithm of the entry.
func TestFileDigestPolicy(t *testing.T) {
	for _, all := range []bool{false, true} {
		s, err := OpenFS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r := NewRegistry(s)
		r.VerifyAllDigests = all
		ref := setupRepo(t, r)
		content := []byte("payload")
		e, _ := types.FileEntry(bytes.NewReader(content), "text/plain")
		e.Digest[types.SHA512] = make([]byte, 64) // a false claim
		dir := types.Directory{"f": e}
		body, root, _ := types.DirectoryNode(dir)
		m, b := func() (types.Meta, []byte) { j, _ := root.MarshalJSON(); return record(string(j), types.EntryType) }()
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CreateNode(ctx, ref, nil, root.Meta, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		_, err = r.CreateNode(ctx, ref, types.TreePath{"f"}, e.Meta, bytes.NewReader(content))
		var inv *InvalidError
		if all && !errors.As(err, &inv) {
			t.Fatalf("VerifyAllDigests accepted a false sha-512: %v", err)
		}
		if !all && err != nil {
			t.Fatalf("default policy: %v", err)
		}
		// A wrong sha-256 is caught either way.
		e2, _ := types.FileEntry(bytes.NewReader(content), "text/plain")
		if _, err := types.NewVerifyingReader(bytes.NewReader([]byte("other!!")), r.fileDigests(e2.Digest), 7); err != nil {
			t.Fatal(err)
		}
		vr, _ := types.NewVerifyingReader(bytes.NewReader([]byte("other!!")), r.fileDigests(e2.Digest), 7)
		if _, err := io.ReadAll(vr); !errors.Is(err, types.ErrDigestMismatch) {
			t.Fatalf("sha-256 mismatch not caught: %v", err)
		}
		s.Close()
	}
}

func TestDirCacheBounded(t *testing.T) {
	c := newDirCache(100)
	for i := range 50 {
		c.put(fmt.Sprint(i), cachedDir{}, 10)
	}
	if c.size > 100 || len(c.m) != 10 {
		t.Fatalf("size %d, %d entries", c.size, len(c.m))
	}
	if _, ok := c.get("49"); !ok {
		t.Fatal("most recent entry evicted")
	}
	if _, ok := c.get("0"); ok {
		t.Fatal("oldest entry kept")
	}
	c.put("huge", cachedDir{}, 60)
	if _, ok := c.get("huge"); ok {
		t.Fatal("oversized entry cached")
	}
}

// TestWideDirectory publishes a directory with many children: each child
// upload consults the (cached) parent.
func TestWideDirectory(t *testing.T) {
	s, err := OpenFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := NewRegistry(s)
	ref := setupRepo(t, r)
	fsys := fstest.MapFS{}
	for i := range 300 {
		fsys[fmt.Sprintf("p/f%04d", i)] = &fstest.MapFile{Data: []byte(fmt.Sprint(i))}
	}
	nodes, err := types.BuildTree(fsys, "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range nodes {
		if nodes[i].File != "" {
			nodes[i].Content = fsys[nodes[i].File].Data
		}
	}
	publish(t, r, ref, nodes)
	if tags, _ := r.Tags(ctx, ref.User, ref.Repo); len(tags) != 1 {
		t.Fatalf("tags %v", tags)
	}
}

// TestVerifyExisting: tags stored without a verified marker (an upstream
// store) become visible only if every byte of their tree checks out.
func TestVerifyExisting(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := NewRegistry(s)
	ref := setupRepo(t, r)
	good, bad := ref, TagRef{ref.User, ref.Repo, "2.0.0"}
	publish(t, r, good, testTree(t, "good"))
	publish(t, r, bad, testTree(t, "bad"))
	// Simulate an upstream store: no markers (of tags or nodes); and a
	// poisoned node.
	removeMarkers(t, filepath.Join(dir, "users"))
	poisoned := filepath.Join(dir, nodeKey(bad.key(), types.TreePath{"sub", "data.bin"}), fsContent)
	b, _ := os.ReadFile(poisoned)
	b[len(b)-1] ^= 1
	os.WriteFile(poisoned, b, 0o600)
	r = NewRegistry(s) // fresh directory cache
	if tags, _ := r.Tags(ctx, ref.User, ref.Repo); len(tags) != 0 {
		t.Fatalf("unverified tags listed: %v", tags)
	}
	results := map[types.TagName]error{}
	n, err := r.VerifyExisting(ctx, func(t TagRef, err error) { results[t.Tag] = err })
	if err != nil || n != 1 {
		t.Fatalf("VerifyExisting = %d, %v (%v)", n, err, results)
	}
	if results[good.Tag] != nil || results[bad.Tag] == nil || !strings.Contains(results[bad.Tag].Error(), "sub/data.bin") {
		t.Fatalf("results %v", results)
	}
	if tags, _ := r.Tags(ctx, ref.User, ref.Repo); len(tags) != 1 || tags[0] != good.Tag {
		t.Fatalf("tags %v", tags)
	}
	// The nodes it hashed have markers, also those of the tag that stays
	// hidden (up to its poisoned node); the poisoned node has none.
	for _, n := range testTree(t, "good") {
		if mk, err := r.b.Stat(ctx, nodeMarkerKey(nodeKey(good.key(), n.Path))); err != nil || !markerCovers(mk, n.Entry) {
			t.Fatalf("good /%s: marker %v %v", n.Path, mk, err)
		}
	}
	for _, n := range testTree(t, "bad") {
		_, err := r.b.Stat(ctx, nodeMarkerKey(nodeKey(bad.key(), n.Path)))
		if before := slices.Compare(n.Path, types.TreePath{"sub", "data.bin"}) < 0; before != (err == nil) {
			t.Fatalf("bad /%s: marker: %v", n.Path, err)
		}
	}
}

// removeMarkers deletes every verification marker (of tags and nodes)
// below dir, an FS store's directory.
func removeMarkers(t *testing.T, dir string) {
	t.Helper()
	var markers []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "verified" && filepath.Base(filepath.Dir(p)) != "entries" {
			markers = append(markers, p)
			return filepath.SkipDir
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range markers {
		if err := os.RemoveAll(m); err != nil {
			t.Fatal(err)
		}
	}
}

// oneWinner checks that exactly one of concurrent Creates succeeded and the
// others failed with ErrExists, and returns the winner's index.
func oneWinner(t *testing.T, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("two winners: %d and %d", winner, i)
			}
			winner = i
		case !errors.Is(err, ErrExists):
			t.Fatalf("loser %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no winner")
	}
	return winner
}

// TestTruncatedBodyLeavesNothing: a body that ends with io.ErrUnexpectedEOF
// (what net/http's request body returns when the client closes the
// connection before its Content-Length) is a failed upload, not the end of
// the content: nothing may be stored, and certainly not the unverified
// prefix.
func TestTruncatedBodyLeavesNothing(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *Registry) {
		ref := setupRepo(t, r)
		nodes := testTree(t, "")
		m, b := tagBody(t, nodes)
		if _, err := r.CreateTag(ctx, ref, m, b); err != nil {
			t.Fatal(err)
		}
		root := nodes[0]
		if _, err := r.CreateNode(ctx, ref, root.Path, root.Entry.Meta, bytes.NewReader(root.Content)); err != nil {
			t.Fatal(err)
		}
		file := nodes[2] // main.wasm
		if file.Path.String() != "main.wasm" {
			t.Fatalf("node order: %v", file.Path)
		}
		cut := io.MultiReader(bytes.NewReader(file.Content[:4]), iotest.ErrReader(io.ErrUnexpectedEOF))
		if _, err := r.CreateNode(ctx, ref, file.Path, file.Entry.Meta, cut); err == nil {
			t.Fatal("a truncated body was accepted")
		}
		if _, err := r.b.Stat(ctx, nodeKey(ref.key(), file.Path)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a truncated body left a node: %v", err)
		}
		// The Backend alone keeps nothing either.
		key := "users/alice/repos/pkg/tags/9.9.9"
		cut = io.MultiReader(strings.NewReader("half"), iotest.ErrReader(io.ErrUnexpectedEOF))
		if err := r.b.Create(ctx, key, types.Meta{Digest: m.Digest, Length: 8, Type: types.EntryType}, cut); err == nil {
			t.Fatal("Backend.Create accepted a truncated body")
		}
		if _, err := r.b.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Backend.Create of a truncated body left an object: %v", err)
		}
	})
}
