package sandbox

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// The module's compilation cache directory is the one place on the host's
// file system a Keep may create files in that outlives it (its [[files]]
// directories are the user's choice). A Keep whose workload escaped the
// wasm engine could fill it with anything, up to what the file system
// holds; RLIMIT_FSIZE cannot bound that without bounding the user's own
// files too (it applies to every file the process writes: read-write
// directories, stdout redirected to a file), and it bounds each file, not
// their sum. So once the Keep has exited, the host checks the directory:
// only the entries the engines write (keep/internal/engine: wazero's
// compilation cache, the wazero engine's instrumented modules, the
// wasmtime cache, with their temporary files), regular files two levels
// down, no more than cacheMaxEntries of them, and together no larger than
// cacheBudget of the module. Anything else, and the directory is removed:
// the next run of the module compiles it again.

// cacheBudget is how much a module's cache directory may hold (apparent
// size or allocated blocks, whichever is larger, directories included).
// Measured with both engines (docs/sandbox.md, "Compilation cache"): Go's
// hello (2.6 MB) leaves 4.9 times the module for wazero (compiled code and
// the instrumented module) and 3.1 times for wasmtime, 8.0 together;
// WASI test modules of 87 and 131 KB 8.9 and 8.3 together, one of 5 KB
// 15 (about 60 KiB that do not grow with the module). The budget is twice
// the two engines' sum, and 1 MiB: room for a concurrent run's temporary
// files, or another engine version's entries.
func cacheBudget(moduleSize int) int64 {
	return 16*int64(moduleSize) + 1<<20
}

// cacheMaxEntries bounds the files and directories the check reads: the
// engines write one or two files per module and engine version.
const cacheMaxEntries = 64

// checkModuleCache removes the module's cache directory dir if it holds
// anything the engines do not write or more than the budget allows, and
// logs a warning naming the Keep (pid is its host pid) that did so.
func checkModuleCache(dir string, moduleSize, pid int, log *slog.Logger) {
	problem, err := cacheProblem(dir, cacheBudget(moduleSize))
	if err != nil {
		problem = fmt.Sprintf("cannot be checked: %v", err)
	}
	if problem == "" {
		return
	}
	rmErr := removeCacheDir(dir)
	// The directory is <sha256> or, with a cache scope, <sha256>-<scope tag>.
	sum, _, _ := strings.Cut(filepath.Base(dir), "-")
	args := []any{"keep_pid", pid, "module_sha256", sum, "dir", dir, "found", problem}
	if rmErr != nil {
		log.Warn("sandbox: the Keep's compilation cache holds what the engines do not write, and removing it failed", append(args, "err", rmErr)...)
		return
	}
	log.Warn("sandbox: the Keep left its compilation cache with what the engines do not write; removed it (the next run compiles the module again)", args...)
}

// cacheProblem says what in dir the engines would not have written, or
// returns "" if nothing. Nothing is followed: every directory is opened
// with O_NOFOLLOW and every entry examined with lstat.
func cacheProblem(dir string, budget int64) (string, error) {
	top, err := openDirNoFollow(unix.AT_FDCWD, dir)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer top.Close()
	var total int64
	entries := 0
	add := func(st *unix.Stat_t) string {
		total += max(st.Size, st.Blocks*512)
		if total > budget {
			return fmt.Sprintf("more than the %d bytes a module of this size may have cached", budget)
		}
		return ""
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(top.Fd()), &st); err != nil {
		return "", err
	}
	add(&st)
	if p := dirMode(".", &st); p != "" {
		return p, nil
	}
	names, err := top.Readdirnames(cacheMaxEntries + 1)
	if err != nil && len(names) == 0 && !isEOF(err) {
		return "", err
	}
	for _, n := range names {
		if entries++; entries > cacheMaxEntries {
			return fmt.Sprintf("more than %d entries", cacheMaxEntries), nil
		}
		isEntry := engineCacheDir(n)
		if err := unix.Fstatat(int(top.Fd()), n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return "", err
		}
		if isEntry == nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return fmt.Sprintf("%q, which no engine writes", n), nil
		}
		if p := add(&st); p != "" {
			return p, nil
		}
		if p := dirMode(n, &st); p != "" {
			return p, nil
		}
		sub, err := openDirNoFollow(int(top.Fd()), n)
		if err != nil {
			return "", err
		}
		subNames, err := sub.Readdirnames(cacheMaxEntries + 1)
		if err != nil && len(subNames) == 0 && !isEOF(err) {
			sub.Close()
			return "", err
		}
		for _, m := range subNames {
			if entries++; entries > cacheMaxEntries {
				sub.Close()
				return fmt.Sprintf("more than %d entries", cacheMaxEntries), nil
			}
			if err := unix.Fstatat(int(sub.Fd()), m, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				sub.Close()
				return "", err
			}
			if !isEntry(m) || st.Mode&unix.S_IFMT != unix.S_IFREG {
				sub.Close()
				return fmt.Sprintf("%q, which no engine writes", n+"/"+m), nil
			}
			if p := add(&st); p != "" {
				sub.Close()
				return p, nil
			}
		}
		sub.Close()
	}
	return "", nil
}

