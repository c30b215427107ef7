package sandbox

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// closeInherited closes the Keep's executable (exeFD, which the host passed
// only to start this process from it) and every descriptor above it that
// is not close-on-exec. The host passes what the Keep may use at or below
// exeFD; anything above it without close-on-exec came through execve: a
// descriptor enarx itself inherited without the flag (from a careless
// parent), which must not reach the workload. Whatever this process
// opened itself before main (the Go runtime's netpoller, files read by
// package initialisers, glibc and libpsx in a cgo build) is close-on-exec,
// as Go and glibc open everything, and stays open.
//
// Called before the empty root hides the host's /proc.
func closeInherited(exeFD int) error {
	if err := unix.Close(exeFD); err != nil {
		return fmt.Errorf("closing the executable's descriptor: %w", err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("listing inherited descriptors: %w", err)
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= exeFD {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue // the listing's own descriptor, closed by now
		}
		if flags&unix.FD_CLOEXEC == 0 {
			if err := unix.Close(fd); err != nil {
				return fmt.Errorf("closing inherited descriptor %d: %w", fd, err)
			}
		}
	}
	return nil
}
