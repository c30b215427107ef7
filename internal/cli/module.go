package cli

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxModule bounds the module enarx run reads (the Keep reads no larger).
const maxModule = 1 << 30

// readModule returns the module at path. Unless private is set, a regular
// file is mapped, not read: its pages come from the page cache, so a warm
// start does not copy megabytes into freshly faulted heap memory
// (os.ReadFile of Go's 2.6 MB hello costs 8–9 ms on the development VM,
// the mapping 0.1–0.4 ms). The mapping is private and read-only and lives
// as long as the process.
//
// A private mapping still shows later changes of the file's pages that
// were not written through it (a writer of the file, or, inside a
// confidential VM, a page read again from a disk the hypervisor can
// write): the bytes keep.Run hashes for the Keep's evidence could then
// differ from those it compiles. So a Keep whose evidence names the module
// (private: a TEE backend) gets a copy, read once.
func readModule(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() == 0 || private {
		return readAll(f)
	}
	if st.Size() > maxModule {
		return nil, fmt.Errorf("%s is %d bytes, more than a module may have (%d)", path, st.Size(), maxModule)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return readAll(f)
	}
	return b, nil
}

func readAll(f *os.File) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, maxModule+1))
	if err == nil && len(b) > maxModule {
		return nil, fmt.Errorf("%s is more than a module may have (%d bytes)", f.Name(), maxModule)
	}
	return b, err
}
