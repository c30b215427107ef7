package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFetchBundleCacheFIFO: a FIFO where a cache entry would be (planted
// by another user in a cache directory they may write to) is not an
// entry: the body is downloaded. Before, opening it waited for a writer
// and held the fetch forever.
func TestFetchBundleCacheFIFO(t *testing.T) {
	c, repo := startRegistry(t)
	ctx := context.Background()
	spec := PackageSpec{RepoSpec: repo, Tag: "3.0.0"}
	tree := publishFiles(t, c, spec, map[string]string{"main.wasm": "the module"})
	cache := &Cache{Dir: t.TempDir()}
	for _, n := range tree.Nodes {
		p, _ := cache.of(spec.Host).path(n.Entry.Meta)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := syscall.Mkfifo(p, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		f, err := c.FetchBundle(ctx, spec, cache)
		if err == nil && !bytes.Contains(f.Bundle, []byte("the module")) {
			err = errors.New("the bundle lacks main.wasm")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("FetchBundle hung on a FIFO in the cache")
	}
}
