package image

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// keepKernelFragment is the config fragment of the tailored Keep kernel
// (scripts/keep-kernel/build.sh applies it on top of tinyconfig).
var keepKernelFragment = filepath.Join("..", "..", "scripts", "keep-kernel", "keep.config")

// readKconfig parses a kernel config file or fragment: CONFIG_X=value lines
// and "# CONFIG_X is not set" lines (recorded as "n"); other comments and
// blank lines are skipped; anything else, or an option set twice, is an error.
func readKconfig(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set := regexp.MustCompile(`^(CONFIG_[A-Za-z0-9_]+)=(.+)$`)
	unset := regexp.MustCompile(`^# (CONFIG_[A-Za-z0-9_]+) is not set$`)
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		var k, v string
		if m := set.FindStringSubmatch(line); m != nil {
			k, v = m[1], m[2]
		} else if m := unset.FindStringSubmatch(line); m != nil {
			k, v = m[1], "n"
		} else if line == "" || strings.HasPrefix(line, "#") {
			continue
		} else {
			t.Fatalf("%s:%d: not a config line: %q", path, n, line)
		}
		if _, dup := out[k]; dup {
			t.Fatalf("%s:%d: %s set twice", path, n, k)
		}
		out[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKeepKernelConfig checks the tailored kernel's fragment: no module
// support at all (everything the Keep needs is built in, so nothing can be
// loaded into a running Keep) and no kexec, the channel's virtio transports and console,
// both TEE guest drivers with configfs-tsm, what the Go runtime needs, and
// no networking (the Keep's only link to the host is virtio-serial).
func TestKeepKernelConfig(t *testing.T) {
	cfg := readKconfig(t, keepKernelFragment)
	for _, opt := range []string{
		"64BIT", "SMP", "PRINTK", "TTY", "SERIAL_8250", "SERIAL_8250_CONSOLE",
		"BLK_DEV_INITRD", "BINFMT_ELF", "DEVTMPFS", "PROC_FS", "SYSFS", "TMPFS", "SHMEM",
		"FUTEX", "EPOLL", "EVENTFD", "TIMERFD", "SIGNALFD", "POSIX_TIMERS", "ADVISE_SYSCALLS", "MULTIUSER",
		"PCI", "VIRTIO", "VIRTIO_PCI", "VIRTIO_MMIO", "VIRTIO_CONSOLE",
		"ACPI", "X86_X2APIC", "EFI", "EFI_STUB", "HYPERVISOR_GUEST", "KVM_GUEST",
		"AMD_MEM_ENCRYPT", "INTEL_TDX_GUEST", "UNACCEPTED_MEMORY", "VIRT_DRIVERS",
		"CONFIGFS_FS", "TSM_REPORTS", "SEV_GUEST", "TDX_GUEST_DRIVER",
	} {
		if v := cfg["CONFIG_"+opt]; v != "y" {
			t.Errorf("CONFIG_%s = %q, want y", opt, v)
		}
	}
	// No kexec either: root in the guest could boot another kernel under
	// the measured image's measurement.
	for _, opt := range []string{"MODULES", "KEXEC", "KEXEC_FILE", "NET", "VSOCKETS", "LOCALVERSION_AUTO"} {
		if v := cfg["CONFIG_"+opt]; v != "n" {
			t.Errorf("CONFIG_%s = %q, want it stated as not set", opt, v)
		}
	}
	// The initrd is uncompressed (Build writes plain newc): no decompressor
	// for it is needed in the kernel.
	for k, v := range cfg {
		if v == "m" {
			t.Errorf("%s=m: the Keep kernel has no modules", k)
		}
		if strings.HasPrefix(k, "CONFIG_RD_") && v != "n" {
			t.Errorf("%s=%s: the initrd is not compressed", k, v)
		}
	}
	if cfg["CONFIG_LOCALVERSION"] != `"-enarx-keep"` {
		t.Errorf("CONFIG_LOCALVERSION = %s, want \"-enarx-keep\" (the release names the Keep kernel)", cfg["CONFIG_LOCALVERSION"])
	}

	// The default guest kernel, when installed, is what the fragment's
	// choices were compared with: confirm the options it has as modules are
	// the ones DefaultModules loads.
	k, err := DefaultKernel()
	if err != nil {
		return
	}
	deb := readKconfig(t, filepath.Join(DefaultBootDir, "config-"+k.Release))
	for opt, want := range map[string]string{
		"CONFIG_CONFIGFS_FS": "m", "CONFIG_TSM_REPORTS": "m", "CONFIG_SEV_GUEST": "m", "CONFIG_TDX_GUEST_DRIVER": "m",
		"CONFIG_VIRTIO_PCI": "y", "CONFIG_VIRTIO_CONSOLE": "y",
	} {
		if deb[opt] != want {
			t.Errorf("Debian %s: %s=%s, DefaultModules assumes %s", k.Release, opt, deb[opt], want)
		}
	}
}
