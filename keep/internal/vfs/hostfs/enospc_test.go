package hostfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// TestENOSPC: on a full file system (a 256 KiB tmpfs, mounted in a user
// and mount namespace of a child test process) writes report what they
// wrote and ENOSPC, and Allocate reports ENOSPC.
func TestENOSPC(t *testing.T) {
	if dir := os.Getenv("HOSTFS_TEST_TMPFS"); dir != "" {
		enospcChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestENOSPC$", "-test.v")
	cmd.Env = append(os.Environ(), "HOSTFS_TEST_TMPFS="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		// The namespace could not be made (user namespaces off).
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot make a user namespace for a tmpfs: %v", err)
		}
		t.Skipf("cannot make a user namespace for a tmpfs: %v", err)
	}
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if strings.Contains(string(out), noTmpfs) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("child:\n%s", out)
		}
		t.Skipf("child:\n%s", out)
	}
	t.Logf("child:\n%s", out)
}

// noTmpfs marks a child that could not mount its tmpfs.
const noTmpfs = "no tmpfs in the user namespace"

func enospcChild(t *testing.T, dir string) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		t.Skipf("%s: make / private: %v", noTmpfs, err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("%s: mount: %v", noTmpfs, err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	root := filepath.Join(dir, "root")
	must(t, os.Mkdir(root, 0o755))
	hf, err := os.Open(root)
	must(t, err)
	d, err := New(hf, false)
	must(t, err)
	defer d.Close()
	f := open(t, d, "big", excl).(vfs.File)
	defer f.Close()
	buf := make([]byte, 1<<20)
	n, err := f.Write(buf, false)
	if !errors.Is(err, syscall.ENOSPC) || n <= 0 || n >= len(buf) {
		t.Errorf("Write of 1 MiB to a 256 KiB tmpfs = %d, %v, want a short count and ENOSPC", n, err)
	}
	if st, _ := f.Stat(); st.Size != uint64(n) {
		t.Errorf("size %d after writing %d", st.Size, n)
	}
	g := open(t, d, "g", excl).(vfs.File)
	defer g.Close()
	if err := g.Allocate(0, 1<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("Allocate of 1 MiB on a full tmpfs = %v, want ENOSPC", err)
	}
	if _, err := g.WriteAt(buf[:8192], 0); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("WriteAt on a full tmpfs = %v, want ENOSPC", err)
	}
	t.Logf("wrote %d of %d bytes before ENOSPC", n, len(buf))
}
