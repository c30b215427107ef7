package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/bundle"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// servedNode is what a test registry answers at one path.
type servedNode struct {
	meta types.Meta
	body []byte
}

// servedPackage is a package as a registry serves it under
// /api/v0.1.0/u/r/_tag/1.0.0: the tag entry's root and the nodes by path.
type servedPackage struct {
	root  types.Entry
	nodes map[string]servedNode
}

const servedTag = "/" + APIPrefix + "/u/r/_tag/1.0.0"

// newServedPackage returns a package whose root is a directory holding
// wasm as main.wasm, or (dir false) wasm itself.
func newServedPackage(t *testing.T, wasm []byte, dir bool) servedPackage {
	t.Helper()
	we, err := types.FileEntry(bytes.NewReader(wasm), types.WasmType)
	if err != nil {
		t.Fatal(err)
	}
	if !dir {
		return servedPackage{root: we, nodes: map[string]servedNode{servedTag + "/tree": {we.Meta, wasm}}}
	}
	body, root, err := types.DirectoryNode(types.Directory{bundle.WasmName: we})
	if err != nil {
		t.Fatal(err)
	}
	return servedPackage{root: root, nodes: map[string]servedNode{
		servedTag + "/tree":                    {root.Meta, body},
		servedTag + "/tree/" + bundle.WasmName: {we.Meta, wasm},
	}}
}

// forgeRoot makes p name, beside its root's true digests, the value v for
// alg, as a hostile registry can: the tag entry and the root's
// Content-Digest both say so, and every other check passes.
func (p servedPackage) forgeRoot(alg types.Algorithm, v []byte) servedPackage {
	p.root.Digest = maps.Clone(p.root.Digest)
	p.root.Digest[alg] = v
	p.nodes = maps.Clone(p.nodes)
	n := p.nodes[servedTag+"/tree"]
	n.meta = p.root.Meta
	p.nodes[servedTag+"/tree"] = n
	return p
}

// serve runs a TLS registry on 127.0.0.1 that answers the tag and the
// package's nodes, and returns a client for it.
func (p servedPackage) serve(t *testing.T) *Client {
	t.Helper()
	tag, err := p.root.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	tagSum, _ := types.Compute(tag)
	return fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == servedTag {
			send(w, tagSum.String(), len(tag), types.EntryType, tag)
			return
		}
		n, ok := p.nodes[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		send(w, n.meta.Digest.String(), len(n.body), n.meta.Type, n.body)
	}, Options{})
}

// TestFetchPinOtherAlgorithm: a pin whose algorithm is not sha-256 is a
// digest of the root's bytes, not only a value the tag entry names. A
// hostile registry serves other bytes under a tag entry (and Content-Digest)
// that names their true SHA-256 beside the pinned value; FetchTree and
// FetchBundle refuse them, also when the cache holds those bytes under
// their SHA-256 (as an earlier fetch of that other package leaves them).
func TestFetchPinOtherAlgorithm(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []struct {
		name string
		dir  bool
	}{{"single file", false}, {"directory", true}} {
		for _, alg := range []types.Algorithm{types.SHA224, types.SHA384, types.SHA512} {
			t.Run(kind.name+"/"+string(alg), func(t *testing.T) {
				good := newServedPackage(t, []byte("the real wasm"), kind.dir)
				evil := newServedPackage(t, []byte("evil wasm"), kind.dir)
				pinned := good.root.Digest[alg]
				pin := "@" + string(alg) + ":" + hex.EncodeToString(pinned)

				// The honest registry: the pinned package is fetched.
				cl := good.serve(t)
				spec, err := ParsePackageSpec(cl.Host() + "/u/r:1.0.0" + pin)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := cl.FetchTree(ctx, spec, filepath.Join(t.TempDir(), "out")); err != nil {
					t.Fatalf("honest FetchTree: %v", err)
				}
				if _, err := cl.FetchBundle(ctx, spec, &Cache{Dir: t.TempDir()}); err != nil {
					t.Fatalf("honest FetchBundle: %v", err)
				}

				// The hostile registry.
				cl = evil.forgeRoot(alg, pinned).serve(t)
				spec, _ = ParsePackageSpec(cl.Host() + "/u/r:1.0.0" + pin)
				wantPinErr := func(what string, err error) {
					t.Helper()
					if err == nil {
						t.Errorf("%s accepted a root that does not hash to the %s pin", what, alg)
					} else if !errors.Is(err, types.ErrDigestMismatch) || !strings.Contains(err.Error(), "pinned "+string(alg)) {
						t.Errorf("%s: err = %v, want a mismatch with the pinned %s digest", what, err, alg)
					}
				}
				dst := filepath.Join(t.TempDir(), "out")
				_, err = cl.FetchTree(ctx, spec, dst)
				wantPinErr("FetchTree", err)
				if _, err := os.Lstat(dst); err == nil {
					t.Error("FetchTree left the rejected package at dst")
				}
				_, err = cl.FetchBundle(ctx, spec, nil)
				wantPinErr("FetchBundle", err)

				cache := &Cache{Dir: t.TempDir()}
				evilRoot := evil.nodes[servedTag+"/tree"]
				cache.Put(evilRoot.meta, evilRoot.body)
				_, err = cl.FetchBundle(ctx, spec, cache)
				wantPinErr("FetchBundle from the cache", err)
			})
		}
	}
}

// TestFetchPinOtherAlgorithmRegistry: a package published to the real
// registry is fetched pinned to its sha-512 root digest.
func TestFetchPinOtherAlgorithmRegistry(t *testing.T) {
	c, repo := startRegistry(t)
	ctx := context.Background()
	spec := PackageSpec{RepoSpec: repo, Tag: "1.0.0"}
	tree := publishFiles(t, c, spec, map[string]string{"main.wasm": "the module", "Enarx.toml": "args = []\n"})
	spec.Pin = types.Digests{types.SHA512: tree.Root().Digest[types.SHA512]}
	if _, err := c.FetchTree(ctx, spec, filepath.Join(t.TempDir(), "out")); err != nil {
		t.Fatalf("FetchTree: %v", err)
	}
	f, err := c.FetchBundle(ctx, spec, nil)
	if err != nil {
		t.Fatalf("FetchBundle: %v", err)
	}
	if _, err := bundle.Verify(f.Bundle); err != nil {
		t.Fatalf("bundle.Verify: %v", err)
	}
}