// dirMode reports a directory its owner may not list, enter and change
// (the engines make theirs 0700, as the host makes the module's): one the
// Keep made 0300, say, it could fill while the host could neither read
// nor remove it.
func dirMode(name string, st *unix.Stat_t) string {
	if st.Mode&0o700 != 0o700 {
		return fmt.Sprintf("directory %q with mode %#o", name, st.Mode&0o7777)
	}
	return ""
}

// removeCacheDir removes dir and everything beneath it, following no
// symbolic link, with a bounded number of descriptors however deep the
// Keep nested its directories (as deep as the file system lets it: each
// mkdirat and openat relative to the last). os.RemoveAll holds one
// descriptor per level: a chain deeper than the host's RLIMIT_NOFILE made
// it fail, leaving the directory for every later run, and took the host's
// descriptors meanwhile. Here every directory beneath dir is moved up into
// dir before it is emptied, so the walk never holds more than four
// descriptors. A directory the Keep made without read, search or write
// permission for its owner (the Keep runs as the host's user unless enarx
// runs as root) is given mode 0700 before it is listed or moved.
func removeCacheDir(dir string) error {
	top, err := openOwnDir(unix.AT_FDCWD, dir)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	err = emptyDir(top, top, &removal{left: removeBudget})
	unix.Close(top)
	if err != nil {
		return fmt.Errorf("emptying %s: %w", dir, err)
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}

// removal is the state of one removeCacheDir.
type removal struct {
	moved int // names "removed-<n>" taken (moveUp)
	left  int // names it may still read or find taken (removeBudget)
}

// removeBudget bounds the names one removal reads or, moving a directory
// up, finds taken. Two Keeps of one module share its directory, and one
// still running could otherwise keep the removal after the other going
// for as long as it writes to the directory (new entries to read, or the
// names moveUp tries next). Undisturbed, a removal reads each entry at
// most twice (in its directory and, moved up, in the top one) and finds
// a name taken only by an entry there: a larger tree than the budget
// allows is removed in part, and the next check goes on.
var removeBudget = 1 << 20

// errRemoveBudget: see removeBudget.
var errRemoveBudget = errors.New("more entries than one removal reads (another Keep of the module still writing to it?); the next check goes on")

// emptyDir removes the files in the directory d and moves its directories
// up into top (d itself, or the directory being removed), under new names
// (r.moved counts the names taken, over the whole removal), to be emptied
// and removed in turn. With d == top it goes on until top is empty. It
// fails on the first entry it can neither remove nor move, rather than
// read the same entries again, and once it has read r.left names.
func emptyDir(top, d int, r *removal) error {
	for {
		if removeHook != nil {
			removeHook(d)
		}
		// Read afresh after every batch: removing entries while reading
		// may make a directory stream skip some.
		names, err := readNames(d, 1024)
		if err != nil || len(names) == 0 {
			return err
		}
		if r.left -= len(names); r.left < 0 {
			return errRemoveBudget
		}
		for _, n := range names {
			err := unix.Unlinkat(d, n, 0)
			switch {
			case err == nil, errors.Is(err, unix.ENOENT):
				continue
			case !errors.Is(err, unix.EISDIR):
				return fmt.Errorf("removing %q: %w", n, err)
			}
			if d != top {
				if err := moveUp(top, d, n, r); err != nil {
					return err
				}
				continue
			}
			sub, err := openOwnDir(d, n)
			if err != nil {
				return fmt.Errorf("opening %q: %w", n, err)
			}
			err = emptyDir(top, sub, r)
			unix.Close(sub)
			if err != nil {
				return fmt.Errorf("emptying %q: %w", n, err)
			}
			if err := unix.Unlinkat(d, n, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("removing %q: %w", n, err)
			}
		}
	}
}

// removeHook, if set (tests), is called with the directory emptyDir is
// about to read, or top before moveUp tries a name, as another Keep of
// the module could write to it then.
var removeHook func(d int)

// moveUp moves the directory name in d into top, under the next name
// ("removed-<r.moved>") that holds nothing there yet but, at most, an empty
// directory, which goes as everything in top does (moving a directory to
// another parent needs write permission on it: it gets mode 0700 first).
// Not renameat2's RENAME_NOREPLACE, which some file systems (NFS) refuse.
// A name taken (by an entry of top's, or by d itself, which the kernel
// refuses as ENOTEMPTY) is skipped: the names only grow, so each is tried
// once over the whole removal (and counts against its budget).
func moveUp(top, d int, name string, r *removal) error {
	fd, err := openOwnDir(d, name)
	if err != nil {
		return fmt.Errorf("opening %q: %w", name, err)
	}
	unix.Close(fd)
	for {
		if removeHook != nil {
			removeHook(top)
		}
		r.moved++
		err := unix.Renameat(d, name, top, fmt.Sprintf("removed-%d", r.moved))
		switch {
		case err == nil:
			return nil
		case !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.ENOTDIR):
			return fmt.Errorf("moving %q up: %w", name, err)
		}
		if r.left--; r.left < 0 {
			return errRemoveBudget
		}
	}
}

