package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layer is one confinement layer and whether the Keep process has it.
type Layer struct {
	Name    string `json:"name"`
	Enabled bool   `json:"enabled"`
	Detail  string `json:"detail,omitempty"`
	// Micros is how long applying the layer took.
	Micros int64 `json:"micros,omitempty"`
}

// Layer names, in the order the Keep applies them (confineProcess, then,
// after reading its payloads, confineLimits).
const (
	LayerUserNS   = "user namespace"
	LayerPIDNS    = "pid namespace"
	LayerMountNS  = "empty root (mount namespace + pivot_root)"
	LayerNetNS    = "network namespace"
	LayerIPCNS    = "ipc namespace"
	LayerUTSNS    = "uts namespace"
	LayerNNP      = "no_new_privs"
	LayerLandlock = "landlock (no file system, no TCP bind/connect)"
	LayerCaps     = "capabilities dropped"
	LayerRlimits  = "rlimits (address space, fds, core)"
	LayerSeccomp  = "seccomp filter"
)

// confineOptions are what the Keep process applies to itself.
type confineOptions struct {
	// Namespaces the host created the process in (clone flags).
	cloneFlags uintptr
	// nfiles is the number of workload fds; RLIMIT_NOFILE allows a fixed
	// margin above it for the Go runtime (epoll, eventfd, accepted
	// connections).
	nfiles int
	// linearMemory is the address space the engine reserves for the
	// guest's linear memory (keep.ReservedAddressSpace), to which
	// RLIMIT_AS adds addressSpaceSlack; 0: no RLIMIT_AS.
	linearMemory uint64
	// threads is the most CPUs the Keep may run on (addressSpaceSlack).
	threads int
	// cacheDir is the host path of the module's compilation cache
	// directory, or "".
	cacheDir string
	// dirs are the host directories passed for [[files]] entries of kind
	// "dir" (sources host and sealed): the only file system, besides the
	// cache, the Keep may reach.
	dirs []passedDir
	// fileFDs are the descriptors of the other passed [[files]] entries
	// (stdio, sockets): none of them may be a directory (anchorFreeFiles).
	fileFDs []int
	// skip names layers to leave out (tests only).
	skip map[string]bool
}

// passedDir is a directory descriptor the host passed.
type passedDir struct {
	// index is the [[files]] entry's index, fd its descriptor in the Keep.
	index, fd int
	readOnly  bool
	// path is its host path (see launchDir.Path).
	path string
}

// fdMargin is how many fds the Keep may open beyond the ones passed in:
// accepted connections and the Go runtime's netpoller.
const fdMargin = 1024

// maxKeepTasks is the Keep's RLIMIT_NPROC when it has its own user
// namespace, where the kernel (5.14 and later) counts the limit per user
// namespace and user: the Keep's own threads, not every process of its
// host uid. Seccomp lets a Keep start threads only, but as many as it
// likes, each a task, and a pid, of the host: without a bound, one whose
// workload escaped the wasm runtime could clone threads until the host's
// pid_max or threads-max, and nothing on the host could fork. The Go
// runtime itself refuses more than 10 000 threads (runtime/debug's
// SetMaxThreads default), so no Keep the Go code runs comes near; the
// margin is for threads of C code (wasmtime's compilation pool).
const maxKeepTasks = 10_000 + 1024

// addressSpaceSlack is added to the address space the engine reserves for
// the guest's linear memory (keep.ReservedAddressSpace: wazero the memory
// limit, wasmtime 4 GiB and guard pages whatever the limit) for RLIMIT_AS,
// for a Keep that may run on threads CPUs: the Go runtime, compiled code
// and stacks live outside it. A race
// detector build (a test binary) has the detector's shadow memory besides
// (raceAddressSpace), a cgo build what its C code reserves
// (cgoAddressSpace).
func addressSpaceSlack(threads int) uint64 {
	return 2<<30 + raceAddressSpace + cgoAddressSpace(threads)
}

// layerLog collects layer reports with the time each took.
type layerLog struct {
	skip   map[string]bool
	last   time.Time
	layers []Layer
}

func newLayerLog(skip map[string]bool, layers []Layer) *layerLog {
	return &layerLog{skip: skip, last: time.Now(), layers: layers}
}

func (g *layerLog) add(name string, err error, detail string) {
	if g.skip[name] {
		err = errSkipped
	}
	now := time.Now()
	l := Layer{Name: name, Enabled: err == nil, Detail: detail, Micros: now.Sub(g.last).Microseconds()}
	g.last = now
	if err != nil {
		l.Detail = err.Error()
	}
	g.layers = append(g.layers, l)
}

