//go:build cgo

package sandbox

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

// Starting the Keep process without copying the host. Go's os/exec starts
// a process in a new user namespace with a real fork (it must write the
// child's uid and gid maps while the child waits, which rules out vfork),
// and a fork copies the page tables of the whole host and leaves every
// page it writes afterwards to fault once more: 4.5-8 ms of a sandbox
// start on the VM we measure on, against 1 ms here. This is the same
// sequence as Go's (syscall/exec_linux.go) with the child sharing the
// host's memory (CLONE_VM) instead of a copy of it: the host writes the
// maps, then lets the child go on; the child touches only its own stack,
// the spawn record and the kernel, and ends in execve or _exit. It runs in
// the host, not in the Keep.
//
// Sharing memory has two consequences the code below respects: the child
// must not run the host's signal handlers (it blocks every signal, sets
// each handler to the default, and unblocks them again only right before
// execve, as Go's child does), and libc's per-thread state is the calling
// thread's (nothing takes a lock, and errno is written only on the child's
// error paths, after which it exits: the host thread's error code could
// be wrong only if both fail at once).

struct enarx_spawn {
	const char *path;
	char *const *argv, *const *envp;
	const int *fds;   // the child's descriptors 0, 1, …
	int *tmp;         // nfds ints for the child's copies of them
	int nfds;
	int cred;         // become root of the new user namespace
	int dropgroups;   // and drop the host's supplementary groups (setgroups allowed)
	int newpid;       // in a new pid namespace (getppid is 0 there)
	pid_t parent;
	int sync_fd;      // read: the maps are written
	int err_fd;       // write: why the child failed (close-on-exec)
	sigset_t mask;    // the host thread's signal mask
};

static void enarx_spawn_fail(struct enarx_spawn *s, int err) {
	ssize_t n;
	do {
		n = write(s->err_fd, &err, sizeof err);
	} while (n < 0 && errno == EINTR);
	_exit(127);
}

#if defined(__x86_64__) || defined(__aarch64__)
// The kernel's struct sigaction on these architectures: libc's sigaction
// refuses its own reserved signals, and would set errno doing so.
struct enarx_ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	unsigned long mask;
};

static void enarx_default_handlers(void) {
	struct enarx_ksigaction dfl;
	memset(&dfl, 0, sizeof dfl); // SIG_DFL, no flags
	for (int sig = 1; sig <= 64; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP) {
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
		}
	}
}
#else
static void enarx_default_handlers(void) {
	struct sigaction dfl;
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < _NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP) {
			sigaction(sig, &dfl, NULL);
		}
	}
}
#endif

static int enarx_spawn_child(void *arg) {
	struct enarx_spawn *s = arg;
	// Default handlers before anything can unblock a signal: the host's
	// are Go's, which must not run here. (This process has its own copy
	// of the handler table: no CLONE_SIGHAND.)
	enarx_default_handlers();
	char c;
	ssize_t n;
	do {
		n = read(s->sync_fd, &c, 1);
	} while (n < 0 && errno == EINTR);
	if (n != 1) {
		_exit(127); // the host gave up, and says why
	}
	// Raw system calls: libc's setresuid would signal every thread of
	// the host, whose memory this process shares.
	if (syscall(SYS_setsid) < 0) {
		enarx_spawn_fail(s, errno);
	}
	// The host's supplementary groups would stay the Keep's (a user
	// namespace maps its ids, not its groups): root's, 0 at least, for a
	// Keep that is otherwise the host's nobody. Only a host that may
	// allow setgroups in the namespace can drop them (as Go's child does:
	// setgroups, then the ids).
	if (s->cred && s->dropgroups && syscall(SYS_setgroups, 0, NULL) < 0) {
		enarx_spawn_fail(s, errno);
	}
	if (s->cred && (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0)) {
		enarx_spawn_fail(s, errno);
	}
	if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		enarx_spawn_fail(s, errno);
	}
	if (!s->newpid && getppid() != s->parent) {
		_exit(127); // the host ended before Pdeathsig was set
	}
	// Descriptors: the error pipe and every source above the targets
	// 0…nfds-1 first (close-on-exec copies), then each into place (dup2
	// clears close-on-exec).
	// (The record is shared, but the host reads neither field after
	// clone.)
	int err_fd = fcntl(s->err_fd, F_DUPFD_CLOEXEC, s->nfds);
	if (err_fd < 0) {
		enarx_spawn_fail(s, errno);
	}
	s->err_fd = err_fd;
	for (int i = 0; i < s->nfds; i++) {
		s->tmp[i] = fcntl(s->fds[i], F_DUPFD_CLOEXEC, s->nfds);
		if (s->tmp[i] < 0) {
			enarx_spawn_fail(s, errno);
		}
	}
	for (int i = 0; i < s->nfds; i++) {
		if (dup2(s->tmp[i], i) < 0) {
			enarx_spawn_fail(s, errno);
		}
	}
	sigprocmask(SIG_SETMASK, &s->mask, NULL);
	execve(s->path, s->argv, s->envp);
	enarx_spawn_fail(s, errno);
	return 0;
}

static int enarx_write_map(pid_t pid, const char *name, const char *data) {
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		return errno;
	}
	int err = 0;
	if (write(fd, data, strlen(data)) < 0) {
		err = errno;
	}
	close(fd);
	return err;
}

