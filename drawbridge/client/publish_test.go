package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// TestPublishResumes: a publish interrupted after the tag entry (the
// registry keeps such a tag invisible) is completed by publishing again.
func TestPublishResumes(t *testing.T) {
	c, repo := startRegistry(t)
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"main.wasm": "wasm", "Enarx.toml": "x = 1\n", "sub/data": "d"})
	tree, err := BuildTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := PackageSpec{RepoSpec: repo, Tag: "1.0.0"}
	// Upload the tag entry and the root only, as an interrupted publish would.
	body, _ := tree.Root().MarshalJSON()
	sum, n := types.Compute(body)
	if err := c.put(ctx, c.url(tagPath(spec)...), "", types.Meta{Digest: sum, Length: n, Type: types.EntryType}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if err := c.putNode(ctx, spec, tree.Nodes[0]); err != nil {
		t.Fatal(err)
	}
	if tags, _ := c.Tags(ctx, repo); len(tags) != 0 {
		t.Fatalf("incomplete tag listed: %v", tags)
	}
	if err := c.Publish(ctx, spec, tree); err != nil {
		t.Fatalf("resuming publish: %v", err)
	}
	if tags, _ := c.Tags(ctx, repo); len(tags) != 1 || tags[0] != "1.0.0" {
		t.Fatalf("tags %v", tags)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := c.FetchTree(ctx, spec, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "sub", "data")); string(b) != "d" {
		t.Fatalf("fetched %q", b)
	}
	// A different tree under the same (complete) tag is refused.
	writeFiles(t, dir, map[string]string{"main.wasm": "other"})
	other, _ := BuildTree(dir)
	if err := c.Publish(ctx, spec, other); !IsStatus(err, 409) {
		t.Fatalf("republish with other content: %v", err)
	}
}

// TestFetchBundleCache: a second fetch is served from the cache; a corrupt
// cache entry is detected, dropped and fetched again.
func TestFetchBundleCache(t *testing.T) {
	c, repo := startRegistry(t)
	ctx := context.Background()
	spec := PackageSpec{RepoSpec: repo, Tag: "2.0.0"}
	tree := publishFiles(t, c, spec, map[string]string{"main.wasm": "the module", "Enarx.toml": "args = []\n"})
	cache := &Cache{Dir: t.TempDir()}
	first, err := c.FetchBundle(ctx, spec, cache)
	if err != nil {
		t.Fatal(err)
	}
	if string(first.Config) != "args = []\n" {
		t.Fatalf("config %q", first.Config)
	}
	var wasmEntry types.Entry
	for _, n := range tree.Nodes {
		if n.Path.String() == "main.wasm" {
			wasmEntry = n.Entry
		}
	}
	cached, ok := cache.of(spec.Host).path(wasmEntry.Meta)
	if b, err := os.ReadFile(cached); !ok || err != nil || string(b) != "the module" {
		t.Fatalf("cache entry %s: %q %v", cached, b, err)
	}
	os.WriteFile(cached, []byte("the mödule"[:10]), 0o600) // same length, other bytes
	second, err := c.FetchBundle(ctx, spec, cache)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bundle, second.Bundle) {
		t.Fatal("corrupt cache entry changed the bundle")
	}
	if b, _ := os.ReadFile(cached); string(b) != "the module" {
		t.Fatalf("cache not repaired: %q", b)
	}
}

// TestLargeBodiesBatched publishes and fetches nodes large enough for the
// batched paths (the upload holds its connection, the server holds its
// response, the client reads in large chunks): the bytes arrive intact,
// and the connection goes on carrying small requests afterwards (a hold
// that was never released would leave them unsent and hang). A failed
// large upload releases its hold too.
//
// Over HTTP/2 (which drawbridge does not serve, but other registries may)
// the client must not hold the connection: a held batch could keep back
// the bytes the server waits for before it opens the flow-control window.
func TestLargeBodiesBatched(t *testing.T) {
	t.Run("http1", func(t *testing.T) { testLargeBodies(t, startRegistry) })
	t.Run("h2", func(t *testing.T) {
		testLargeBodies(t, func(t testing.TB, _ ...func(*httptest.Server)) (*Client, RepoSpec) {
			return startRegistry(t, func(s *httptest.Server) {
				s.EnableHTTP2 = true
				// Windows smaller than a batch: a held connection would
				// deadlock here.
				s.Config.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 64 << 10, MaxReceiveBufferPerConnection: 64 << 10}
			})
		})
	})
}

