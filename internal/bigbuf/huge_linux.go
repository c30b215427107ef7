package bigbuf

import "golang.org/x/sys/unix"

// adviseHuge advises huge pages for b. The Go heap hands out large slices
// page-aligned, as madvise requires; an error (an old kernel, THP
// disabled) changes nothing but speed.
func adviseHuge(b []byte) {
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
}
