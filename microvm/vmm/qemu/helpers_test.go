package qemu

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// needHost skips the test for a missing host part, or fails it when
// CI=true (CI must have every part).
func needHost(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", msg)
	}
	t.Skip(msg)
}

// requireQEMU returns the QEMU binary.
func requireQEMU(t testing.TB) string {
	t.Helper()
	p, err := LookPath(nil)
	if err != nil {
		needHost(t, "no QEMU: %v", err)
	}
	return p
}

// requireKernel returns the installed Debian 6.12 cloud kernel.
func requireKernel(t testing.TB) string {
	t.Helper()
	ks, _ := filepath.Glob("/boot/vmlinuz-6.12*-cloud-amd64")
	if len(ks) == 0 {
		needHost(t, "no /boot/vmlinuz-6.12*-cloud-amd64 (apt-get install linux-image-cloud-amd64 from bookworm-backports)")
	}
	sort.Strings(ks)
	return ks[len(ks)-1]
}

var guestInit struct {
	once sync.Once
	path string
	err  error
}

// buildGuestInit builds testdata/guestinit as a static binary, once per
// test process.
func buildGuestInit(t testing.TB) string {
	t.Helper()
	guestInit.once.Do(func() {
		dir, err := os.MkdirTemp("", "vmmtest-init-")
		if err != nil {
			guestInit.err = err
			return
		}
		out := filepath.Join(dir, "init")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/guestinit")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if b, err := cmd.CombinedOutput(); err != nil {
			guestInit.err = fmt.Errorf("go build guestinit: %v\n%s", err, b)
			return
		}
		guestInit.path = out
	})
	if guestInit.err != nil {
		t.Fatal(guestInit.err)
	}
	return guestInit.path
}

// newc is a minimal writer of the initramfs "newc" cpio format
// (Documentation/driver-api/early-userspace/buffer-format.rst), enough for
// the test image: directories, one character device, regular files.
type newc struct {
	buf bytes.Buffer
	ino int
}

func (w *newc) entry(name string, mode uint32, rdevMajor, rdevMinor int, data []byte) {
	w.ino++
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *newc) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

const (
	sIFDIR = 0o040000
	sIFCHR = 0o020000
	sIFREG = 0o100000
)

// writeInitramfs writes an initramfs with /init and the mount points it
// uses, to dir/name.
func writeInitramfs(t testing.TB, dir, name string, init []byte) string {
	t.Helper()
	var w newc
	for _, d := range []string{"dev", "proc", "sys"} {
		w.entry(d, sIFDIR|0o755, 0, 0, nil)
	}
	w.entry("dev/console", sIFCHR|0o600, 5, 1, nil)
	w.entry("init", sIFREG|0o755, 0, 0, init)
	w.entry("TRAILER!!!", 0, 0, 0, nil)
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, w.buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines is a concurrency-safe console sink.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (c *lines) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.l = append(c.l, string(p))
	return len(p), nil
}

func (c *lines) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.l, "")
}

func (c *lines) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.l...)
}
