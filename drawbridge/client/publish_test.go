package client

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

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
