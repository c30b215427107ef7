package bigbuf

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// hugeKBAt returns AnonHugePages (KiB) of the mapping that holds addr.
func hugeKBAt(t *testing.T, addr uintptr) int {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if in && fields[0] == "AnonHugePages:" && len(fields) >= 2 {
			n, _ := strconv.Atoi(fields[1])
			return n
		}
	}
	t.Skip("mapping not found in smaps")
	return 0
}

// TestHugePages: where the kernel offers transparent huge pages on
// request, a slice from Make is backed by them once touched.
func TestHugePages(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || bytes.Contains(mode, []byte("[never]")) {
		t.Skipf("transparent huge pages unavailable (%q, %v)", mode, err)
	}
	b := Make(64 << 20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	if got := hugeKBAt(t, uintptr(unsafe.Pointer(&b[len(b)/2]))); got < 8<<10 {
		t.Errorf("the mapping holding 64 MiB from Make has %d KiB of huge pages, want at least 8 MiB", got)
	}
}
