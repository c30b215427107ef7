//go:build cgo

package sandbox

// ownProcNeeded: psx reaches a cgo build's threads through /proc (see
// threads_linux.go).
const ownProcNeeded = true
