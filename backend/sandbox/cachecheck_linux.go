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
	args := []any{"keep_pid", pid, "module_sha256", filepath.Base(dir), "dir", dir, "found", problem}
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

// removeCacheDir removes dir and everything beneath it. A directory the
// Keep made without read, search or write permission for its owner (the
// Keep runs as the host's user unless enarx runs as root) would stop
// os.RemoveAll; then every directory beneath dir is given mode 0700 first,
// nothing followed, and the removal tried again.
func removeCacheDir(dir string) error {
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	fd, oerr := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if oerr != nil {
		return err
	}
	ownDirs(fd)
	unix.Close(fd)
	return os.RemoveAll(dir)
}

// ownDirs gives the directory fd (an O_PATH descriptor, so opened whatever
// its mode) and every directory beneath it mode 0700, following no
// symbolic link. Errors are left to the removal that follows.
func ownDirs(fd int) {
	// Through the descriptor's /proc link: fchmod refuses an O_PATH
	// descriptor, and the link names exactly the directory it opened.
	if unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), 0o700) != nil {
		return
	}
	d, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(d), "")
	names, _ := f.Readdirnames(-1)
	for _, n := range names {
		sub, err := unix.Openat(d, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // not a directory, or gone
		}
		ownDirs(sub)
		unix.Close(sub)
	}
	f.Close()
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
// directories ("v1.12.0", "v39.0.1", "dev", a pseudo-version).
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
