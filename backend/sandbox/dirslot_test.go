package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/internal/testutil"
)

func init() {
	// stat-beneath-files0 stats arg relative to the descriptor of
	// [[files]] entry 0, as glibc's fstat does (AT_EMPTY_PATH, which the
	// filter requires of newfstatat without a cache or directories), and
	// answers the errno and, if found, the size.
	containmentHooks["stat-beneath-files0"] = func(arg string) string {
		p, err := unix.BytePtrFromString(arg)
		if err != nil {
			return err.Error()
		}
		var st unix.Stat_t
		_, _, e := unix.RawSyscall6(unix.SYS_NEWFSTATAT, controlFD+1, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&st)), unix.AT_EMPTY_PATH, 0, 0)
		if e != 0 {
			return errnoString(e)
		}
		return fmt.Sprintf("size %d", st.Size)
	}
	// files0-kind: what the descriptor of [[files]] entry 0 is.
	containmentHooks["files0-kind"] = func(string) string {
		var st unix.Stat_t
		if err := unix.Fstat(controlFD+1, &st); err != nil {
			return errnoString(err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return "directory"
		}
		return fmt.Sprintf("mode %#o", st.Mode)
	}
}

// TestDirectoryAsStdioAnchorsNothing: a directory in a [[files]] entry
// that is not of kind "dir" — enarx's stdin redirected from one, `enarx
// run app.wasm < dir` — reaches the Keep as a directory of its empty root,
// not as the host's descriptor: relative to that, newfstatat (allowed in
// every Keep, and not governed by Landlock) found every host file beside
// and above it, the host's root included, their sizes and times.
func TestDirectoryAsStdioAnchorsNothing(t *testing.T) {
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("1234567"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l := fake("probe", "stat-beneath-files0:secret;stat-beneath-files0:../../../../../../../etc/passwd;files0-kind")
	l.Files = []*os.File{d}
	code, layers, err := run(context.Background(), l, hostOptions{})
	out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
	if code != 0 || !ok {
		t.Fatalf("probe: %d %v", code, err)
	}
	if want := "ENOENT;ENOENT;directory"; out != want {
		t.Fatalf("stat beside and above a directory passed as files[0], and its kind: %s; want %s (nothing of the host's, and still a directory)", out, want)
	}
	for _, ly := range layers {
		if ly.Name == LayerMountNS && !strings.Contains(ly.Detail, "replaced by the empty root") {
			t.Errorf("the empty root layer does not say it replaced the directory: %q", ly.Detail)
		}
	}
}
