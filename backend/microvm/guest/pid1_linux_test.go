package guest

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeRoot builds a guest file system root with the given files (contents)
// and directories (a trailing "/"), and symlinks (contents "->TARGET").
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if name[len(name)-1] == '/' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if len(content) > 2 && content[:2] == "->" {
			if err := os.Symlink(content[2:], p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const (
	cpuinfoPlain = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu vme de pse tsc msr hypervisor x2apic sev_guest_x tdx_guestx\n"
	cpuinfoTD    = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr pae hypervisor tdx_guest x2apic\n"
)

// A Keep finds its TEE from the kernel's own record of it, not only from
// the attestation driver's device: a host can make the driver fail to
// start (a TDX host by refusing the MapGPA call for tdx-guest's shared
// quote buffer), and a Keep that then took itself for one outside a TEE
// would trust its host with machine code (the compilation cache).
func TestDetect(t *testing.T) {
	for name, c := range map[string]struct {
		files map[string]string
		want  string
	}{
		"plain VM":                     {map[string]string{"proc/cpuinfo": cpuinfoPlain, "sys/devices/platform/serial8250/": ""}, "none"},
		"empty root":                   {nil, "none"},
		"SNP with its driver":          {map[string]string{"dev/sev-guest": "->/dev/null", "sys/devices/platform/sev-guest/": "", "proc/cpuinfo": cpuinfoPlain}, "snp"},
		"SNP whose driver failed":      {map[string]string{"sys/devices/platform/sev-guest/": "", "proc/cpuinfo": cpuinfoPlain}, "snp"},
		"TD with its driver":           {map[string]string{"dev/tdx_guest": "->/dev/null", "proc/cpuinfo": cpuinfoTD}, "tdx"},
		"TD whose driver failed":       {map[string]string{"proc/cpuinfo": cpuinfoTD}, "tdx"},
		"a regular file is no device":  {map[string]string{"dev/sev-guest": "not a device", "proc/cpuinfo": cpuinfoPlain}, "none"},
		"a file is no platform device": {map[string]string{"sys/devices/platform/sev-guest": "", "proc/cpuinfo": cpuinfoPlain}, "none"},
	} {
		t.Run(name, func(t *testing.T) {
			if got := Detect(fakeRoot(t, c.files)); got != c.want {
				t.Errorf("Detect = %q, want %q", got, c.want)
			}
		})
	}
}

// Once the image's modules are loaded, module loading and kexec are
// switched off for good: either would let root in the guest run kernel
// code that the launch measurement does not cover while the TEE still
// reports the measured image.
func TestLockKernel(t *testing.T) {
	root := fakeRoot(t, map[string]string{
		"proc/sys/kernel/modules_disabled":    "0\n",
		"proc/sys/kernel/kexec_load_disabled": "0\n",
	})
	var early earlyLog
	lockKernel(root, &early)
	for _, f := range []string{"modules_disabled", "kexec_load_disabled"} {
		b, err := os.ReadFile(filepath.Join(root, "proc/sys/kernel", f))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != "1" {
			t.Errorf("%s is %q, want 1", f, b)
		}
	}
	if len(early.records) != 0 {
		t.Errorf("warnings: %+v", early.records)
	}

	// A kernel without module or kexec support has neither file: nothing
	// to disable and nothing to warn about.
	early = earlyLog{}
	lockKernel(fakeRoot(t, map[string]string{"proc/sys/kernel/": ""}), &early)
	if len(early.records) != 0 {
		t.Errorf("warnings for a kernel without the switches: %+v", early.records)
	}
}
