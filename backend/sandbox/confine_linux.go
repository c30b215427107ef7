package sandbox

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
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

// Layer names, in the order they are applied.
const (
	LayerUserNS   = "user namespace"
	LayerPIDNS    = "pid namespace"
	LayerMountNS  = "empty root (mount namespace + pivot_root)"
	LayerNetNS    = "network namespace"
	LayerIPCNS    = "ipc namespace"
	LayerUTSNS    = "uts namespace"
	LayerCaps     = "capabilities dropped"
	LayerRlimits  = "rlimits (address space, fds, core)"
	LayerNNP      = "no_new_privs"
	LayerLandlock = "landlock (no file system, no TCP bind/connect)"
	LayerSeccomp  = "seccomp filter"
)

// confineOptions are what the Keep process applies to itself.
type confineOptions struct {
	// Namespaces the host created the process in (clone flags).
	cloneFlags uintptr
	// maxFD is the highest fd the workload needs; RLIMIT_NOFILE allows a
	// fixed margin above it for the Go runtime (epoll, eventfd, accepted
	// connections).
	nfiles      int
	memoryLimit uint64
	// cacheDir is the host path of the module's compilation cache
	// directory, or "".
	cacheDir string
	// skip names layers to leave out (tests only).
	skip map[string]bool
	// boundingErr is what dropBoundingSet returned (run before confine).
	boundingErr error
}

// fdMargin is how many fds the Keep may open beyond the ones passed in:
// accepted connections and the Go runtime's netpoller.
const fdMargin = 1024

// addressSpaceSlack is added to the memory limit for RLIMIT_AS: the Go
// runtime, wazero's compiled code and stacks live outside the guest's linear
// memory, which wazero reserves at its maximum.
const addressSpaceSlack = 2 << 30

// confine applies every layer it can, in order, to the calling process and
// reports each one. Everything before seccomp runs with the capabilities
// the process has in its new user namespace; seccomp comes last so that the
// set-up calls need not be allowed.
func confine(o confineOptions) (layers []Layer, cacheDir string) {
	// Per-thread state (no_new_privs, Landlock, capabilities) is set on
	// this thread and spread to the others by AllThreadsSyscall or by
	// seccomp's TSYNC.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	last := time.Now()
	add := func(name string, err error, detail string) {
		if o.skip[name] {
			err = errSkipped
		}
		now := time.Now()
		l := Layer{Name: name, Enabled: err == nil, Detail: detail, Micros: now.Sub(last).Microseconds()}
		last = now
		if err != nil {
			l.Detail = err.Error()
		}
		layers = append(layers, l)
	}
	ns := func(flag uintptr, name string) {
		if o.cloneFlags&flag != 0 {
			add(name, nil, "")
		} else {
			add(name, errors.New("not available (the kernel refused to create it)"), "")
		}
	}
	ns(syscall.CLONE_NEWUSER, LayerUserNS)
	ns(syscall.CLONE_NEWPID, LayerPIDNS)

	if o.skip[LayerMountNS] {
		add(LayerMountNS, errSkipped, "")
	} else if o.cloneFlags&syscall.CLONE_NEWNS != 0 {
		cacheOK, err := emptyRoot(o.cacheDir)
		add(LayerMountNS, err, "")
		if err == nil && cacheOK {
			// The cache is reachable only through the empty root, which
			// shows nothing else; without it no path may be opened.
			cacheDir = keepCacheDir
		}
	} else {
		add(LayerMountNS, errors.New("no mount namespace"), "")
	}
	ns(syscall.CLONE_NEWNET, LayerNetNS)
	ns(syscall.CLONE_NEWIPC, LayerIPCNS)
	if o.cloneFlags&syscall.CLONE_NEWUTS != 0 {
		add(LayerUTSNS, unix.Sethostname([]byte("keep")), "")
	} else {
		add(LayerUTSNS, errors.New("not available"), "")
	}
	if allThreadsSupported() {
		add(LayerCaps, dropCapabilities(o.boundingErr), "")
	} else {
		add(LayerCaps, errNeedsPureGo, "")
	}
	add(LayerRlimits, setRlimits(o), fmt.Sprintf("RLIMIT_AS=%d RLIMIT_NOFILE=%d RLIMIT_CORE=0",
		o.memoryLimit+addressSpaceSlack, o.nfiles+4+fdMargin))
	// no_new_privs is set here on this thread; seccomp's TSYNC sets it on
	// every other thread (kernel/seccomp.c: seccomp_sync_threads).
	var nnpErr error
	if allThreadsSupported() {
		nnpErr = allThreadsPrctl(unix.PR_SET_NO_NEW_PRIVS, 1)
	} else {
		nnpErr = prctl(unix.PR_SET_NO_NEW_PRIVS, 1)
	}
	if o.skip[LayerLandlock] {
		add(LayerLandlock, errSkipped, "")
	} else if nnpErr == nil {
		add(LayerLandlock, restrictLandlock(cacheDir), "")
	} else {
		add(LayerLandlock, errors.New("needs no_new_privs"), "")
	}
	secErr := errSkipped
	if !o.skip[LayerSeccomp] {
		secErr = installSeccomp(cacheDir != "")
	}
	add(LayerSeccomp, secErr, fmt.Sprintf("%d system calls allowed, all others fail with EPERM", len(allowedSyscalls)))
	add(LayerNNP, nnpErr, "")
	return layers, cacheDir
}