func testLargeBodies(t *testing.T, start func(testing.TB, ...func(*httptest.Server)) (*Client, RepoSpec)) {
	c, repo := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	big := make([]byte, 3<<20+5)
	rand.Read(big)
	os.WriteFile(filepath.Join(dir, "main.wasm"), big, 0o644)
	os.WriteFile(filepath.Join(dir, "Enarx.toml"), []byte("args = []\n"), 0o644)
	tree, err := BuildTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, tag := range []types.TagName{"1.0.0", "1.0.1"} {
		spec := PackageSpec{RepoSpec: repo, Tag: tag}
		if err := c.Publish(ctx, spec, tree); err != nil {
			t.Fatal(err)
		}
		var cache *Cache
		if i == 1 {
			cache = &Cache{Dir: t.TempDir()}
		}
		f, err := c.FetchBundle(ctx, spec, cache)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(f.Bundle, big) {
			t.Fatal("fetched main.wasm differs")
		}
		if tags, err := c.Tags(ctx, repo); err != nil || len(tags) != i+1 {
			t.Fatalf("small request after large ones: %v %v", tags, err)
		}
	}

	// A large body the registry refuses (it does not match its entry).
	spec := PackageSpec{RepoSpec: repo, Tag: "1.0.2"}
	bad := bytes.Clone(big)
	bad[len(bad)/2] ^= 1
	os.WriteFile(filepath.Join(dir, "main.wasm"), bad, 0o644)
	badTree, _ := BuildTree(dir)
	for i := range badTree.Nodes {
		if badTree.Nodes[i].Path.String() == "main.wasm" {
			badTree.Nodes[i].Entry = tree.Nodes[i].Entry // claims the old digests
		}
	}
	if err := c.Publish(ctx, spec, badTree); err == nil {
		t.Fatal("mismatching large body accepted")
	}
	if _, err := c.Tags(ctx, repo); err != nil {
		t.Fatalf("small request after a refused large upload: %v", err)
	}
}

// TestPublishRefusesSwappedFile: a file replaced by a symbolic link (or by
// another file) between BuildTree's hashing and the upload is refused
// before any of the other file's bytes leave the machine: the upload opens
// the path without following a link and checks it is the file hashed.
func TestPublishRefusesSwappedFile(t *testing.T) {
	c, repo := startRegistry(t)
	ctx := context.Background()
	secret := filepath.Join(t.TempDir(), "id_ed25519")
	os.WriteFile(secret, []byte("PRIVATE KEY"), 0o600)
	for i, swap := range []func(p string) error{
		func(p string) error { return os.Symlink(secret, p) },
		func(p string) error {
			// A new file, which may get the old one's inode number: its
			// modification time differs (set, so as not to depend on the
			// clock's granularity).
			if err := os.WriteFile(p, []byte("PRIVATE KEY"), 0o600); err != nil {
				return err
			}
			return os.Chtimes(p, time.Time{}, time.Now().Add(time.Hour))
		},
	} {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"main.wasm": "wasm", "data": "public data"})
		tree, err := BuildTree(dir)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "data")
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := swap(p); err != nil {
			t.Fatal(err)
		}
		spec := PackageSpec{RepoSpec: repo, Tag: types.TagName(fmt.Sprintf("1.0.%d", i))}
		err = c.Publish(ctx, spec, tree)
		if err == nil || !strings.Contains(err.Error(), p) || IsStatus(err, 400) {
			t.Fatalf("swap %d: publish: %v; want a local error naming %s", i, err, p)
		}
	}
}

// publishFiles publishes a package directory holding files (name →
// content) as spec and returns its tree.
func publishFiles(t *testing.T, c *Client, spec PackageSpec, files map[string]string) *Tree {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	tree, err := BuildTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(context.Background(), spec, tree); err != nil {
		t.Fatal(err)
	}
	return tree
}
