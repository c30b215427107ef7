// Package sandbox is the "sandbox" backend: each Keep runs in a separate
// process — the enarx binary re-executed in a hidden mode, which confines
// every one of its threads in any build (see threads_linux.go) — confined
// by the kernel
// (user, pid, mount, network, ipc and uts namespaces with an empty root; no
// capabilities; rlimits; no_new_privs; Landlock; a seccomp allow-list) and
// running the same runtime as the nil backend.
//
// The Keep receives the backend.Launch as one launch message (wire.go):
// newLaunch derives it on the host and keepArgs turns it back into
// keep.Run's arguments in the Keep (launch.go); nothing else reshapes it.
// Test-only requests never travel in it (testseam.go).
//
// Trust: the sandbox protects the host from the workload, not the other way
// round. The host side (Backend.Run) trusts the host and treats the Keep
// process as hostile: it only reads one bounded result message from it,
// gives it its own open file descriptions of the host's ttys and pipes and
// puts back the flags of those it shares (stdio_linux.go), copies the
// Keep's own diagnostics through a pipe where its stderr would otherwise
// be the host's log file or socket (keepstderr_linux.go), relays a
// terminal stdin to it through a pipe (ttyrelay_linux.go), and, once the
// Keep can no longer run, checks what it left in its module's compilation
// cache (keepend_linux.go, cachecheck_linux.go). The
// Keep side (KeepMain) decodes its launch message defensively (bounded
// lengths, checked digests) but relies on the host for its inputs, as the
// nil backend does; it offers no TEE evidence.
package sandbox
