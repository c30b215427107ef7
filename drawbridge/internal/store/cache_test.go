package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// countingBackend counts the Backend calls the Registry makes.
type countingBackend struct {
	*FS
	stats, opens, contents int
}

func (c *countingBackend) Stat(ctx context.Context, key string) (types.Meta, error) {
	c.stats++
	return c.FS.Stat(ctx, key)
}

func (c *countingBackend) Open(ctx context.Context, key string) (Object, error) {
	c.opens++
	return c.FS.Open(ctx, key)
}

func (c *countingBackend) OpenContent(ctx context.Context, key string) (io.ReadCloser, error) {
	c.contents++
	return c.FS.OpenContent(ctx, key)
}

// TestMetaCache: after the first read of a node, a GET costs one content
// open; absent objects are never remembered as absent; small records come
// back as private copies.
func TestMetaCache(t *testing.T) {
	dir := t.TempDir()
	fs, err := OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBackend{FS: fs}
	r := NewRegistry(cb)
	defer r.Close()
	ref := setupRepo(t, r)
	body := []byte("\x00asm\x01\x00\x00\x00")
	e, err := types.FileEntry(bytes.NewReader(body), types.WasmType)
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := e.MarshalJSON()
	tm, _ := types.Compute(tag)
	if _, err := r.CreateTag(ctx, ref, types.Meta{Digest: tm, Length: int64(len(tag)), Type: types.EntryType}, tag); err != nil {
		t.Fatal(err)
	}
	// Not visible yet; the tree appears afterwards.
	if _, err := r.Node(ctx, ref, types.TreePath{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("node before upload: %v", err)
	}
	if _, err := r.CreateNode(ctx, ref, types.TreePath{}, e.Meta, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	read := func() {
		t.Helper()
		o, err := r.Node(ctx, ref, types.TreePath{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(o.Content)
		o.Content.Close()
		if !bytes.Equal(got, body) || !o.Meta.Equal(e.Meta) {
			t.Fatalf("node: %q %v", got, o.Meta)
		}
	}
	read()
	stats, opens, contents := cb.stats, cb.opens, cb.contents
	for range 3 {
		read()
	}
	if cb.stats != stats || cb.opens != opens || cb.contents != contents+3 {
		t.Errorf("3 cached reads: %d stats, %d opens, %d content opens", cb.stats-stats, cb.opens-opens, cb.contents-contents)
	}

	// Metas: a caller changing its copy changes nothing cached.
	m1, _ := r.StatNode(ctx, ref, types.TreePath{})
	for a := range m1.Digest {
		delete(m1.Digest, a)
	}
	if m2, _ := r.StatNode(ctx, ref, types.TreePath{}); !m2.Equal(e.Meta) {
		t.Errorf("cached Meta changed through a caller's copy: %v", m2)
	}

	// Records: a caller changing its copy changes nothing stored.
	_, b1, err := r.Repo(ctx, "alice", "pkg")
	if err != nil {
		t.Fatal(err)
	}
	b1[0] = 'X'
	if _, b2, _ := r.Repo(ctx, "alice", "pkg"); b2[0] != '{' {
		t.Errorf("cached record changed through a caller's copy: %q", b2)
	}

	// A cached node whose content file vanished from disk is an error, not
	// stale bytes.
	os.Remove(filepath.Join(dir, nodeKey(ref.key(), types.TreePath{}), fsContent))
	if _, err := r.Node(ctx, ref, types.TreePath{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing content: %v", err)
	}
}
