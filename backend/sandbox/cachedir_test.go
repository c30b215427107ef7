package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestCacheDirWithoutRead: a Keep (running as the host's user) that makes
// a cache directory it may write and enter but not list (0300) and fills
// it: the check reports the directory, and the host removes it all the
// same. Root ignores modes, so the removal runs as nobody when the test
// runs as root (the check itself does not depend on who runs it).
func TestCacheDirWithoutRead(t *testing.T) {
	if dir := os.Getenv("ENARX_TEST_REMOVE_CACHE_DIR"); dir != "" {
		if err := removeCacheDir(dir); err != nil {
			t.Fatalf("removeCacheDir as uid %d: %v", os.Getuid(), err)
		}
		return
	}
	base := t.TempDir()
	dir := filepath.Join(base, "module")
	entry := filepath.Join(dir, "enarx-wazero-0123abcd")
	if err := os.MkdirAll(entry, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(entry, strings.Repeat("a", 64)), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	hidden := filepath.Join(dir, "wasmtime-v1.0.0-0123abcd")
	if err := os.Mkdir(hidden, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hidden, strings.Repeat("b", 64)+".cwasm"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Deeper, directories whose owner may not change (0500: it cannot
	// move them either) or even list them (0000).
	deep := filepath.Join(hidden, "deep")
	deeper := filepath.Join(deep, "deeper")
	if err := os.MkdirAll(deeper, 0o700); err != nil {
		t.Fatal(err)
	}
	deepFile := filepath.Join(deeper, "junk")
	if err := os.WriteFile(deepFile, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(deeper, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(deep, 0o500); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(hidden, 0o300); err != nil {
		t.Fatal(err)
	}
	p, err := cacheProblem(dir, 1<<20)
	if err != nil || !strings.Contains(p, "mode 0300") {
		t.Fatalf("cacheProblem = %q, %v; want the directory with mode 0300", p, err)
	}
	if os.Getuid() != 0 {
		if err := removeCacheDir(dir); err != nil {
			t.Fatal(err)
		}
	} else {
		// As nobody, who owns it all (as the Keep's user owns what it
		// makes when enarx does not run as root).
		for _, p := range []string{base, dir, entry, hidden, deep, deeper, deepFile} {
			if err := os.Chown(p, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range []string{filepath.Join(entry, strings.Repeat("a", 64)), filepath.Join(hidden, strings.Repeat("b", 64)+".cwasm")} {
			if err := unix.Fchownat(unix.AT_FDCWD, f, 65534, 65534, 0); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Dir(base), 0o711); err != nil {
			t.Fatal(err)
		}
		// The test binary's directory is root's: nobody runs it through
		// a descriptor, as a Keep is started.
		exe, err := os.Open("/proc/self/exe")
		if err != nil {
			t.Fatal(err)
		}
		defer exe.Close()
		cmd := exec.Command("/proc/self/fd/3", "-test.run=^TestCacheDirWithoutRead$", "-test.count=1")
		cmd.ExtraFiles = []*os.File{exe}
		cmd.Env = append(os.Environ(), "ENARX_TEST_REMOVE_CACHE_DIR="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the removal as nobody: %v\n%s", err, out)
		}
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("the cache directory is still there: %v", err)
	}
}

// TestRemoveDeepCacheDir: a Keep may nest directories in its cache as
// deep as the file system lets it (each mkdirat and openat relative to the
// last, closing it). The check refuses anything below the engines'
// directories, and the removal must then succeed with a bounded number of
// descriptors: os.RemoveAll holds one per level, so a chain deeper than
// the host's RLIMIT_NOFILE made it fail (EMFILE), leaving the directory for
// every later run, and took the host's descriptors meanwhile. The test
// lowers its own limit below the chain's depth.
func TestRemoveDeepCacheDir(t *testing.T) {
	const depth = 600
	dir := filepath.Join(t.TempDir(), "module")
	entry := filepath.Join(dir, "enarx-wazero-0123abcd")
	if err := os.MkdirAll(entry, 0o700); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(entry, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range depth {
		if err := unix.Mkdirat(fd, "d", 0o700); err != nil {
			t.Fatal(err)
		}
		if i%100 == 0 {
			if err := unix.Mknodat(fd, "f", unix.S_IFREG|0o600, 0); err != nil {
				t.Fatal(err)
			}
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
	// And wide: more directories, each with its own, than one batch of
	// names (all of them moved up into the module's directory).
	for i := range 1500 {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("wasmtime-v1.0.0-%08x", i), "sub", "subsub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if p, err := cacheProblem(dir, 1<<30); err != nil || p == "" {
		t.Fatalf("cacheProblem = %q, %v; want the directories below the engines'", p, err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = depth / 2
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	err = removeCacheDir(dir)
	if serr := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); serr != nil {
		t.Fatal(serr)
	}
	if err != nil {
		t.Fatalf("removeCacheDir of a chain of %d directories with RLIMIT_NOFILE %d: %v", depth, low.Cur, err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("the cache directory is still there: %v", err)
	}
}

// TestRemoveCacheDirWhileWritten: two Keeps of one module share its
// directory, so another Keep may go on writing to it while the host
// removes it after the first one ended. However long it does, the
// removal must end (failing is fine: the next check tries again), not
// keep reading what the other Keep keeps writing.
func TestRemoveCacheDirWhileWritten(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "module")
	if err := os.MkdirAll(filepath.Join(dir, "junk", "deeper"), 0o700); err != nil {
		t.Fatal(err)
	}
	var writing atomic.Bool
	writing.Store(true)
	budget := removeBudget
	defer func() { removeHook, removeBudget = nil, budget }()
	removeBudget = 2000 // to keep the test short
	// The other Keep adds an entry to each directory before every read.
	// It stops after far more reads than the budget allows, so that
	// a removal without a bound ends too, and the test fails.
	calls := 0
	removeHook = func(d int) {
		if calls++; calls > 100*removeBudget {
			writing.Store(false)
		}
		if writing.Load() {
			unix.Mknodat(d, "again", unix.S_IFREG|0o600, 0)
		}
	}
	err := removeCacheDir(dir)
	if !writing.Load() {
		t.Fatalf("removeCacheDir went on for as long as another Keep wrote to the directory (%d reads)", calls)
	}
	if err == nil {
		t.Fatal("removeCacheDir succeeded although the directory was written all along")
	}
	t.Logf("removeCacheDir, while written: %v", err)
	// Once nothing writes to it any more, the next removal succeeds.
	writing.Store(false)
	removeBudget = budget
	if err := removeCacheDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("the cache directory is still there: %v", err)
	}
}

// TestRemoveCacheDirNamesTaken: another Keep still running can also take
// the names a directory is moved up under, just before the removal tries
// each (they are "removed-1", "removed-2", ...): that too must not keep
// it going.
func TestRemoveCacheDirNamesTaken(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "module")
	if err := os.MkdirAll(filepath.Join(dir, "junk", "deeper"), 0o700); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	var writing atomic.Bool
	writing.Store(true)
	budget := removeBudget
	defer func() { removeHook, removeBudget = nil, budget }()
	removeBudget = 1000
	started, next := false, 1
	calls := 0
	removeHook = func(d int) {
		if calls++; calls > 100*removeBudget {
			writing.Store(false) // a removal without a bound ends too
		}
		var dst unix.Stat_t
		if unix.Fstat(d, &dst) != nil || !writing.Load() {
			return
		}
		if dst.Ino != st.Ino {
			// Emptying "junk": "deeper" is moved up next.
			started = true
			return
		}
		if started {
			// Two names ahead of the next one tried.
			for range 2 {
				unix.Mknodat(d, fmt.Sprintf("removed-%d", next), unix.S_IFREG|0o600, 0)
				next++
			}
		}
	}
	err := removeCacheDir(dir)
	if !writing.Load() {
		t.Fatalf("removeCacheDir tried names for as long as another Keep took them (%d tries)", calls)
	}
	if err == nil {
		t.Fatal("removeCacheDir succeeded although every name it tried was taken")
	}
	t.Logf("removeCacheDir, with the names taken: %v", err)
	// Once nothing takes them any more, the next removal succeeds.
	writing.Store(false)
	removeBudget = budget
	if err := removeCacheDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Fatalf("the cache directory is still there: %v", err)
	}
}
