//go:build cgo

package sandbox

/*
#include <errno.h>
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

static const char enarx_keep_arg[] = "__sandbox-keep";

// 1 once this process set no_new_privs / emptied its bounding set /
// cleared its ambient set here.
static int enarx_keep_early[3];

__attribute__((constructor)) static void enarx_keep_first_steps(int argc, char **argv, char **envp) {
	(void)envp;
	if (argc < 2 || strcmp(argv[1], enarx_keep_arg) != 0) {
		return; // not a sandbox Keep: the host, or any other command
	}
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
