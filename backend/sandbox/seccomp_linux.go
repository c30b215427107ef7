package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

//go:generate go test -run ^TestSeccompPrograms$ -update-seccomp .

// allowedSyscall is one entry of the Keep's seccomp allow-list.
type allowedSyscall struct {
	name   string
	reason string
	// conds, if set, restrict the call's arguments; the call is allowed
	// when any one of the condition sets matches.
	conds []argConds
}

// argCond is one test of a system call argument: equal to value, or (with
// bitsSet) having every bit of value set.
type argCond struct {
	arg     uint32
	bitsSet bool
	value   uint64
}

// argConds hold together.
type argConds []argCond

func argEq(arg uint32, v uint64) argConds { return argConds{{arg: arg, value: v}} }

func argBits(arg uint32, v uint64) argConds { return argConds{{arg: arg, bitsSet: true, value: v}} }

// allowedSyscalls is the complete list of system calls the confined Keep
// process may make once set-up is done. Everything else — socket, connect,
// bind, listen, open/openat, execve, fork, ptrace, mount, kill of other
// processes, … — fails with EPERM. The list is what the Go runtime, wazero's
// compiler and I/O on the already-open fds need, and nothing more.
var allowedSyscalls = []allowedSyscall{
	// I/O on the fds the host passed (stdio, sockets, the control channel).
	{name: "read", reason: "fd_read, control channel"},
	{name: "write", reason: "fd_write, logs, control channel"},
	{name: "readv", reason: "fd_read with iovecs"},
	{name: "writev", reason: "fd_write with iovecs"},
	{name: "pread64", reason: "fd_pread on passed files"},
	{name: "pwrite64", reason: "fd_pwrite on passed files"},
	{name: "lseek", reason: "fd_seek/fd_tell on passed files"},
	{name: "close", reason: "fd_close, Go runtime"},
	{name: "fstat", reason: "fd_filestat_get, fd_fdstat_get"},
	// glibc (cgo builds) implements fstat as newfstatat(fd, "", buf,
	// AT_EMPTY_PATH). A filter cannot read the path argument, so this does
	// not stop a lookup of a non-empty path relative to fd: what stops it
	// is that the Keep's root is an empty directory (no mount to look
	// into) and Landlock, where present, allows no file access at all.
	{name: "newfstatat", reason: "glibc's fstat (AT_EMPTY_PATH); path lookups find only the empty root",
		conds: []argConds{argBits(3, unix.AT_EMPTY_PATH)}},
	// fcntl by command: no F_SETOWN/F_SETSIG (signals to other
	// processes), F_SETLEASE, F_NOTIFY, locks or pipe sizes.
	{name: "fcntl", reason: "F_GETFD/F_SETFD, F_GETFL/F_SETFL (O_NONBLOCK), F_DUPFD_CLOEXEC (package net), F_GET_SEALS (payload check)",
		conds: []argConds{
			argEq(1, unix.F_GETFD), argEq(1, unix.F_SETFD), argEq(1, unix.F_GETFL), argEq(1, unix.F_SETFL),
			argEq(1, unix.F_DUPFD_CLOEXEC), argEq(1, unix.F_GET_SEALS),
		}},
	{name: "dup", reason: "package net duplicates passed sockets"},
	{name: "dup3", reason: "package net duplicates passed sockets"},
	{name: "ioctl", reason: "TCGETS (isatty) and FIONREAD only",
		conds: []argConds{argEq(1, unix.TCGETS), argEq(1, 0x541B /* FIONREAD */)}},
	{name: "fsync", reason: "fd_sync"},
	{name: "fdatasync", reason: "fd_datasync"},
	// Sockets that already exist: accept on passed listeners, I/O on
	// accepted and connected sockets. No socket(), bind(), listen() or
	// connect().
	{name: "accept4", reason: "sock_accept on a passed listener"},
	{name: "accept", reason: "sock_accept on a passed listener"},
	{name: "recvfrom", reason: "sock_recv"},
	{name: "recvmsg", reason: "sock_recv"},
	// sendto only without a destination (dest_addr == NULL): a Keep
	// sends on connected sockets, never datagrams to an address of its
	// choosing. sendmsg is not allowed: its destination is in memory a
	// filter cannot read, and nothing in the Keep needs it (writes to
	// sockets are write(2); the dial broker's reply is received, not sent).
	{name: "sendto", reason: "sock_send on connected sockets (no destination address)",
		conds: []argConds{argEq(4, 0)}},
	{name: "shutdown", reason: "sock_shutdown"},
	{name: "getsockopt", reason: "package net checks SO_TYPE/SO_ERROR of passed sockets"},
	{name: "setsockopt", reason: "package net sets TCP_NODELAY/keep-alive on accepted sockets"},
	{name: "getsockname", reason: "package net reads the address of passed sockets"},
	{name: "getpeername", reason: "package net reads the peer address of sockets"},
	// Readiness: the Go netpoller and poll_oneoff.
	{name: "epoll_create1", reason: "Go netpoller"},
	{name: "epoll_ctl", reason: "Go netpoller"},
	{name: "epoll_wait", reason: "Go netpoller"},
	{name: "epoll_pwait", reason: "Go netpoller"},
	{name: "epoll_pwait2", reason: "Go netpoller"},
	{name: "eventfd2", reason: "Go netpoller wake-up"},
	{name: "pipe2", reason: "Go netpoller wake-up on older runtimes"},
	{name: "poll", reason: "poll_oneoff on fds"},
	{name: "ppoll", reason: "poll_oneoff on fds"},
	// Memory: Go heap, wazero linear memory and compiled code (PROT_EXEC).
	{name: "mmap", reason: "Go heap, wazero memory and compiled code"},
	{name: "munmap", reason: "Go heap, wazero"},
	{name: "mprotect", reason: "wazero maps compiled code executable"},
	{name: "madvise", reason: "Go heap scavenger"},
	{name: "mremap", reason: "Go heap"},
	// glibc's malloc in cgo builds (the wasmtime engine allocates through
	// it). Refusing brk is not an option: a filter's errno is taken by
	// glibc for the new break, and malloc then writes past the heap.
	{name: "brk", reason: "C heap of cgo builds (glibc malloc)"},
	// Threads, signals, time, scheduling: the Go runtime.
	{name: "clone", reason: "new threads only (CLONE_THREAD); no new processes",
		conds: []argConds{argBits(0, unix.CLONE_THREAD)}},
	{name: "futex", reason: "Go runtime locks"},
	{name: "arch_prctl", reason: "thread-local storage of new threads (ARCH_SET_FS)",
		conds: []argConds{argEq(0, 0x1002)}},
	{name: "set_robust_list", reason: "thread start-up (glibc, in cgo builds)"},
	{name: "rseq", reason: "restartable sequences of new threads (glibc, in cgo builds)"},
	{name: "rt_sigaction", reason: "Go runtime signal handlers"},
	{name: "rt_sigprocmask", reason: "Go runtime"},
	{name: "rt_sigreturn", reason: "return from signal handlers"},
	{name: "sigaltstack", reason: "Go runtime signal stacks"},
	{name: "gettid", reason: "Go runtime preemption"},
	{name: "getpid", reason: "Go runtime preemption"},
	{name: "tgkill", reason: "Go runtime preemption signals to its own threads",
		conds: []argConds{argEq(0, pidPlaceholder)}}, // the Keep's own pid, put in at install time (seccompProgram)
	{name: "sched_yield", reason: "Go runtime, sched_yield"},
	{name: "sched_getaffinity", reason: "Go runtime GOMAXPROCS"},
	{name: "nanosleep", reason: "Go runtime"},
	{name: "clock_nanosleep", reason: "Go runtime, poll_oneoff clock subscriptions"},
	{name: "clock_gettime", reason: "clock_time_get (vDSO fallback)"},
	{name: "clock_getres", reason: "clock_res_get"},
	{name: "gettimeofday", reason: "vDSO fallback"},
	{name: "getrandom", reason: "random_get, crypto/rand"},
	{name: "restart_syscall", reason: "restart of interrupted sleeps"},
	{name: "exit", reason: "thread exit"},
	{name: "exit_group", reason: "process exit"},
}