// openOwnDir opens the directory name beneath at (AT_FDCWD: a path) for
// listing, following no symbolic link, after giving it mode 0700 if its
// owner may not list, enter and change it.
func openOwnDir(at int, name string) (int, error) {
	p, err := unix.Openat(at, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(p)
	var st unix.Stat_t
	if err := unix.Fstat(p, &st); err != nil {
		return -1, err
	}
	if st.Mode&0o700 != 0o700 {
		// Through the descriptor's /proc link: fchmod refuses an
		// O_PATH descriptor, and the link names exactly the directory
		// it opened.
		if err := unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", p), 0o700); err != nil {
			return -1, fmt.Errorf("giving it mode 0700: %w", err)
		}
	}
	return unix.Openat(p, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// readNames reads up to n names from the start of the directory d, "."
// and ".." left out, through a descriptor of its own.
func readNames(d, n int) ([]string, error) {
	fd, err := unix.Openat(d, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	names, err := f.Readdirnames(n)
	if isEOF(err) {
		err = nil
	}
	return names, err
}

func openDirNoFollow(at int, name string) (*os.File, error) {
	fd, err := unix.Openat(at, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// engineCacheDir returns, for the name of a directory an engine makes in
// the cache, what the names of its files look like; nil for any other name.
// (No regular expressions: their compilation would cost every process of
// the enarx binary its start.)
//
//	wazero-<version>-<GOARCH>-<GOOS>  wazero's compilation cache: <64 hex>, <64 hex>.<digits>.tmp while written
//	enarx-wazero-<8 hex>              instrumented modules: <64 hex>, tmp-<digits>
//	wasmtime-<version>-<8 hex>        <64 hex>.cwasm, <64 hex>.sum, tmp-<digits>
func engineCacheDir(name string) func(string) bool {
	if rest, ok := strings.CutPrefix(name, "enarx-wazero-"); ok && isHex(rest, 8) {
		return func(f string) bool { return isHex(f, 64) || isTemp(f) }
	}
	if v, ok := strings.CutPrefix(name, "wazero-"); ok {
		if v, ok = strings.CutSuffix(v, "-"+runtime.GOARCH+"-"+runtime.GOOS); ok && isVersion(v) {
			return func(f string) bool {
				if isHex(f, 64) {
					return true
				}
				mid, ok := strings.CutSuffix(f, ".tmp")
				return ok && len(mid) > 65 && isHex(mid[:64], 64) && mid[64] == '.' && isDigits(mid[65:])
			}
		}
	}
	if v, ok := strings.CutPrefix(name, "wasmtime-"); ok {
		if i := strings.LastIndexByte(v, '-'); i > 0 && isVersion(v[:i]) && isHex(v[i+1:], 8) {
			return func(f string) bool {
				if isTemp(f) {
					return true
				}
				base, ok := strings.CutSuffix(f, ".cwasm")
				if !ok {
					base, ok = strings.CutSuffix(f, ".sum")
				}
				return ok && isHex(base, 64)
			}
		}
	}
	return nil
}

// isTemp: os.CreateTemp's name for the pattern "tmp-*".
func isTemp(f string) bool {
	d, ok := strings.CutPrefix(f, "tmp-")
	return ok && isDigits(d)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// isVersion: a module version as wazero and wasmtime-go name their
// directories ("v1.12.0", "v44.0.0", "dev", a pseudo-version).
func isVersion(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '.' || c == '-' || c == '+' || c == '_') {
			return false
		}
	}
	return true
}