// confineProcess applies the namespace, empty root, no_new_privs,
// capability and Landlock layers, the last three to every thread
// (allThreads), and checks that no capability is left. It reports each layer and whether the
// module's cache is mounted at keepCacheDir.
func confineProcess(o confineOptions) (layers []Layer, cacheOK bool) {
	g := newLayerLog(o.skip, nil)
	ns := func(flag uintptr, name string) {
		if o.cloneFlags&flag != 0 {
			g.add(name, nil, "")
		} else {
			g.add(name, errors.New("not available (the kernel refused to create it)"), "")
		}
	}
	ns(syscall.CLONE_NEWUSER, LayerUserNS)
	ns(syscall.CLONE_NEWPID, LayerPIDNS)
	// A cgo build reaches every thread through a /proc of the Keep's
	// own pid namespace (threads_linux.go): the empty root holds one.
	ownProc := ownProcNeeded && o.cloneFlags&syscall.CLONE_NEWPID != 0 && !o.skip[testSkipOwnProc]
	switch {
	case o.skip[LayerMountNS]:
		g.add(LayerMountNS, errSkipped, "")
	case o.cloneFlags&syscall.CLONE_NEWNS == 0:
		g.add(LayerMountNS, errors.New("no mount namespace"), "")
	default:
		var err error
		var notes []string
		cacheOK, notes, err = emptyRoot(o.cacheDir, o.dirs, ownProc)
		if err == nil {
			var replaced []string
			replaced, err = anchorFreeFiles(o.fileFDs)
			notes = append(notes, replaced...)
		}
		if err == nil && ownProc && ownProcReady() == nil {
			notes = append([]string{"holds only a read-only /proc of the Keep's own pid namespace (subset=pid), which this cgo build needs to reach every thread and Landlock closes"}, notes...)
		}
		g.add(LayerMountNS, err, strings.Join(notes, "; "))
	}
	if ownProc && o.skip[LayerMountNS] && ownProcReady() != nil && o.cloneFlags&syscall.CLONE_NEWNS != 0 {
		// No empty root (left out by a test): the per-thread layers
		// still need this pid namespace's /proc.
		if unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") == nil {
			_ = mountOwnProc("/proc")
		}
	}
	ns(syscall.CLONE_NEWNET, LayerNetNS)
	ns(syscall.CLONE_NEWIPC, LayerIPCNS)
	if o.cloneFlags&syscall.CLONE_NEWUTS != 0 {
		g.add(LayerUTSNS, unix.Sethostname([]byte("keep")), "")
	} else {
		g.add(LayerUTSNS, errors.New("not available"), "")
	}
	// A cgo build's Keep set no_new_privs, emptied its bounding set and
	// cleared its ambient capabilities before the Go runtime started a
	// thread (earlySteps); checkAllThreads reads them back from every
	// thread.
	earlyNNP, earlyBounding, earlyAmbient := earlySteps()
	var nnpErr error
	nnpDetail := ""
	if earlyNNP {
		nnpDetail = "set before the Go runtime started its threads"
	} else if nnpErr = allThreads(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); nnpErr != nil {
		nnpErr = fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", nnpErr)
	}
	g.add(LayerNNP, nnpErr, nnpDetail)
	// Capabilities before Landlock: in a cgo build allThreads lists the
	// threads in /proc, which Landlock then closes.
	capErr := dropCapabilities(!earlyBounding, !earlyAmbient)
	if capErr == nil {
		capErr = checkNoCapabilities()
	}
	if capErr == nil && nnpErr == nil && ownProcNeeded {
		capErr = checkAllThreads()
	}
	g.add(LayerCaps, capErr, "")
	switch {
	case o.skip[LayerLandlock]:
		g.add(LayerLandlock, errSkipped, "")
	case nnpErr != nil:
		g.add(LayerLandlock, errors.New("needs no_new_privs"), "")
	default:
		dir := ""
		if cacheOK {
			dir = keepCacheDir
		}
		detail := ""
		if len(o.dirs) > 0 {
			detail = fmt.Sprintf("file system access only beneath the %d passed directories", len(o.dirs))
		}
		g.add(LayerLandlock, restrictLandlock(dir, o.dirs), detail)
	}
	return g.layers, cacheOK
}