// cacheSyscalls are allowed in addition when the Keep has its module's
// compilation cache. They are only added when the Keep has an empty root,
// where the cache at /cache is the only thing a path can name, and
// Landlock (if present) allows nothing outside it.
var cacheSyscalls = []allowedSyscall{
	{name: "openat", reason: "wazero reads and writes compiled code under /cache"},
	{name: "newfstatat", reason: "wazero checks the cache directory"},
	{name: "mkdirat", reason: "wazero creates its versioned cache subdirectory"},
	{name: "renameat", reason: "wazero renames a written cache entry into place"},
	{name: "renameat2", reason: "wazero renames a written cache entry into place"},
	{name: "unlinkat", reason: "wazero removes a failed cache entry"},
	{name: "fstatfs", reason: "wasmtime checks that the cache may hold executable mappings"},
}

// dirSyscalls are allowed in addition when the host passed directories
// ([[files]] entries of kind "dir" with source host or sealed): the calls
// keep/internal/vfs/hostfs makes on them for the WASI path and fd calls.
// Paths are in memory a filter cannot read, so none of these is confined
// by seccomp: what keeps them beneath the passed directories is Landlock
// (every open, create, remove and rename outside them fails with EACCES)
// and the empty root (the directories are mounted there on their own, so
// that ".." at one ends in the empty root; see mountDir). hostfs itself
// resolves every path with openat2 RESOLVE_BENEATH, which is the Keep's
// own rule; Landlock is the one that holds when the Keep's code does not.
var dirSyscalls = []allowedSyscall{
	{name: "openat2", reason: "path_open beneath a passed directory (RESOLVE_BENEATH); its flags are in memory: Landlock and the empty root confine it"},
	{name: "newfstatat", reason: "path_filestat_get beneath a passed directory (stat is not governed by Landlock: the empty root bounds it)"},
	{name: "mkdirat", reason: "path_create_directory"},
	{name: "unlinkat", reason: "path_unlink_file, path_remove_directory"},
	{name: "renameat", reason: "path_rename"},
	// hostfs resolves a followed symlink itself and links with flags 0.
	// AT_EMPTY_PATH would give a name in a passed directory to any
	// descriptor the Keep holds.
	{name: "linkat", reason: "path_link (flags 0 only)", conds: []argConds{argEq(4, 0)}},
	{name: "symlinkat", reason: "path_symlink"},
	{name: "readlinkat", reason: "path_readlink"},
	{name: "utimensat", reason: "path_filestat_set_times, fd_filestat_set_times"},
	{name: "ftruncate", reason: "fd_filestat_set_size, fd_allocate where the file system has no fallocate"},
	// Mode 0 only: allocate, growing the size (no hole punching or range
	// collapsing, which WASI does not have).
	{name: "fallocate", reason: "fd_allocate (mode 0 only)", conds: []argConds{argEq(1, 0)}},
	{name: "getdents64", reason: "fd_readdir"},
}

