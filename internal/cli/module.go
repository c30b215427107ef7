package cli

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// maxModule bounds the module enarx run reads (the Keep reads no larger).
const maxModule = 1 << 30

// readModule returns the module at path. A regular file is mapped, not
// read: its pages come from the page cache, so a warm start does not copy
// megabytes into freshly faulted heap memory (os.ReadFile of Go's 2.6 MB
// hello costs 8–9 ms on the development VM, the mapping 0.1–0.4 ms). The
// mapping is private and read-only and lives as long as the process.
func readModule(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
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
