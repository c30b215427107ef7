package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLoadWorkloadOpensNoDevice: an image layer may carry device nodes
// (containerd creates them when it unpacks as root), and the shim reads the
// image as root in the node's namespaces, outside any device cgroup.
// Opening a device node can act on the node (a watchdog starts counting on
// open, a tape rewinds, a tty may become a controlling terminal), so a
// module or Enarx.toml that is a device node must be refused without
// opening it. Here the node is /dev/null's (1:3), and inotify tells whether
// it was opened.
func TestLoadWorkloadOpensNoDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a device node needs root")
	}
	for _, name := range []string{"main.wasm", "Enarx.toml"} {
		t.Run(name, func(t *testing.T) {
			bundle, spec := bundleWith(t, map[string]string{"main.wasm": wasmMagic}, "/main.wasm")
			dev := filepath.Join(bundle, "root", name)
			os.Remove(dev)
			if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
				t.Skipf("mknod: %v", err)
			}
			in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(in)
			if _, err := unix.InotifyAddWatch(in, dev, unix.IN_OPEN); err != nil {
				t.Fatal(err)
			}
			_, err = loadWorkload(bundle, spec, nil)
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("a device node as %s: got %v, want a refusal naming it not a regular file", name, err)
			}
			buf := make([]byte, 4096)
			if n, _ := unix.Read(in, buf); n > 0 {
				t.Errorf("the shim opened the device node %s of the image", name)
			}
		})
	}
}
