package vmm

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func validSpec(t *testing.T) Spec {
	t.Helper()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return Spec{Kernel: "/boot/vmlinuz", Initrd: "/boot/initrd", Cmdline: "console=ttyS0 quiet",
		Channels: []Channel{{Name: "enarx.ctl", File: f}}}
}

func TestWithDefaults(t *testing.T) {
	s := Spec{Kernel: "k"}.WithDefaults()
	if s.MemoryMiB != DefaultMemoryMiB || s.VCPUs != 1 || s.Accel != AccelKVM || s.SNP != nil || s.TDX != nil {
		t.Errorf("plain defaults: %+v", s)
	}
	given := &SNP{KernelHashes: true}
	s = Spec{Kernel: "k", TEE: TEESNP, SNP: given, MemoryMiB: 1024, VCPUs: 4, Accel: AccelTCG}.WithDefaults()
	if !reflect.DeepEqual(*s.SNP, SNP{Policy: 0x30000, CBitPos: 51, ReducedPhysBits: 1, KernelHashes: true}) {
		t.Errorf("SNP defaults: %+v", *s.SNP)
	}
	if !reflect.DeepEqual(*given, SNP{KernelHashes: true}) {
		t.Errorf("WithDefaults changed the caller's SNP: %+v", *given)
	}
	if s.MemoryMiB != 1024 || s.VCPUs != 4 || s.Accel != AccelTCG {
		t.Errorf("set fields changed: %+v", s)
	}
	s = Spec{Kernel: "k", TEE: TEESNP, SNP: &SNP{Policy: 0x70000, CBitPos: 47, ReducedPhysBits: 5}}.WithDefaults()
	if !reflect.DeepEqual(*s.SNP, SNP{Policy: 0x70000, CBitPos: 47, ReducedPhysBits: 5}) {
		t.Errorf("explicit SNP values replaced: %+v", *s.SNP)
	}
	if s := (Spec{Kernel: "k", TEE: TEETDX}).WithDefaults(); s.TDX == nil || !s.TDX.SeptVEDisable {
		t.Errorf("TDX defaults: %+v, want SeptVEDisable (QEMU's own default, which an explicit false clears)", s.TDX)
	}
	if s := (Spec{Kernel: "k", TEE: TEESNP}).WithDefaults(); !s.SNP.KernelHashes {
		t.Errorf("SNP defaults: %+v, want KernelHashes (measured direct boot)", *s.SNP)
	}
}

