package client

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// TestCacheKeptPerRegistry: a body in the package cache is used only for
// the registry it was fetched from. One cache held every registry's
// bodies by digest, so a registry that only named a digest in its tag (a
// Keep's certificate shows its package's) was given, from the cache, the
// bodies of a package another registry had served to a caller allowed to
// read it: on a node whose containerd shim shares one cache among all pods,
// any pod could run another tenant's private package.
func TestCacheKeptPerRegistry(t *testing.T) {
	c, repo := startRegistry(t)
	ctx := context.Background()
	spec := PackageSpec{RepoSpec: repo, Tag: "1.0.0"}
	tree := publishFiles(t, c, spec, map[string]string{"main.wasm": "the private module"})
	cache := &Cache{Dir: t.TempDir()}
	if _, err := c.FetchBundle(ctx, spec, cache); err != nil {
		t.Fatal(err)
	}

	// Another registry names the same root in its tag, and has none of
	// its bytes.
	tagBody, _ := tree.Root().MarshalJSON()
	tagSum, _ := types.Compute(tagBody)
	served := false
	other := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/tree") || strings.Contains(r.URL.Path, "/tree/") {
			served = true
			http.NotFound(w, r)
			return
		}
		send(w, tagSum.String(), len(tagBody), types.EntryType, tagBody)
	}, Options{})
	otherSpec, err := ParsePackageSpec(other.Host() + "/" + string(repo.User) + "/" + string(repo.Repo) + ":1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := other.FetchBundle(ctx, otherSpec, cache)
	if err == nil {
		t.Fatalf("another registry that only named the root was given the package from the cache (%d bytes, main.wasm there: %v)",
			len(f.Bundle), bytes.Contains(f.Bundle, []byte("the private module")))
	}
	if !served {
		t.Errorf("the other registry was never asked for the body: %v", err)
	}
}