// emptyRoot makes an empty, read-only tmpfs the root of this mount
// namespace and detaches the host's file system from it.
// keepCacheDir is where the module's compilation cache appears in the Keep.
const keepCacheDir = "/cache"

func emptyRoot(cacheDir string) (cacheOK bool, err error) {
	// Keep our mount changes from propagating back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return false, fmt.Errorf("making mounts private: %w", err)
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
		return false, fmt.Errorf("mounting tmpfs: %w", lastErr)
	}
	if err := os.Mkdir(mnt+"/old", 0o700); err != nil {
		return false, fmt.Errorf("preparing new root: %w", err)
	}
	// The module's own compilation cache; without it the Keep compiles
	// from scratch, which is slower but no less confined.
	cacheOK = cacheDir != "" && mountCache(cacheDir, mnt+keepCacheDir) == nil
	if err := unix.PivotRoot(mnt, mnt+"/old"); err != nil {
		return false, fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return false, fmt.Errorf("chdir /: %w", err)
	}
	if err := unix.Unmount("/old", unix.MNT_DETACH); err != nil {
		return false, fmt.Errorf("detaching host root: %w", err)
	}
	if err := unix.Rmdir("/old"); err != nil {
		return false, fmt.Errorf("removing old root: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return false, fmt.Errorf("making root read-only: %w", err)
	}
	return cacheOK, nil
}

func mountCache(src, target string) error {
	if err := os.Mkdir(target, 0o700); err != nil {
		return err
	}
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

var errSkipped = errors.New("left out by a test")

// errNeedsPureGo explains a layer that needs AllThreadsSyscall, which the
// Go runtime refuses in binaries that link cgo.
var errNeedsPureGo = errors.New("cannot be applied to every thread of a cgo binary; build enarx with CGO_ENABLED=0")

// allThreadsSupported reports whether syscall.AllThreadsSyscall works
// (it returns ENOTSUP when the binary links cgo). Probed once: every
// AllThreadsSyscall stops the world and signals every thread.
var allThreadsSupported = sync.OnceValue(func() bool {
	_, _, e := syscall.AllThreadsSyscall(unix.SYS_GETPID, 0, 0, 0)
	return e == 0
})

func prctl(option, arg uintptr) error {
	if _, _, e := unix.RawSyscall(unix.SYS_PRCTL, option, arg, 0); e != 0 {
		return fmt.Errorf("prctl(%d): %w", option, e)
	}
	return nil
}

// allThreadsPrctl runs prctl on every thread (prctl state is per thread and
// the Go runtime already has several).
func allThreadsPrctl(option, arg uintptr) error {
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, option, arg, 0); e != 0 {
		return fmt.Errorf("prctl(%d): %w", option, e)
	}
	return nil
}

// dropBoundingSet empties the bounding and ambient sets of every thread.
// It leaves the effective and permitted sets (which the empty root's
// mounts still need), so KeepMain calls it first thing, while it waits for
// the launch message: each of its 42 AllThreadsSyscalls stops the world
// and signals every thread, milliseconds in all on a busy machine.
// Threads the runtime starts later are cloned from threads that already
// dropped them.
func dropBoundingSet() error {
	if !allThreadsSupported() {
		return errNeedsPureGo
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 && e != unix.EINVAL {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, e)
		}
	}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); e != 0 && e != unix.EINVAL {
		return fmt.Errorf("clearing ambient capabilities: %w", e)
	}
	return nil
}