func TestValidate(t *testing.T) {
	if err := validSpec(t).WithDefaults().Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	snp := func(s *Spec) { s.TEE, s.Firmware = TEESNP, "/fw" }
	tdx := func(s *Spec) { s.TEE, s.Firmware = TEETDX, "/fw" }
	cases := []struct {
		name string
		mut  func(*Spec)
		want string // "" = valid
	}{
		{"NoKernel", func(s *Spec) { s.Kernel = "" }, "no kernel"},
		{"NULPath", func(s *Spec) { s.Initrd = "a\x00b" }, "NUL"},
		{"LongCmdline", func(s *Spec) { s.Cmdline = strings.Repeat("a", MaxCmdline+1) }, "at most 2047"},
		{"MaxCmdline", func(s *Spec) { s.Cmdline = strings.Repeat("a", MaxCmdline) }, ""},
		{"NewlineCmdline", func(s *Spec) { s.Cmdline = "a\nb" }, "printable ASCII"},
		{"UnicodeCmdline", func(s *Spec) { s.Cmdline = "é" }, "printable ASCII"},
		{"MinMemory", func(s *Spec) { s.MemoryMiB = MinMemoryMiB }, ""},
		{"LowMemory", func(s *Spec) { s.MemoryMiB = MinMemoryMiB - 1 }, "out of range"},
		{"MaxVCPUs", func(s *Spec) { s.VCPUs = MaxVCPUs }, ""},
		{"ManyVCPUs", func(s *Spec) { s.VCPUs = MaxVCPUs + 1 }, "out of range"},
		{"Accel", func(s *Spec) { s.Accel = "hvf" }, `unknown accelerator "hvf"`},
		{"TEE", func(s *Spec) { s.TEE = 7 }, "unknown TEE kind 7"},
		{"SNPOnPlain", func(s *Spec) { s.SNP = &SNP{} }, "set Spec.TEE"},
		{"TDXOnPlain", func(s *Spec) { s.TDX = &TDX{} }, "set Spec.TEE"},
		{"SNP", snp, ""},
		{"SNPTCG", func(s *Spec) { snp(s); s.Accel = AccelTCG }, "sev-snp VM needs KVM; it cannot run under tcg"},
		{"SNPNoFirmware", func(s *Spec) { snp(s); s.Firmware = "" }, "needs its firmware"},
		{"SNPWithTDX", func(s *Spec) { snp(s); s.TDX = &TDX{} }, "TDX properties given for an SEV-SNP VM"},
		{"SNPHostData", func(s *Spec) { snp(s); s.SNP = &SNP{HostData: make([]byte, 31)} }, "host data is 31 bytes"},
		{"SNPHostData32", func(s *Spec) { snp(s); s.SNP = &SNP{HostData: make([]byte, 32), KernelHashes: true} }, ""},
		{"SNPNoKernelHashes", func(s *Spec) { snp(s); s.SNP = &SNP{HostData: make([]byte, 32)} }, "without kernel hashes"},
		{"SNPDebug", func(s *Spec) { snp(s); s.SNP = &SNP{Policy: 0xb0000, KernelHashes: true} }, "sets DEBUG (bit 19)"},
		{"SNPMigrateMA", func(s *Spec) { snp(s); s.SNP = &SNP{Policy: 0x70000, KernelHashes: true} }, "sets MIGRATE_MA (bit 18)"},
		{"SNPSingleSocketNoSMT", func(s *Spec) { snp(s); s.SNP = &SNP{Policy: 0x120000, KernelHashes: true} }, ""},
		{"SNPCBit", func(s *Spec) { snp(s); s.SNP = &SNP{CBitPos: 64} }, "C-bit position 64"},
		{"SNPPolicy", func(s *Spec) { snp(s); s.SNP = &SNP{Policy: 0x10000} }, "lacks bit 17"},
		{"TDX", tdx, ""},
		{"TDXTCG", func(s *Spec) { tdx(s); s.Accel = AccelTCG }, "tdx VM needs KVM"},
		{"TDXWithSNP", func(s *Spec) { tdx(s); s.SNP = &SNP{} }, "SNP properties given for a TDX VM"},
		{"TDXMROwner", func(s *Spec) { tdx(s); s.TDX = &TDX{MROwner: make([]byte, 32)} }, "MROWNER is 32 bytes; it must be 48"},
		{"TDXMRs", func(s *Spec) {
			tdx(s)
			s.TDX = &TDX{MRConfigID: make([]byte, 48), MROwner: make([]byte, 48), MROwnerConfig: make([]byte, 48)}
		}, ""},
		{"TDXQGS", func(s *Spec) { tdx(s); s.TDX = &TDX{QuoteGenerationSocket: "qgs.sock"} }, "absolute path"},
		{"NoChannelFile", func(s *Spec) { s.Channels[0].File = nil }, "no host file"},
		{"ChannelName", func(s *Spec) { s.Channels[0].Name = "a b" }, "without spaces"},
		{"EmptyChannelName", func(s *Spec) { s.Channels[0].Name = "" }, "1 to 128 characters"},
		{"DuplicateChannel", func(s *Spec) { s.Channels = append(s.Channels, s.Channels[0]) }, "used twice"},
		{"TooManyChannels", func(s *Spec) {
			for i := 0; i < MaxChannels; i++ {
				s.Channels = append(s.Channels, Channel{Name: "c" + strings.Repeat("x", i), File: s.Channels[0].File})
			}
		}, "at most 31"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := validSpec(t)
			c.mut(&s)
			err := s.WithDefaults().Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("Validate = %v, want ErrInvalidSpec with %q", err, c.want)
			}
		})
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(k, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (Spec{Kernel: k}).CheckFiles(); err != nil {
		t.Errorf("CheckFiles = %v", err)
	}
	for _, c := range []struct {
		s    Spec
		want string
	}{
		{Spec{Kernel: filepath.Join(dir, "nope")}, "the VM's kernel: open " + filepath.Join(dir, "nope") + ": no such file"},
		{Spec{Kernel: k, Initrd: dir}, "the VM's initrd " + dir + " is not a regular file"},
		{Spec{Kernel: k, Firmware: empty}, "the VM's firmware " + empty + " is empty"},
	} {
		if err := c.s.CheckFiles(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CheckFiles(%+v) = %v, want %q", c.s, err, c.want)
		}
	}
}

func TestSNPFromCPUID(t *testing.T) {
	// An EPYC Genoa: SEV supported, C-bit 51, 1 bit of physical address
	// space lost.
	genoa := func(leaf, sub uint32) (a, b, c, d uint32) {
		switch leaf {
		case 0x80000000:
			return 0x80000028, 0, 0, 0
		case 0x8000001f:
			return 0x0101fd3f, 1<<6 | 51, 0x1fd, 0x1
		}
		return 0, 0, 0, 0
	}
	if c, r, ok := SNPFromCPUID(genoa); !ok || c != 51 || r != 1 {
		t.Errorf("SNPFromCPUID(genoa) = %d, %d, %v", c, r, ok)
	}
	intel := func(leaf, sub uint32) (a, b, c, d uint32) {
		if leaf == 0x80000000 {
			return 0x80000008, 0, 0, 0
		}
		return 0, 0, 0, 0
	}
	if _, _, ok := SNPFromCPUID(intel); ok {
		t.Error("SNPFromCPUID(intel) ok")
	}
	if _, _, ok := SNPFromCPUID(nil); ok {
		t.Error("SNPFromCPUID(nil) ok")
	}
}

func TestTEEString(t *testing.T) {
	for tee, want := range map[TEE]string{TEENone: "none", TEESNP: "sev-snp", TEETDX: "tdx", 9: "TEE(9)"} {
		if got := tee.String(); got != want {
			t.Errorf("%d.String() = %q", int(tee), got)
		}
	}
}
