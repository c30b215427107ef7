package qemu

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/microvm/vmm"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

const (
	bootDir = "testdata/boot/"
	kernel  = bootDir + "vmlinuz"
	initrd  = bootDir + "initrd.img"
	amdsev  = bootDir + "OVMF.amdsev.fd"
	tdvf    = bootDir + "OVMF.inteltdx.fd"
)

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// channels returns n channels on open files (ArgsWith only needs them
// non-nil).
func channels(t *testing.T, names ...string) []vmm.Channel {
	t.Helper()
	var cs []vmm.Channel
	for _, n := range names {
		_, guest := socketPair()
		t.Cleanup(func() { guest.Close() })
		cs = append(cs, vmm.Channel{Name: n, File: guest})
	}
	return cs
}

func TestArgsGolden(t *testing.T) {
	cases := []struct {
		name string
		spec vmm.Spec
		opts Options
	}{
		{"plain-tcg", vmm.Spec{
			Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 panic=-1 quiet",
			Accel: vmm.AccelTCG, VCPUs: 2,
			Channels: channels(t, "enarx.ctl", "enarx.stdio"),
		}, Options{Sandbox: true}},
		{"plain-kvm", vmm.Spec{
			Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 panic=-1 quiet",
			Accel: vmm.AccelKVM, MemoryMiB: 1024,
			Channels: channels(t, "enarx.ctl"),
		}, Options{Sandbox: true, ChannelFDs: []int{7}}},
		{"snp", vmm.Spec{
			Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 panic=-1 quiet",
			Firmware: amdsev, Accel: vmm.AccelKVM, VCPUs: 2, TEE: vmm.TEESNP,
			SNP:      &vmm.SNP{KernelHashes: true, HostData: seq(32, 0)},
			Channels: channels(t, "enarx.ctl"),
		}, Options{Sandbox: true}},
		{"tdx", vmm.Spec{
			Kernel: kernel, Initrd: initrd, Cmdline: "console=ttyS0 panic=-1 quiet",
			Firmware: tdvf, Accel: vmm.AccelKVM, TEE: vmm.TEETDX,
			TDX: &vmm.TDX{SeptVEDisable: true, MRConfigID: seq(48, 1),
				QuoteGenerationSocket: "/var/run/tdx-qgs/qgs.socket"},
			Channels: channels(t, "enarx.ctl"),
		}, Options{Sandbox: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args, err := ArgsWith(c.spec, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(args, "\n") + "\n"
			golden := filepath.Join("testdata", c.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("argv differs from %s (go test -run TestArgsGolden -update to accept):\n%s", golden, got)
			}
		})
	}
}

func TestArgsDefaultsAndSandbox(t *testing.T) {
	s := vmm.Spec{Kernel: kernel, Accel: vmm.AccelTCG}
	a, err := Args(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"-sandbox", sandboxOpts}, {"-m", "512"}, {"-smp", "1"}, {"-cpu", "max"}, {"-accel", "tcg"},
		{"-machine", "q35"}, {"-no-reboot"}, {"-monitor", "none"}, {"-display", "none"}, {"-nodefaults"},
	} {
		if !containsSeq(a, want) {
			t.Errorf("argv lacks %q: %q", want, a)
		}
	}
	for _, not := range []string{"-initrd", "-bios", "-device", "-nographic", "stdio,id=mon"} {
		if slices.Contains(a, not) {
			t.Errorf("argv has %q: %q", not, a)
		}
	}
	b, err := ArgsWith(s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(b, "-sandbox") {
		t.Errorf("Sandbox false still gives -sandbox: %q", b)
	}
	s.Accel = vmm.AccelKVM
	if a, _ := Args(s); !containsSeq(a, []string{"-cpu", "host"}) {
		t.Errorf("KVM default CPU: %q", a)
	}
}

func containsSeq(a, seq []string) bool {
	for i := 0; i+len(seq) <= len(a); i++ {
		if slices.Equal(a[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

// TestArgsCommas: values inside option lists have their commas doubled;
// options QEMU takes whole are passed as they are.
func TestArgsCommas(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a,b")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k, i, fw := filepath.Join(dir, "vmlinuz,1"), filepath.Join(dir, "initrd,1"), filepath.Join(dir, "OVMF,amdsev.fd")
	for _, p := range []string{k, i, fw} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := vmm.Spec{
		Kernel: k, Initrd: i, Firmware: fw, Cmdline: "a=b,c d", Accel: vmm.AccelKVM, TEE: vmm.TEESNP,
		Channels: channels(t, "enarx,ctl,", ",x"),
	}
	a, err := Args(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]string{
		{"-kernel", k}, {"-initrd", i}, {"-bios", fw}, {"-append", "a=b,c d"},
		{"-device", "virtserialport,bus=vser0.0,chardev=ch0,name=enarx,,ctl,,"},
		{"-device", "virtserialport,bus=vser0.0,chardev=ch1,name=,,x"},
	} {
		if !containsSeq(a, want) {
			t.Errorf("argv lacks %q:\n%q", want, a)
		}
	}
	for _, tc := range []struct{ in, out string }{
		{"", ""}, {"plain", "plain"}, {",", ",,"}, {"a,,b", "a,,,,b"}, {"/p/a,b/c", "/p/a,,b/c"},
	} {
		if got := EscapeOptValue(tc.in); got != tc.out {
			t.Errorf("EscapeOptValue(%q) = %q, want %q", tc.in, got, tc.out)
		}
	}
}

func TestArgsRefuses(t *testing.T) {
	good := func() vmm.Spec {
		return vmm.Spec{Kernel: kernel, Initrd: initrd, Accel: vmm.AccelKVM, Channels: channels(t, "enarx.ctl")}
	}
	cases := []struct {
		name    string
		mut     func(*vmm.Spec)
		opts    Options
		invalid bool
		want    string
	}{
		{"NoKernel", func(s *vmm.Spec) { s.Kernel = "" }, Options{}, true, "no kernel"},
		{"MissingKernel", func(s *vmm.Spec) { s.Kernel = "testdata/boot/nope" }, Options{}, false, "the VM's kernel: open testdata/boot/nope"},
		{"MissingInitrd", func(s *vmm.Spec) { s.Initrd = "testdata/boot/nope" }, Options{}, false, "the VM's initrd"},
		{"KernelIsDir", func(s *vmm.Spec) { s.Kernel = "testdata/boot" }, Options{}, false, "not a regular file"},
		{"MissingFirmware", func(s *vmm.Spec) { s.TEE, s.Firmware = vmm.TEESNP, "testdata/boot/nope.fd" }, Options{}, false, "the VM's firmware"},
		{"SNPNoFirmware", func(s *vmm.Spec) { s.TEE = vmm.TEESNP }, Options{}, true, "needs its firmware"},
		{"SNPUnderTCG", func(s *vmm.Spec) { s.TEE, s.Firmware, s.Accel = vmm.TEESNP, amdsev, vmm.AccelTCG }, Options{}, true, "sev-snp VM needs KVM"},
		{"TDXUnderTCG", func(s *vmm.Spec) { s.TEE, s.Firmware, s.Accel = vmm.TEETDX, tdvf, vmm.AccelTCG }, Options{}, true, "tdx VM needs KVM"},
		{"TDXNamedCPU", func(s *vmm.Spec) { s.TEE, s.Firmware, s.CPU = vmm.TEETDX, tdvf, "EPYC-v4" }, Options{}, true, "-cpu host"},
		{"TooLittleMemory", func(s *vmm.Spec) { s.MemoryMiB = 32 }, Options{}, true, "memory 32 MiB is out of range"},
		{"TooMuchMemory", func(s *vmm.Spec) { s.MemoryMiB = vmm.MaxMemoryMiB + 1 }, Options{}, true, "out of range"},
		{"NegativeVCPUs", func(s *vmm.Spec) { s.VCPUs = -1 }, Options{}, true, "vCPUs is out of range"},
		{"TooManyVCPUs", func(s *vmm.Spec) { s.VCPUs = 256 }, Options{}, true, "vCPUs is out of range"},
		{"BadCPU", func(s *vmm.Spec) { s.CPU = "host,,evil=1" }, Options{}, true, "CPU model"},
		{"CPUWithSpace", func(s *vmm.Spec) { s.CPU = "host -device x" }, Options{}, true, "CPU model"},
		{"FDCount", func(s *vmm.Spec) {}, Options{ChannelFDs: []int{3, 4}}, false, "2 channel descriptors for 1 channels"},
		{"FDStdio", func(s *vmm.Spec) {}, Options{ChannelFDs: []int{1}}, false, "would be stdin, stdout or stderr"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := good()
			c.mut(&s)
			_, err := ArgsWith(s, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if errors.Is(err, vmm.ErrInvalidSpec) != c.invalid {
				t.Errorf("errors.Is(ErrInvalidSpec) = %v for %v", !c.invalid, err)
			}
		})
	}
}

func TestTDXObject(t *testing.T) {
	obj, err := tdxObject(&vmm.TDX{})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"qom-type":"tdx-guest","id":"tdx0","sept-ve-disable":false}`; obj != want {
		t.Errorf("tdxObject = %s, want %s", obj, want)
	}
	obj, err = tdxObject(&vmm.TDX{QuoteGenerationSocket: `/run/q"gs,1.sock`})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(obj, `"quote-generation-socket":{"type":"unix","path":"/run/q\"gs,1.sock"}`) {
		t.Errorf("tdxObject = %s", obj)
	}
}

// TestArgsTEEDefaults checks the argv of a confidential VM whose SNP / TDX
// properties are left to their defaults: SEV-SNP measures kernel, initrd
// and command line (kernel-hashes=on), TDX keeps SEPT_VE_DISABLE (QEMU's
// own default, which an explicit "sept-ve-disable":false would clear), and
// an SNP spec that turns the hashes off or asks for a debuggable guest is
// refused.
func TestArgsTEEDefaults(t *testing.T) {
	has := func(a []string, flag, sub string) bool {
		for i := 0; i+1 < len(a); i++ {
			if a[i] == flag && strings.Contains(a[i+1], sub) {
				return true
			}
		}
		return false
	}
	a, err := ArgsWith(vmm.Spec{Kernel: kernel, Initrd: initrd, Firmware: amdsev, TEE: vmm.TEESNP}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !has(a, "-object", "sev-snp-guest,") || !has(a, "-object", ",kernel-hashes=on") || !has(a, "-object", ",policy=0x30000,") {
		t.Errorf("default SNP argv %q lacks sev-snp-guest with policy=0x30000 and kernel-hashes=on", a)
	}
	a, err = ArgsWith(vmm.Spec{Kernel: kernel, Initrd: initrd, Firmware: tdvf, TEE: vmm.TEETDX}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !has(a, "-object", `"qom-type":"tdx-guest"`) || !has(a, "-object", `"sept-ve-disable":true`) {
		t.Errorf("default TDX argv %q lacks tdx-guest with sept-ve-disable on", a)
	}
	for name, snp := range map[string]*vmm.SNP{
		"without kernel hashes": {},
		"sets DEBUG":            {Policy: 0x30000 | vmm.SNPPolicyDebug, KernelHashes: true},
		"sets MIGRATE_MA":       {Policy: 0x30000 | vmm.SNPPolicyMigrateMA, KernelHashes: true},
	} {
		_, err := ArgsWith(vmm.Spec{Kernel: kernel, Firmware: amdsev, TEE: vmm.TEESNP, SNP: snp}, Options{})
		if !errors.Is(err, vmm.ErrInvalidSpec) || !strings.Contains(err.Error(), name) {
			t.Errorf("SNP %+v: err = %v, want ErrInvalidSpec with %q", *snp, err, name)
		}
	}
}
