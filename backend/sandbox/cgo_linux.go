//go:build cgo

package sandbox

/*
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <sys/prctl.h>

// The sandbox Keep's first steps in a cgo build, taken by a constructor
// that the C library runs before the Go runtime starts: the process has
// one thread, so no_new_privs, the emptied capability bounding set and
// the cleared ambient set are set on every thread it will ever have (each
// is per-thread state that new threads inherit), with 43 system calls
// instead of 43 rounds of signals to every thread through psx (3.5-4.5 ms
// of a Keep's start; see threads_linux.go). The permitted and effective
// sets stay: the Keep needs them to build its empty root. Nothing else
// happens here: what needs the launch message, and every check, is Go
// (confineProcess, checkAllThreads).
//
// It also caps glibc's malloc arenas (keepMallocArenas): each reserves
// 64 MiB of address space, which RLIMIT_AS counts, and glibc makes up to
// 8 per CPU as threads contend (wasmtime's compilation pool has one
// thread per CPU): on a large host they alone would pass the Keep's
// RLIMIT_AS (cgoAddressSpace).

static const char enarx_keep_arg[] = "__sandbox-keep";

#define ENARX_KEEP_MALLOC_ARENAS 8

// 1 once this process set no_new_privs / emptied its bounding set /
// cleared its ambient set here.
static int enarx_keep_early[3];

__attribute__((constructor)) static void enarx_keep_first_steps(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2 || strcmp(argv[1], enarx_keep_arg) != 0) {
		return; // not a sandbox Keep: the host, or any other command
	}
	mallopt(M_ARENA_MAX, ENARX_KEEP_MALLOC_ARENAS);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0) {
		enarx_keep_early[0] = 1;
	}
	for (int c = 0;; c++) {
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
			// EINVAL: past the kernel's last capability. Anything
			// else (EPERM without a user namespace): left to Go,
			// which reports it.
			enarx_keep_early[1] = errno == EINVAL && c > 0;
			break;
		}
	}
	// EINVAL: a kernel without ambient capabilities, which has none to
	// clear. Anything else: left to Go.
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) == 0 || errno == EINVAL) {
		enarx_keep_early[2] = 1;
	}
}

static int enarx_keep_early_done(int which) { return enarx_keep_early[which]; }

static const char *enarx_keep_early_arg(void) { return enarx_keep_arg; }

static int enarx_keep_malloc_arenas(void) { return ENARX_KEEP_MALLOC_ARENAS; }
*/
import "C"

// ownProcNeeded: psx reaches a cgo build's threads through /proc (see
// threads_linux.go).
const ownProcNeeded = true

// earlySteps reports whether this process, a sandbox Keep, set
// no_new_privs, emptied its capability bounding set and cleared its
// ambient capabilities before the Go runtime started (the constructor
// above).
func earlySteps() (nnp, bounding, ambient bool) {
	return C.enarx_keep_early_done(0) == 1, C.enarx_keep_early_done(1) == 1, C.enarx_keep_early_done(2) == 1
}

// earlyArg is the argument by which the constructor recognises a Keep.
func earlyArg() string { return C.GoString(C.enarx_keep_early_arg()) }

// keepMallocArenas is the most malloc arenas glibc makes in a sandbox
// Keep (the constructor above sets M_ARENA_MAX).
var keepMallocArenas = int(C.enarx_keep_malloc_arenas())

// cgoAddressSpace is what a cgo build's C code may reserve beyond what a
// pure-Go Keep does, for RLIMIT_AS (addressSpaceSlack), with threads CPUs
// (the larger of its GOMAXPROCS and the CPUs it may run on): its malloc
// arenas, 64 MiB each, one more for the transient double reservation
// glibc makes to align a new one, and per CPU 16 MiB for a Go thread's C
// stack (8 MiB: glibc's default from RLIMIT_STACK) and a thread of
// wasmtime's compilation pool (2 MiB: Rust's default), with their guard
// pages and room to spare. A wasmtime Keep of Go's hello peaked at 5.8 GiB
// of address space on a 2-CPU host, against the 6 GiB that the 4 GiB
// default memory limit + 2 GiB gave it before.
func cgoAddressSpace(threads int) uint64 {
	return uint64(keepMallocArenas+1)*64<<20 + uint64(max(threads, 1))*16<<20
}