// enosysSyscalls fail with ENOSYS instead of EPERM, for callers that
// fall back on ENOSYS (a kernel without the call) and fail on EPERM:
// clone3's flags are in memory a filter cannot read, and ENOSYS makes
// glibc fall back to clone, whose flags the filter checks (CLONE_THREAD
// above); memfd_create is how wasmtime builds a copy-on-write memory
// image for a module it did not map from a cache file (a cache entry
// another run removed, or one that could not be written), and on ENOSYS
// it initialises the memory by copying instead, where EPERM failed the
// instantiation ("cannot create a memfd").
var enosysSyscalls = []string{"clone3", "memfd_create"}

// policyEntries are the allowed calls for a Keep with or without its
// compilation cache and passed directories, one entry per name: a call
// that one list allows unconditionally is allowed unconditionally;
// otherwise any of its lists' conditions allows it.
func policyEntries(cache, dirs bool) []allowedSyscall {
	lists := [][]allowedSyscall{allowedSyscalls}
	if cache {
		lists = append(lists, cacheSyscalls)
	}
	if dirs {
		lists = append(lists, dirSyscalls)
	}
	var out []allowedSyscall
	at := map[string]int{}
	for _, list := range lists {
		for _, s := range list {
			i, seen := at[s.name]
			switch {
			case !seen:
				at[s.name] = len(out)
				out = append(out, s)
			case out[i].conds == nil:
			case s.conds == nil:
				out[i].conds = nil
			default:
				out[i].conds = append(append([]argConds(nil), out[i].conds...), s.conds...)
			}
		}
	}
	return out
}

