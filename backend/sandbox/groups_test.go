package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

// keepGroupsTestGID is a supplementary group of the host in
// TestKeepDropsHostGroups (no group by this id need exist).
const keepGroupsTestGID = 4242

// TestKeepDropsHostGroups: with enarx as root, the Keep runs as the host's
// nobody, and must not keep the host's supplementary groups either (root's
// own, at least 0, in a login shell or under sudo): a file in a passed
// directory that only its group may read stays closed to the Keep. The
// host runs in a helper process with the supplementary group
// keepGroupsTestGID; the file's group is that gid, with mode 0640. Both
// ways of starting the Keep are tried: os/exec (its diagnostics to a
// buffer) and, in a cgo build, spawnShared (to a file).
func TestKeepDropsHostGroups(t *testing.T) {
	if os.Getenv("SANDBOX_TEST_GROUPS_DIR") != "" {
		return // the helper (TestHelperGroupsHost)
	}
	if os.Geteuid() != 0 {
		t.Skip("only enarx as root changes the Keep's identity; otherwise the Keep is the caller, groups and all")
	}
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	d := hostDir(t)
	secret := filepath.Join(d, "group-only.txt")
	if err := os.WriteFile(secret, []byte("for the group"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(secret, 0, keepGroupsTestGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o640); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperGroupsHost$")
	cmd.Env = append(os.Environ(), "SANDBOX_TEST_GROUPS_DIR="+d)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{0, keepGroupsTestGID}}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper host: %v\n%s\n%s", err, out, stderr.String())
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(line, "keep-read="); ok {
			got = append(got, r)
		}
	}
	if len(got) != 2 {
		t.Fatalf("helper host printed %q (stderr %s)", out, stderr.String())
	}
	for i, how := range []string{"os/exec", "with diagnostics to a file (spawnShared in a cgo build)"} {
		if got[i] != "EACCES" {
			t.Errorf("Keep started %s read a file only the host's supplementary group %d may read: %s", how, keepGroupsTestGID, got[i])
		}
	}
}

// TestHelperGroupsHost is the host process of TestKeepDropsHostGroups.
func TestHelperGroupsHost(t *testing.T) {
	d := os.Getenv("SANDBOX_TEST_GROUPS_DIR")
	if d == "" {
		t.Skip("helper")
	}
	for _, stderr := range []*os.File{nil, os.Stderr} {
		l := dirLaunch(t, []string{d}, []bool{true}, "probe", "dir-read:4|group-only.txt")
		h := hostOptions{stderr: &bytes.Buffer{}}
		if stderr != nil {
			h.stderr = stderr
		}
		code, _, err := run(context.Background(), l, h)
		out, ok := strings.CutPrefix(fmt.Sprint(err), probesPrefix)
		if code != 0 || !ok {
			t.Fatalf("probe: %d %v", code, err)
		}
		fmt.Printf("keep-read=%s\n", out)
	}
}
