package sandbox

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// runtimeFile is a file the dynamic loader opens to start the Keep's
// second stage: the ELF interpreter or a shared library.
type runtimeFile struct {
	// path is where the loader looks for it: the interpreter at the path
	// written in the executable (PT_INTERP), which the kernel opens; a
	// library at the path this process mapped it from, which is in the
	// loader's default search path (the cache in /etc/ld.so.cache is not
	// in the empty root).
	path string
	// fd is an O_PATH descriptor of the file.
	fd     int
	interp bool
}

// runtimeFiles are what a dynamically linked (cgo) enarx needs to start
// again; none for a static (CGO_ENABLED=0) one.
type runtimeFiles struct{ files []runtimeFile }

func (r *runtimeFiles) close() {
	if r == nil {
		return
	}
	for _, f := range r.files {
		unix.Close(f.fd)
	}
}

// openRuntimeFiles finds and opens the runtime files of the executable
// exeFD, which is this process's own: its ELF interpreter and the shared
// objects this process has mapped (a new process of the same binary maps
// the same ones at start-up).
func openRuntimeFiles(exeFD int) (*runtimeFiles, error) {
	interp, err := elfInterpreter(exeFD)
	if err != nil {
		return nil, err
	}
	rt := &runtimeFiles{}
	if interp == "" {
		return rt, nil // static: nothing to load
	}
	var exe unix.Stat_t
	if err := unix.Fstat(exeFD, &exe); err != nil {
		return nil, fmt.Errorf("fstat of the Keep executable: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil, fmt.Errorf("listing the shared libraries of a cgo build: %w", err)
	}
	libs, err := mappedFiles(maps, exe)
	if err != nil {
		return nil, err
	}
	add := func(path string, isInterp bool) error {
		fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening %s, which the re-executed Keep needs: %w", path, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			unix.Close(fd)
			return fmt.Errorf("%s, which the re-executed Keep needs, is not a regular file", path)
		}
		rt.files = append(rt.files, runtimeFile{path: path, fd: fd, interp: isInterp})
		return nil
	}
	if err := add(interp, true); err != nil {
		rt.close()
		return nil, err
	}
	var in unix.Stat_t
	if err := unix.Fstat(rt.files[0].fd, &in); err != nil {
		rt.close()
		return nil, fmt.Errorf("fstat of %s: %w", interp, err)
	}
	for _, l := range libs {
		if l.dev == in.Dev && l.ino == in.Ino {
			continue // the interpreter, mapped from its real path
		}
		if err := add(l.path, false); err != nil {
			rt.close()
			return nil, err
		}
	}
	return rt, nil
}

// elfInterpreter returns the PT_INTERP path of the executable fd, or ""
// for a static executable.
func elfInterpreter(fd int) (string, error) {
	f, err := elf.NewFile(preader(fd))
	if err != nil {
		return "", fmt.Errorf("reading the Keep executable: %w", err)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		if p.Filesz > unix.PathMax {
			return "", errors.New("the Keep executable's interpreter path is too long")
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return "", fmt.Errorf("reading the Keep executable's interpreter path: %w", err)
		}
		path := string(bytes.TrimRight(b, "\x00"))
		if !strings.HasPrefix(path, "/") {
			return "", fmt.Errorf("the Keep executable's interpreter %q is not an absolute path", path)
		}
		return path, nil
	}
	return "", nil
}

// preader reads a file descriptor at offsets without an *os.File, whose
// finalizer could close a descriptor the second stage needs.
type preader int

func (p preader) ReadAt(b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(int(p), b[n:], off+int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.EOF
		}
		n += m
	}
	return n, nil
}

// mappedFile is a file named in /proc/<pid>/maps.
type mappedFile struct {
	path     string
	dev, ino uint64
}

// mappedFiles returns the distinct files in a /proc/<pid>/maps listing,
// except exe.
func mappedFiles(maps []byte, exe unix.Stat_t) ([]mappedFile, error) {
	var out []mappedFile
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// address perms offset dev inode pathname
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) < 6 {
			continue
		}
		path := strings.TrimLeft(fields[5], " ")
		ino, err := strconv.ParseUint(fields[4], 10, 64)
		if err != nil || ino == 0 || !strings.HasPrefix(path, "/") {
			continue // anonymous, [heap], [vdso], …
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(fields[3], "%x:%x", &major, &minor); err != nil {
			return nil, fmt.Errorf("/proc/self/maps: bad device %q", fields[3])
		}
		dev := unix.Mkdev(major, minor)
		if ino == exe.Ino && dev == exe.Dev {
			continue
		}
		// A library replaced on disk since it was mapped: the loader
		// will open the file now at its path.
		path = strings.TrimSuffix(path, " (deleted)")
		if !seen[path] {
			seen[path] = true
			out = append(out, mappedFile{path: path, dev: dev, ino: ino})
		}
	}
	return out, sc.Err()
}

// closeOnExecAbove marks every descriptor above fd close-on-exec: those the
// host passed on purpose lie at or below it, anything above (a descriptor
// enarx itself inherited without close-on-exec) must not reach the Keep's
// second stage. It needs /proc on kernels before 5.11 (no close_range
// CLOSE_RANGE_CLOEXEC).
func closeOnExecAbove(fd int) error {
	if unix.CloseRange(uint(fd+1), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return nil
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing inherited descriptors: %w", err)
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n <= fd {
			continue
		}
		if _, err := unix.FcntlInt(uintptr(n), unix.F_SETFD, unix.FD_CLOEXEC); err != nil && !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("marking descriptor %d close-on-exec: %w", n, err)
		}
	}
	return nil
}

// execKeep re-executes the Keep executable exeFD from the calling thread
// (execveat with AT_EMPTY_PATH: the empty root has no path to it); exeFD
// is closed by the exec. It returns only on failure.
//
// syscall.Exec would also hold the runtime's exec lock, which keeps the
// runtime from creating a thread during the exec, but it takes only a
// path. A thread created meanwhile is killed by the exec with every other
// thread but the caller's.
func execKeep(exeFD int, argv, env []string) error {
	if _, err := unix.FcntlInt(uintptr(exeFD), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return fmt.Errorf("marking the executable's descriptor close-on-exec: %w", err)
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	empty := []byte{0}
	_, _, e := unix.Syscall6(unix.SYS_EXECVEAT, uintptr(exeFD), uintptr(unsafe.Pointer(&empty[0])),
		uintptr(unsafe.Pointer(&argvp[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH, 0)
	return fmt.Errorf("execveat: %w", e)
}