// confineLimits sets the rlimits and installs seccomp on every thread, and
// appends the two layers to those confineProcess applied.
func confineLimits(o confineOptions, layers []Layer, cacheOK bool) []Layer {
	g := newLayerLog(o.skip, layers)
	detail, err := setRlimits(o)
	g.add(LayerRlimits, err, detail)
	secErr := errSkipped
	if !o.skip[LayerSeccomp] {
		secErr = installSeccomp(cacheOK, len(o.dirs) > 0)
	}
	g.add(LayerSeccomp, secErr, fmt.Sprintf("%d system calls allowed, all others fail with EPERM", len(seccompNames(cacheOK, len(o.dirs) > 0))))
	return g.layers
}

// keepCacheDir is where the module's compilation cache appears in the Keep.
const keepCacheDir = "/cache"

// keepDirsDir is where the passed directories are mounted in the Keep's
// root, each at its [[files]] index.
const keepDirsDir = "/files"

// emptyRoot makes an empty, read-only tmpfs the root of this mount
// namespace and detaches the host's file system from it. With ownProc
// (a cgo build in its own pid namespace) the root also holds /proc, a
// procfs of the Keep's pid namespace (mountOwnProc). Each passed
// directory is bind-mounted at keepDirsDir/<index> (read-only if it is)
// and its descriptor replaced by one opened through that mount (see
// reopenDir).
func emptyRoot(cacheDir string, dirs []passedDir, ownProc bool) (cacheOK bool, notes []string, err error) {
	// Keep our mount changes from propagating back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return false, nil, fmt.Errorf("making mounts private: %w", err)
	}
	// The module's cache is opened before the tmpfs below is mounted: it
	// may lie beneath the tmpfs's mount point (a cache under /tmp), which
	// would hide it.
	cacheFD := -1 // none: the Keep compiles without a cache
	if cacheDir != "" {
		if fd, err := unix.Open(cacheDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			cacheFD = fd
			defer unix.Close(fd)
		}
	}
	// A directory the Keep user cannot find by its path keeps the host's
	// mount (Landlock still confines it; see mountDir for what it does
	// not), and the layer's detail says so.
	dirFDs := make([]int, len(dirs))
	for i, d := range dirs {
		pfd, err := openDirPath(d)
		dirFDs[i] = pfd
		if err != nil {
			notes = append(notes, fmt.Sprintf("files[%d] not mounted in it, so stat and readlink beyond it reach the host's file system (%v)", d.index, err))
			continue
		}
		defer unix.Close(pfd)
	}
	var mnt string
	var lastErr error
	for _, d := range []string{"/tmp", "/mnt", "/proc", "/dev"} {
		if err := unix.Mount("keep", d, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=16k,mode=0755"); err != nil {
			lastErr = err
			continue
		}
		mnt = d
		break
	}
	if mnt == "" {
		return false, nil, fmt.Errorf("mounting tmpfs: %w", lastErr)
	}
	if err := os.Mkdir(mnt+"/old", 0o700); err != nil {
		return false, nil, fmt.Errorf("preparing new root: %w", err)
	}
	if ownProc {
		// Without it the root is still empty, and the per-thread layers
		// say why they are missing (allThreads: errNoOwnProc).
		if err := os.Mkdir(mnt+"/proc", 0o555); err != nil {
			return false, nil, fmt.Errorf("preparing new root: %w", err)
		}
		if err := mountOwnProc(mnt + "/proc"); err != nil {
			notes = append(notes, err.Error())
			if err := unix.Rmdir(mnt + "/proc"); err != nil {
				return false, nil, fmt.Errorf("preparing new root: %w", err)
			}
		}
	}
	// The module's own compilation cache; without it the Keep compiles
	// from scratch, which is slower but no less confined.
	cacheOK = cacheFD >= 0 && mountCache(fmt.Sprintf("/proc/self/fd/%d", cacheFD), mnt+keepCacheDir) == nil
	for i, d := range dirs {
		if dirFDs[i] < 0 {
			continue
		}
		if err := mountDir(d, dirFDs[i], fmt.Sprintf("%s%s/%d", mnt, keepDirsDir, d.index)); err != nil {
			return false, nil, fmt.Errorf("mounting the directory of files[%d]: %w", d.index, err)
		}
	}
	if err := unix.PivotRoot(mnt, mnt+"/old"); err != nil {
		return false, nil, fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return false, nil, fmt.Errorf("chdir /: %w", err)
	}
	if err := unix.Unmount("/old", unix.MNT_DETACH); err != nil {
		return false, nil, fmt.Errorf("detaching host root: %w", err)
	}
	if err := unix.Rmdir("/old"); err != nil {
		return false, nil, fmt.Errorf("removing old root: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return false, nil, fmt.Errorf("making root read-only: %w", err)
	}
	for i, d := range dirs {
		if dirFDs[i] >= 0 {
			if err := reopenDir(d); err != nil {
				return false, nil, err
			}
		}
	}
	return cacheOK, notes, nil
}