// enarx_spawn starts s->path and returns its pid, or -1 with *errp set.
static pid_t enarx_spawn(struct enarx_spawn *s, int flags, const char *uidmap, const char *gidmap, int *errp) {
	const size_t stack_size = 256 * 1024;
	char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		*errp = errno;
		return -1;
	}
	int sync[2], errpipe[2];
	if (pipe2(sync, O_CLOEXEC) < 0) {
		*errp = errno;
		munmap(stack, stack_size);
		return -1;
	}
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		*errp = errno;
		close(sync[0]);
		close(sync[1]);
		munmap(stack, stack_size);
		return -1;
	}
	s->sync_fd = sync[0];
	s->err_fd = errpipe[1];
	s->parent = getpid();
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &s->mask);
	pid_t pid = clone(enarx_spawn_child, stack + stack_size, CLONE_VM | SIGCHLD | flags, s);
	int clone_err = errno;
	pthread_sigmask(SIG_SETMASK, &s->mask, NULL);
	close(sync[0]);
	close(errpipe[1]);
	if (pid < 0) {
		close(sync[1]);
		close(errpipe[0]);
		munmap(stack, stack_size);
		*errp = clone_err;
		return -1;
	}
	int err = 0;
	if (uidmap != NULL) {
		// setgroups stays allowed only for a child that drops its groups
		// with it (a host with CAP_SETGID: root); without that privilege
		// the kernel takes a gid map only with setgroups denied.
		if (!s->dropgroups) {
			err = enarx_write_map(pid, "setgroups", "deny");
		}
		if (err == 0) {
			err = enarx_write_map(pid, "gid_map", gidmap);
		}
		if (err == 0) {
			err = enarx_write_map(pid, "uid_map", uidmap);
		}
	}
	if (err == 0 && write(sync[1], "g", 1) != 1) {
		err = errno;
	}
	close(sync[1]); // without "g": the child exits
	int child_err = 0;
	ssize_t n;
	do {
		n = read(errpipe[0], &child_err, sizeof child_err);
	} while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	// The child has exec'd (the pipe closed, nothing read) or ended: its
	// stack is free.
	munmap(stack, stack_size);
	if (err == 0 && n == sizeof child_err) {
		err = child_err;
	} else if (err == 0 && n != 0) {
		err = EIO;
	}
	if (err != 0) {
		while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR) {
		}
		*errp = err;
		return -1;
	}
	return pid;
}
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// spawnShared starts path as startKeepWith's exec.Cmd would (stdin and
// stdout /dev/null, stderr, then extra as fds 3, 4, …; a new session;
// SIGKILL when the calling thread ends; root of a new user namespace in
// flags), sharing the host's memory until execve (the C above). The
// caller's thread must stay locked to its goroutine for the child's
// lifetime (Pdeathsig).
func spawnShared(path string, argv, env []string, stderr *os.File, extra []*os.File, flags uintptr) (*os.Process, error) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	files := append([]*os.File{null, null, stderr}, extra...)
	// Everything the child reads is C memory, freed once it has exec'd.
	var frees []unsafe.Pointer
	defer func() {
		for _, p := range frees {
			C.free(p)
		}
	}()
	cstr := func(s string) *C.char {
		p := C.CString(s)
		frees = append(frees, unsafe.Pointer(p))
		return p
	}
	cArray := func(ss []string) **C.char {
		arr := (**C.char)(C.calloc(C.size_t(len(ss)+1), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		frees = append(frees, unsafe.Pointer(arr))
		elems := unsafe.Slice(arr, len(ss)+1)
		for i, s := range ss {
			elems[i] = cstr(s)
		}
		return arr
	}
	cInts := func(n int) *C.int {
		p := (*C.int)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.int(0)))))
		frees = append(frees, unsafe.Pointer(p))
		return p
	}
	s := (*C.struct_enarx_spawn)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_enarx_spawn{}))))
	frees = append(frees, unsafe.Pointer(s))
	s.path = cstr(path)
	s.argv = cArray(argv)
	s.envp = cArray(env)
	fds := cInts(len(files))
	for i, f := range files {
		// Fd, as os/exec passes descriptors: the Keep gets them in
		// blocking mode.
		unsafe.Slice(fds, len(files))[i] = C.int(f.Fd())
	}
	s.fds, s.tmp, s.nfds = fds, cInts(len(files)), C.int(len(files))
	if flags&syscall.CLONE_NEWPID != 0 {
		s.newpid = 1
	}
	var uidmap, gidmap *C.char
	if flags&syscall.CLONE_NEWUSER != 0 {
		s.cred = 1
		if keepDropsGroups() {
			s.dropgroups = 1
		}
		uidmap = cstr(fmt.Sprintf("0 %d 1", keepHostID(os.Geteuid())))
		gidmap = cstr(fmt.Sprintf("0 %d 1", keepHostID(os.Getegid())))
	}
	// As os/exec: no descriptor is made without close-on-exec meanwhile.
	syscall.ForkLock.Lock()
	var cerr C.int
	pid := C.enarx_spawn(s, C.int(flags), uidmap, gidmap, &cerr)
	syscall.ForkLock.Unlock()
	runtime.KeepAlive(files)
	if pid < 0 {
		return nil, fmt.Errorf("starting %s: %w", path, syscall.Errno(cerr))
	}
	return os.FindProcess(int(pid))
}

// sharedSpawn: this build starts the Keep process with spawnShared.
const sharedSpawn = true
