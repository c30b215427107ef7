//go:build unix

package client

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestFetchTreeFollowsUmask: every directory and file FetchTree creates,
// the top directory included, has its mode less the umask, as mkdir(1)
// and the shell would give it. The top directory used to be chmodded
// 0o755 whatever the umask, so a user with umask 077 got a package
// directory anyone could list.
func TestFetchTreeFollowsUmask(t *testing.T) {
	c, repo := startRegistry(t)
	ctx := context.Background()
	spec := PackageSpec{RepoSpec: repo, Tag: "1.0.0"}
	publishFiles(t, c, spec, map[string]string{"main.wasm": "wasm", "sub/data": "d"})
	// The umask is the process's: no test of this package runs in
	// parallel with this one.
	for _, umask := range []int{0o077, 0o027, 0o022, 0o002} {
		t.Run(fmt.Sprintf("umask %03o", umask), func(t *testing.T) {
			old := syscall.Umask(umask)
			defer syscall.Umask(old)
			dst := filepath.Join(t.TempDir(), "pkg")
			if _, err := c.FetchTree(ctx, spec, dst); err != nil {
				t.Fatal(err)
			}
			want := map[string]fs.FileMode{
				"":          fs.ModeDir | dirMode&^fs.FileMode(umask),
				"sub":       fs.ModeDir | dirMode&^fs.FileMode(umask),
				"main.wasm": fileMode &^ fs.FileMode(umask),
				"sub/data":  fileMode &^ fs.FileMode(umask),
			}
			for name, mode := range want {
				st, err := os.Lstat(filepath.Join(dst, name))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode() != mode {
					t.Errorf("%q: mode %v, want %v", name, st.Mode(), mode)
				}
			}
		})
	}
}
