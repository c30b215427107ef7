// Command guestinit is the /init of the test VMs in package qemu's tests: it
// mounts /proc, /sys and /dev, finds the virtio-serial port named by
// vmmtest.port= on the kernel command line, writes "hello from the guest",
// reads one line, prints "vmmtest: reply <line>" to the console and powers
// the VM off. It uses only package syscall so that it builds static with
// CGO_ENABLED=0.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Printf("vmmtest: error: %v\n", err)
	}
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

func run() error {
	for _, m := range []struct{ src, dir, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := syscall.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil && err != syscall.EBUSY {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	var want string
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, "vmmtest.port="); ok {
			want = v
		}
	}
	if want == "" {
		return fmt.Errorf("no vmmtest.port= in %q", cmdline)
	}
	dev, err := findPort(want)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Printf("vmmtest: port %q is %s\n", want, dev)
	if _, err := f.Write([]byte("hello from the guest\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	fmt.Printf("vmmtest: reply %s\n", strings.TrimSpace(line))
	return nil
}

// findPort waits up to 30 s for the port to appear.
func findPort(name string) (string, error) {
	for i := 0; i < 300; i++ {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(filepath.Dir(n)), nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("no virtio port named %q", name)
}
