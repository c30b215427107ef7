package sealed

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep/internal/vfs"
)

// dbSize is the file the crash child rewrites at every commit.
const dbSize = 2<<20 + 4321

// dbContent is the file's content at commit i: its first 8 bytes say i.
func dbContent(i uint64) []byte {
	b := pattern(1000+i, dbSize)
	binary.LittleEndian.PutUint64(b, i)
	return b
}

// TestCrash kills a process writing and committing to a volume with
// SIGKILL at arbitrary points, several times over the same volume; each
// time the volume opens at a committed state: the last one the child
// reported, or the one it was committing when killed, never a mixture.
func TestCrash(t *testing.T) {
	if dir := os.Getenv("SEALED_CRASH_CHILD"); dir != "" {
		crashChild(t, dir)
		return
	}
	dir := t.TempDir()
	var last uint64
	for round, delay := range []time.Duration{0, 3 * time.Millisecond, 11 * time.Millisecond, 29 * time.Millisecond, 47 * time.Millisecond} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SEALED_CRASH_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		committed := last
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				committed, _ = strconv.ParseUint(n, 10, 64)
				if committed >= last+2 {
					break // at least one commit this round, and more under way
				}
			}
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		// What the child reported before it died is still in the pipe.
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "committed "); ok {
				committed, _ = strconv.ParseUint(n, 10, 64)
			}
		}
		cmd.Wait()

		v, root := mustOpen(t, dir, Options{})
		got, err := readFile(root, "db")
		if err != nil {
			t.Fatalf("round %d: read after kill: %v", round, err)
		}
		i := binary.LittleEndian.Uint64(got)
		if i < committed || i > committed+1 {
			t.Fatalf("round %d: volume at commit %d after the child reported %d", round, i, committed)
		}
		checkFile(t, root, "db", dbContent(i))
		t.Logf("round %d: killed after commit %d, volume at commit %d, version %d", round, committed, i, v.Version())
		if err := root.Close(); err != nil {
			t.Fatal(err)
		}
		last = i
	}
}

// crashChild commits dbContent(i) for i = 1, 2, ... until killed.
func crashChild(t *testing.T, dir string) {
	_, root := mustOpen(t, dir, Options{})
	var i uint64
	if b, err := readFile(root, "db"); err == nil {
		i = binary.LittleEndian.Uint64(b)
	}
	for i++; ; i++ {
		writeFile(t, root, "db", dbContent(i), true)
		fmt.Printf("committed %d\n", i)
	}
}

// TestENOSPC fills a small tmpfs (in a user and mount namespace of its
// own) under a volume: a full disk fails the write or the sync with
// ENOSPC, and the volume then opens at its last committed state, whole.
func TestENOSPC(t *testing.T) {
	if dir := os.Getenv("SEALED_ENOSPC_CHILD"); dir != "" {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
			fmt.Println("NEEDHOST: mounting a tmpfs in a user namespace:", err)
			os.Exit(3)
		}
		enospcChild(t, dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestENOSPC$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SEALED_ENOSPC_CHILD="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		t.Logf("%s", out)
	case errors.As(err, &exit) && exit.ExitCode() == 3:
		testutil.NeedHost(t, "%s", out)
	case !errors.As(err, &exit):
		testutil.NeedHost(t, "a user and mount namespace for a small tmpfs: %v", err)
	default:
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func enospcChild(t *testing.T, dir string) {
	v, root := mustOpen(t, dir, Options{})
	keep := pattern(20, 1<<20)
	writeFile(t, root, "keep", keep, true)
	version := v.Version()

	// A file larger than the disk: the write or its sync fails.
	f := openFile(t, root, "big", vfs.OpenOptions{Create: true, Write: true})
	big := pattern(21, 1<<20)
	var err error
	for off := int64(0); off < 8<<20 && err == nil; off += int64(len(big)) {
		_, err = f.WriteAt(big, off)
	}
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the disk: %v, want ENOSPC", err)
	}
	if v.Version() != version {
		t.Fatalf("a failed commit moved the version from %d to %d", version, v.Version())
	}
	abandon(v)

	// The committed state is whole; the big file's object is collected.
	v, root = mustOpen(t, dir, Options{})
	checkFile(t, root, "keep", keep)
	if _, err := root.StatAt("big", false); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("uncommitted file after ENOSPC: %v", err)
	}

	// Now leave the disk nearly full (a host file takes the rest) and
	// rewrite part of keep with less and less room: each sync either
	// succeeds, and the new content is there after reopening, or fails
	// with ENOSPC, and the old one is.
	failed, succeeded := 0, 0
	for free := int64(320 << 10); free >= 0; free -= 32 << 10 {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		avail := int64(st.Bavail) * st.Bsize
		if fill := avail - free; fill > 0 {
			if err := os.WriteFile(dir+"/filler"+strconv.FormatInt(free, 10), make([]byte, fill), 0o600); err != nil && !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
		}
		next := append([]byte(nil), keep...)
		copy(next[100_000:], pattern(uint64(free), 60_000)) // chunks 1 and 2
		f := openFile(t, root, "keep", vfs.OpenOptions{Write: true})
		_, err := f.WriteAt(next[100_000:160_000], 100_000)
		if err == nil {
			err = f.Sync()
		}
		f.Close()
		if err != nil && !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("free %d: %v, want success or ENOSPC", free, err)
		}
		t.Logf("free %d KiB: sync: %v", free>>10, err)
		// Whatever failed, the open volume still reads back whole (no
		// chunk was overwritten in place).
		if _, err := readFile(root, "keep"); err != nil {
			t.Fatalf("free %d: read after a failed sync: %v", free, err)
		}
		abandon(v)
		v, root = mustOpen(t, dir, Options{})
		if err == nil {
			keep = next
			succeeded++
		} else {
			failed++
		}
		checkFile(t, root, "keep", keep)
	}
	if failed == 0 || succeeded == 0 {
		t.Fatalf("%d syncs succeeded and %d failed: the test did not reach both outcomes", succeeded, failed)
	}
	root.Close()
}

// abandon drops an open volume as a crash would: no commit, its host
// descriptors closed (so that tmpfs frees what its deleted objects use).
func abandon(v *Volume) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	for _, c := range v.files {
		c.close()
	}
	for _, c := range v.orphans {
		c.close()
	}
	v.backing.Close()
}