// anchorFreeFiles replaces each of fds (passed [[files]] entries other
// than kind "dir") that is a directory — a directory given as enarx's stdin
// (`enarx run app.wasm < dir`) — with a descriptor of the empty root, just
// made. The host's descriptor is in the host's mount, and a path relative
// to it (newfstatat, which the Keep may always make; readlinkat and
// utimensat with directories) reaches the host's whole file system, which
// Landlock does not govern for these calls; the empty root's is a
// directory too (a read still fails with EISDIR, as in the nil backend)
// with nothing of the host's beyond it. It notes each one it replaced.
func anchorFreeFiles(fds []int) ([]string, error) {
	var notes []string
	for _, fd := range fds {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		root, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("opening the empty root for descriptor %d, a directory: %w", fd, err)
		}
		err = unix.Dup3(root, fd, unix.O_CLOEXEC)
		unix.Close(root)
		if err != nil {
			return nil, fmt.Errorf("replacing descriptor %d, a directory: %w", fd, err)
		}
		notes = append(notes, fmt.Sprintf("descriptor %d, a host directory outside a kind = \"dir\" entry, replaced by the empty root", fd))
	}
	return notes, nil
}

// Why the passed directories are mounted. The host opened each in its own
// file system, and a descriptor keeps its mount: without this, ".." from
// the directory (or a symlink the host swaps in) would lead a lookup into
// the host's detached root. Landlock refuses every open there, but it does
// not govern stat, readlink or O_PATH opens, so a Keep that escaped the
// wasm runtime could still learn which host files exist, their sizes and
// times. Re-opened through a bind mount whose root is the directory
// itself, ".." at the directory stops in the Keep's empty root. A
// read-only entry's mount is read-only: a write fails with EROFS even
// where Landlock is missing.

// openDirPath finds the passed directory d by its path in this mount
// namespace: the descriptor's mount belongs to the host's mount namespace,
// and the kernel binds only from this one's (EINVAL otherwise). It returns
// an O_PATH descriptor of the same directory (device and inode checked).
// Called before anything is mounted over the path (the tmpfs of the new
// root may hide it).
func openDirPath(d passedDir) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, errors.New("the host passed something that is not a directory")
	}
	pfd, err := unix.Open(d.path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("the Keep user cannot reach %s by its path (its parent directories must be searchable by the Keep's host uid): %w", d.path, err)
	}
	var pst unix.Stat_t
	if err := unix.Fstat(pfd, &pst); err != nil || pst.Dev != st.Dev || pst.Ino != st.Ino {
		unix.Close(pfd)
		return -1, fmt.Errorf("%s is no longer the directory the host opened", d.path)
	}
	return pfd, nil
}

// mountDir bind-mounts the passed directory d (pfd: see openDirPath) at
// target, read-only if d is, never with setuid, devices or execution. The remount keeps the
// mount flags the host's mount has (in a user namespace the kernel locks
// them; changing one is EPERM).
func mountDir(d passedDir, pfd int, target string) error {
	if err := os.MkdirAll(target, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", pfd), target, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(pfd, &fs); err != nil {
		return err
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if d.readOnly || fs.Flags&unix.ST_RDONLY != 0 {
		flags |= unix.MS_RDONLY
	}
	switch {
	case fs.Flags&unix.ST_NOATIME != 0:
		flags |= unix.MS_NOATIME
	case fs.Flags&unix.ST_RELATIME != 0:
		flags |= unix.MS_RELATIME
	default:
		flags |= unix.MS_STRICTATIME
	}
	if fs.Flags&unix.ST_NODIRATIME != 0 {
		flags |= unix.MS_NODIRATIME
	}
	return unix.Mount("", target, "", flags, "")
}

// reopenDir replaces the passed directory's descriptor with one opened
// through its mount in the new root (mountDir), at the same number: the
// Keep finds it where the launch header says.
func reopenDir(d passedDir) error {
	fd, err := unix.Open(fmt.Sprintf("%s/%d", keepDirsDir, d.index), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the mounted directory of files[%d]: %w", d.index, err)
	}
	err = unix.Dup3(fd, d.fd, unix.O_CLOEXEC)
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("replacing the descriptor of files[%d]: %w", d.index, err)
	}
	return nil
}