// dropCapabilities empties the effective, permitted and inheritable sets
// of every thread; bounding is the outcome of dropBoundingSet, which must
// have run before. In a user namespace these are the namespace's
// capabilities; without one they are the host's.
func dropCapabilities(bounding error) error {
	if bounding != nil {
		return bounding
	}
	capHdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	capData = [2]unix.CapUserData{}
	if _, _, e := syscall.AllThreadsSyscall(unix.SYS_CAPSET, uintptr(unsafe.Pointer(&capHdr)), uintptr(unsafe.Pointer(&capData[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

// capset's arguments live in package variables, not on a goroutine stack that
// could move while AllThreadsSyscall runs.
var (
	capHdr  unix.CapUserHeader
	capData [2]unix.CapUserData
)

func setRlimits(o confineOptions) error {
	set := func(res int, v uint64) error {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("setrlimit(%d, %d): %w", res, v, err)
		}
		return nil
	}
	if err := set(unix.RLIMIT_CORE, 0); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_NOFILE, uint64(o.nfiles+4+fdMargin)); err != nil {
		return err
	}
	if o.memoryLimit > 0 {
		if err := set(unix.RLIMIT_AS, o.memoryLimit+addressSpaceSlack); err != nil {
			return err
		}
	}
	return nil
}

// restrictLandlock forbids all file system access and TCP bind/connect,
// as far as the kernel's Landlock ABI allows. It overlaps with the empty
// root and seccomp on purpose: it still holds if either is missing.
//
// Hand-written (three system calls) rather than go-landlock, because
// go-landlock applies rulesets to all threads through libcap's psx package,
// which uses cgo whenever cgo is enabled; the Keep must stay pure Go.
func restrictLandlock(readDir string) error {
	abi, err := landlockABI()
	if err != nil {
		return fmt.Errorf("not supported by this kernel: %w", err)
	}
	// handled_access_fs: every right this ABI knows, with no rule granting
	// any of them back. Bits per ABI from include/uapi/linux/landlock.h.
	fsBits := uint64(1)<<13 - 1 // ABI 1: EXECUTE .. MAKE_SYM
	if abi >= 2 {
		fsBits |= 1 << 13 // REFER
	}
	if abi >= 3 {
		fsBits |= 1 << 14 // TRUNCATE
	}
	if abi >= 5 {
		fsBits |= 1 << 15 // IOCTL_DEV
	}
	attr := landlockRulesetAttr{handledAccessFS: fsBits}
	size := unsafe.Sizeof(uint64(0)) // ABI 1-3 know only handled_access_fs
	if abi >= 4 {
		attr.handledAccessNet = 1<<0 | 1<<1 // BIND_TCP | CONNECT_TCP
		size = 2 * unsafe.Sizeof(uint64(0))
	}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), size, 0)
	if e != 0 {
		return fmt.Errorf("landlock_create_ruleset: %w", e)
	}
	defer unix.Close(int(fd))
	if readDir != "" {
		// Read and write beneath the module's compilation cache only.
		dfd, err := unix.Open(readDir, unix.O_PATH|unix.O_CLOEXEC|unix.O_DIRECTORY, 0)
		if err != nil {
			return fmt.Errorf("opening the cache for a Landlock rule: %w", err)
		}
		defer unix.Close(dfd)
		// WRITE_FILE | READ_FILE | READ_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG
		rule := landlockPathBeneath{allowedAccess: 1<<1 | 1<<2 | 1<<3 | 1<<5 | 1<<7 | 1<<8, parentFD: int32(dfd)}
		if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, 1 /* LANDLOCK_RULE_PATH_BENEATH */, uintptr(unsafe.Pointer(&rule)), 0, 0, 0); e != 0 {
			return fmt.Errorf("landlock_add_rule: %w", e)
		}
	}
	switch {
	case abi >= 8: // LANDLOCK_RESTRICT_SELF_TSYNC: the kernel does every thread
		if _, _, e := unix.RawSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, unix.LANDLOCK_RESTRICT_SELF_TSYNC, 0); e != 0 {
			return fmt.Errorf("landlock_restrict_self: %w", e)
		}
	case allThreadsSupported():
		if _, _, e := syscall.AllThreadsSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
			return fmt.Errorf("landlock_restrict_self: %w", e)
		}
	default:
		return errNeedsPureGo
	}
	if abi < 4 {
		return fmt.Errorf("only file system access restricted: Landlock ABI %d has no network rules (needs 4)", abi)
	}
	return nil
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
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, 1 /* LANDLOCK_CREATE_RULESET_VERSION */)
	if e != 0 {
		return 0, e
	}
	return int(v), nil
}
