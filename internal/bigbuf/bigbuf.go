// Package bigbuf allocates large byte slices that are filled once, right
// after allocation (a downloaded package, say).
//
// Touching a fresh 64 MiB slice takes 16,384 page faults; on a virtual
// machine each costs microseconds, which adds up to tens of milliseconds —
// as much as hashing the bytes. On Linux, Make asks the kernel to back the
// slice with transparent huge pages (madvise MADV_HUGEPAGE, honoured when
// THP is "madvise" or "always"), which takes 32 faults instead. It is only
// advice: where the kernel declines, or on other systems, Make is make.
package bigbuf

// MinSize is the size from which Make advises huge pages; smaller slices
// come from make alone.
const MinSize = 4 << 20

// Make returns a zeroed slice of n bytes.
func Make(n int) []byte {
	b := make([]byte, n)
	if n >= MinSize {
		adviseHuge(b)
	}
	return b
}