// mountCache binds the module's cache directory at target. It is not
// noexec: the wasmtime engine maps cached code straight from its file
// (PROT_EXEC on a file mapping, which noexec refuses) rather than copying
// it, and a noexec mount would add nothing here, since the Keep may make
// anonymous memory executable anyway (both engines compile to it); execve
// stays refused by seccomp.
func mountCache(src, target string) error {
	if err := os.Mkdir(target, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV, "")
}

var errSkipped = errors.New("left out by a test")

// dropCapabilities empties the bounding set and the ambient set (each
// unless its flag is false: it is empty already) and then the effective,
// permitted and inheritable sets of every thread.
func dropCapabilities(bounding, ambient bool) error {
	for c := 0; bounding; c++ {
		err := allThreads(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0)
		if errors.Is(err, unix.EINVAL) { // past the kernel's last capability
			break
		}
		if err != nil {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if ambient {
		err := allThreads(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0)
		if err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("clearing ambient capabilities: %w", err)
		}
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := allThreads(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	return nil
}

// checkNoCapabilities verifies that this thread holds no capability in any
// set (allThreads made the same calls, with the same results, on every
// other thread).
func checkNoCapabilities() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	for i, d := range data {
		if d.Effective|d.Permitted|d.Inheritable != 0 {
			return fmt.Errorf("capabilities remain (word %d: effective %#x permitted %#x inheritable %#x)", i, d.Effective, d.Permitted, d.Inheritable)
		}
	}
	for c := 0; ; c++ {
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the bounding set: %w", err)
		}
		if in != 0 {
			return fmt.Errorf("capability %d remains in the bounding set", c)
		}
	}
	return nil
}

// setRlimits sets the Keep's resource limits and says which. They only
// ever lower what the host gave the process: a host limit already below
// one here (a container spec's, which the containerd shim gives its keep
// host) stays, where raising it would fail without CAP_SYS_RESOURCE and
// should not be done with it.
func setRlimits(o confineOptions) (string, error) {
	var set []string
	lower := func(name string, res int, v uint64) error {
		var cur unix.Rlimit
		if err := unix.Getrlimit(res, &cur); err != nil {
			return fmt.Errorf("getrlimit(%s): %w", name, err)
		}
		v = min(v, cur.Max)
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("setrlimit(%s, %d): %w", name, v, err)
		}
		set = append(set, fmt.Sprintf("%s=%d", name, v))
		return nil
	}
	detail := func() string { return strings.Join(set, " ") }
	if err := lower("RLIMIT_CORE", unix.RLIMIT_CORE, 0); err != nil {
		return detail(), err
	}
	// No core at all: RLIMIT_CORE does not stop a core_pattern that
	// pipes the core to a helper (systemd-coredump, apport), which the
	// kernel runs as root in the host's namespaces to read the crashed
	// process — one whose workload escaped wasm could crash at will.
	// Nothing dumps a process that is not dumpable.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return detail(), fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	set = append(set, "not dumpable")
	if err := lower("RLIMIT_NOFILE", unix.RLIMIT_NOFILE, uint64(o.nfiles+4+fdMargin)); err != nil {
		return detail(), err
	}
	// Without its own user namespace the Keep's tasks would be counted
	// with every process of its host uid (maxKeepTasks).
	if o.cloneFlags&syscall.CLONE_NEWUSER != 0 {
		if err := lower("RLIMIT_NPROC", unix.RLIMIT_NPROC, maxKeepTasks); err != nil {
			return detail(), err
		}
	}
	if o.linearMemory > 0 {
		if err := lower("RLIMIT_AS", unix.RLIMIT_AS, o.linearMemory+addressSpaceSlack(o.threads)); err != nil {
			return detail(), err
		}
	}
	return detail(), nil
}

