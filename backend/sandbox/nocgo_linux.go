//go:build !cgo

package sandbox

// ownProcNeeded: psx is the Go runtime's AllThreadsSyscall in a
// CGO_ENABLED=0 build, which needs no /proc (see threads_linux.go).
const ownProcNeeded = false
