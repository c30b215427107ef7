//go:build unix

package client

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// TestBuildTreeDirSwappedForSymlink: a directory of the package replaced
// by a symbolic link to a directory outside it, after BuildTree saw it was
// a directory and before it read it (someone else who may write in the
// package directory, racing the publish), must not make BuildTree hash a
// file from outside: Publish would upload it (its upload check only
// compares the file with the one hashed). BuildTree read the swapped
// directory through the link and hashed the outside file.
func TestBuildTreeDirSwappedForSymlink(t *testing.T) {
	base := t.TempDir()
	pkg := filepath.Join(base, "pkg")
	outside := filepath.Join(base, "outside")
	writeFiles(t, pkg, map[string]string{"main.wasm": "wasm", "sub/data": "package data"})
	writeFiles(t, outside, map[string]string{"data": "secret outside the package"})
	secret, _ := types.Compute([]byte("secret outside the package"))

	sub := filepath.Join(pkg, "sub")
	testHookLstat = func(p string) {
		if p != sub {
			return
		}
		if err := os.Rename(sub, filepath.Join(base, "sub-was")); err != nil {
			t.Error(err)
		}
		if err := os.Symlink(outside, sub); err != nil {
			t.Error(err)
		}
	}
	defer func() { testHookLstat = nil }()

	tree, err := BuildTree(pkg)
	if err == nil {
		for _, nd := range tree.Nodes {
			if nd.Entry.Digest.Equal(secret) {
				t.Fatalf("BuildTree hashed %s from outside the package as node %q", filepath.Join(outside, "data"), "/"+nd.Path.String())
			}
		}
		t.Fatal("BuildTree succeeded on a package whose directory became a symbolic link")
	}
	if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("err = %v, want it to name the symbolic link", err)
	}
}