// restrictLandlock forbids, for every thread, all file system access and
// TCP bind/connect, as far as the kernel's Landlock ABI allows, except
// read and write beneath cacheDir (if not ""). It overlaps with the empty
// root and seccomp on purpose: it still holds if either is missing.
// Nothing anywhere may be executed.
//
// Hand-written (three system calls) rather than go-landlock: its rules
// name paths, and these are descriptors the host passed (a path could be
// swapped between the check and the rule); it restricts every thread
// through the same psx package (allThreads).
//
// Each passed directory gets a rule beneath it (dirRights): read files and
// list directories, and for a read-write one create, remove, rename and
// truncate beneath it too. Nothing else is granted: no execution, no
// devices, sockets or FIFOs.
func restrictLandlock(cacheDir string, dirs []passedDir) error {
	abi, err := landlockABI()
	if err != nil {
		return fmt.Errorf("not supported by this kernel: %w", err)
	}
	// handled_access_fs: every right this ABI knows, with no rule granting
	// any of them back. Bits per ABI from include/uapi/linux/landlock.h.
	fsBits := uint64(1)<<13 - 1 // ABI 1: EXECUTE .. MAKE_SYM
	if abi >= 2 {
		fsBits |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		fsBits |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		fsBits |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	attr := landlockRulesetAttr{handledAccessFS: fsBits}
	size := unsafe.Sizeof(uint64(0)) // ABI 1-3 know only handled_access_fs
	if abi >= 4 {
		attr.handledAccessNet = unix.LANDLOCK_ACCESS_NET_BIND_TCP | unix.LANDLOCK_ACCESS_NET_CONNECT_TCP
		size = 2 * unsafe.Sizeof(uint64(0))
	}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	defer unix.Close(int(fd))
	allow := func(what string, parent int, access uint64) error {
		rule := landlockPathBeneath{allowedAccess: access, parentFD: int32(parent)}
		if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH, uintptr(unsafe.Pointer(&rule)), 0, 0, 0); e != 0 {
			return fmt.Errorf("landlock_add_rule for %s: %w", what, e)
		}
		return nil
	}
	if cacheDir != "" {
		dfd, err := unix.Open(cacheDir, unix.O_PATH|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("opening the cache for a Landlock rule: %w", err)
		}
		defer unix.Close(dfd)
		if err := allow("the cache", dfd, unix.LANDLOCK_ACCESS_FS_WRITE_FILE|unix.LANDLOCK_ACCESS_FS_READ_FILE|unix.LANDLOCK_ACCESS_FS_READ_DIR|
			unix.LANDLOCK_ACCESS_FS_REMOVE_FILE|unix.LANDLOCK_ACCESS_FS_MAKE_DIR|unix.LANDLOCK_ACCESS_FS_MAKE_REG); err != nil {
			return err
		}
	}
	for _, d := range dirs {
		if err := allow(fmt.Sprintf("the directory of files[%d]", d.index), d.fd, dirRights(abi, d.readOnly)); err != nil {
			return err
		}
	}
	if ownProcNeeded {
		// psx lists the threads again after the calling thread is
		// restricted (threads_linux.go): it may list the thread ids, and
		// nothing beneath them but more directory entries.
		if err := ownProcReady(); err != nil {
			return err
		}
		tfd, err := unix.Open(fmt.Sprintf("/proc/%d/task", os.Getpid()), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening the thread list for a Landlock rule: %w", err)
		}
		defer unix.Close(tfd)
		if err := allow("the thread list", tfd, unix.LANDLOCK_ACCESS_FS_READ_DIR); err != nil {
			return err
		}
	}
	if err := allThreads(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); err != nil {
		return fmt.Errorf("landlock_restrict_self: %w", err)
	}
	if abi < 4 {
		return fmt.Errorf("only file system access restricted: Landlock ABI %d has no network rules (needs 4)", abi)
	}
	return nil
}

// dirRights are the Landlock rights beneath a passed directory for
// Landlock ABI abi: what the WASI path and fd calls over the directory
// need (keep/internal/vfs/hostfs), read-only or read-write.
//
// ABI 1 knows no REFER: it refuses every rename or link into another
// directory (EXDEV), even beneath one rule; rename within one directory
// works. ABI 2 adds REFER, granted here beneath the rule, so renames and
// links between the directory's subdirectories work. ABI 3 adds TRUNCATE
// (open with O_TRUNC, ftruncate): granted for read-write only; ABI 1 and
// 2 cannot refuse truncation to a file opened for writing, which a
// read-only directory's read-only mount still refuses.
func dirRights(abi int, readOnly bool) uint64 {
	r := uint64(unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR)
	if readOnly {
		return r
	}
	r |= unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SYM
	if abi >= 2 {
		r |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		r |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	return r
}

// landlockPathBeneath is struct landlock_path_beneath_attr, which the
// kernel declares packed (12 bytes).
type landlockPathBeneath struct {
	allowedAccess uint64
	parentFD      int32
}

type landlockRulesetAttr struct {
	handledAccessFS  uint64
	handledAccessNet uint64
	scoped           uint64
}

func landlockABI() (int, error) {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}
