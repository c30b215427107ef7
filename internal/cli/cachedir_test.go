package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

// TestCacheRootOfAnotherUser: a compilation cache root that another user
// owns or may write to is refused before any Keep starts. enarx ran the
// machine code it found there (entries are checked against corruption,
// not tampering): a user pointing --cache-dir (or XDG_CACHE_HOME) at a
// shared directory ran whatever its owner had planted, as themselves.
func TestCacheRootOfAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.NeedHost(t, "needs root to make a directory of another user")
	}
	wasm := testutil.BuildWasm(t, "testdata/exitargs")
	for _, c := range []struct {
		name string
		uid  int
		mode os.FileMode
		want string
	}{
		{"owned by another user", 65534, 0o700, "belongs to user id 65534"},
		{"writable by others", 0, 0o777, "may be written by other users"},
		{"writable by the group", 0, 0o770, "may be written by other users"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "shared")
			if err := os.Mkdir(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, c.uid, c.uid); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"run", "--backend", "nil", "--cache-dir", dir, wasm},
				{"run", "--backend", "nil", "--cache-dir", filepath.Join(dir, "."), wasm},
			} {
				code, _, errOut := runEnarx(t, nil, "", args...)
				if code != 1 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "--no-cache") {
					t.Fatalf("%v: exit %d, stderr %q; want 1 and %q", args, code, errOut, c.want)
				}
			}
			// The same through a symbolic link of one's own.
			link := filepath.Join(t.TempDir(), "link")
			if err := os.Symlink(dir, link); err != nil {
				t.Fatal(err)
			}
			if code, _, errOut := runEnarx(t, nil, "", "run", "--backend", "nil", "--cache-dir", link, wasm); code != 1 || !strings.Contains(errOut, c.want) {
				t.Fatalf("through a link: exit %d, stderr %q", code, errOut)
			}
			// --no-cache reads none of it.
			if code, _, errOut := runEnarx(t, nil, "", "run", "--backend", "nil", "--no-cache", "--cache-dir", dir, wasm); code != 0 {
				t.Fatalf("--no-cache: exit %d, stderr %q", code, errOut)
			}
		})
	}
	// A root of one's own, 0700, and one that does not exist yet, work.
	own := t.TempDir()
	os.Chmod(own, 0o700)
	for _, dir := range []string{own, filepath.Join(own, "new")} {
		if code, _, errOut := runEnarx(t, nil, "", "run", "--backend", "nil", "--cache-dir", dir, wasm); code != 0 {
			t.Fatalf("own cache %s: exit %d, stderr %q", dir, code, errOut)
		}
	}
}