// seccompNames are the names policyEntries allows.
func seccompNames(cache, dirs bool) []string {
	var names []string
	for _, s := range policyEntries(cache, dirs) {
		names = append(names, s.name)
	}
	return names
}

// pidPlaceholder is the pid the prebuilt filters were assembled with for
// tgkill's first argument; installSeccomp puts the Keep's own pid in the
// instructions that compare with it (prebuiltFilter.pidSlots). The Keep
// is pid 1 in its pid namespace, so usually nothing changes.
const pidPlaceholder = 1

// prebuiltFilter is one variant of the Keep's filter, assembled when the
// policy changes (go generate; the assembler is assembleSeccomp in
// seccomp_prog_test.go, TestSeccompPrograms fails when a program differs
// from what it makes of the lists above today, TestSeccompProgramsDecide
// runs the programs against the lists). Prebuilt, because assembling at
// start is what every Keep would repeat, and the syscall-name tables an
// assembler needs cost each process that links them about a millisecond
// of initialisation (docs/sandbox.md, "Performance").
type prebuiltFilter struct {
	insns []unix.SockFilter
	// pidSlots are the instructions whose K is pidPlaceholder: the low
	// word of tgkill's first argument.
	pidSlots []int
}

// seccompVariant indexes seccompPrograms.
func seccompVariant(cache, dirs bool) int {
	v := 0
	if cache {
		v |= 1
	}
	if dirs {
		v |= 2
	}
	return v
}

// seccompProgram is the filter for a Keep with pid (as it sees itself) and
// with or without its compilation cache and passed directories.
func seccompProgram(pid int, cache, dirs bool) ([]unix.SockFilter, error) {
	f := seccompPrograms[seccompVariant(cache, dirs)]
	if !haveSeccompProgram() {
		return nil, errNoSeccompProgram()
	}
	if pid <= 0 || uint64(pid) > 1<<32-1 {
		return nil, fmt.Errorf("pid %d out of range", pid)
	}
	insns := append([]unix.SockFilter(nil), f.insns...)
	for _, i := range f.pidSlots {
		insns[i].K = uint32(pid)
	}
	return insns, nil
}

// haveSeccompProgram reports whether this architecture has the filters.
func haveSeccompProgram() bool { return len(seccompPrograms[0].insns) > 0 }

// errNoSeccompProgram says why a Keep cannot be confined here, and what to do.
func errNoSeccompProgram() error {
	return fmt.Errorf("no seccomp filter for %s/%s (the Keep's allow-list names amd64 system calls): run Keeps with another backend here", runtime.GOOS, runtime.GOARCH)
}

// seccompSupported reports whether the kernel has seccomp filters: strict
// mode takes no flags, so a kernel with seccomp refuses flag 1 with EINVAL.
func seccompSupported() bool {
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_STRICT, 1, 0)
	return e == unix.EINVAL
}

// installSeccomp loads the filter on every thread (TSYNC). It also sets
// no_new_privs, which the kernel requires for an unprivileged filter.
func installSeccomp(cache, dirs bool) error {
	if !seccompSupported() {
		return errors.New("seccomp filters are not supported by this kernel")
	}
	insns, err := seccompProgram(unix.Getpid(), cache, dirs)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	prog := unix.SockFprog{Len: uint16(len(insns)), Filter: &insns[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(insns)
	switch {
	case e != 0:
		return fmt.Errorf("loading the seccomp filter: %w", e)
	case r != 0:
		// TSYNC's other failure: the id of a thread that could not take
		// the filter (it has one that is not an ancestor of ours).
		return fmt.Errorf("loading the seccomp filter: thread %d could not take it", r)
	}
	return nil
}
