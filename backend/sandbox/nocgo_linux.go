//go:build !cgo

package sandbox

// ownProcNeeded: psx is the Go runtime's AllThreadsSyscall in a
// CGO_ENABLED=0 build, which needs no /proc (see threads_linux.go).
const ownProcNeeded = false

// earlySteps: a CGO_ENABLED=0 build has no code that runs before the Go
// runtime starts its threads; no_new_privs and the bounding set are set
// on every thread with AllThreadsSyscall.
func earlySteps() (nnp, bounding, ambient bool) { return false, false, false }

// earlyArg: no constructor to recognise a Keep.
func earlyArg() string { return KeepArg }

// cgoAddressSpace: a CGO_ENABLED=0 build has no C code to reserve address
// space (see the cgo build's).
func cgoAddressSpace(int) uint64 { return 0 }
