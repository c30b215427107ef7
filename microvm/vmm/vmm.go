// Package vmm describes the virtual machine that a microVM Keep runs in and
// the interface of the programs that start it (Launcher): the guest kernel,
// initramfs and command line, firmware, memory, vCPUs, acceleration, the
// confidential-VM kind (SEV-SNP, TDX) and the virtio-serial channels to the
// host. Package vmm/qemu implements Launcher with QEMU.
//
// It also holds the host capability checks that `enarx platform info` and
// the backends use (KVM, /dev/sev, the kvm_amd / kvm_intel parameters, the
// confidential-VM firmware search); they read the machine through an fs.FS
// so that tests can fake it.
//
// Trust: everything here runs on the untrusted host. The VMM is outside the
// Keep's trust boundary; what the Keep trusts is the measured image
// (firmware, kernel, initramfs, command line), not this code. This package
// only keeps the host side robust: specs are validated before anything is
// started, and errors say what to fix.
package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvAccel is the environment variable that, set to "tcg", makes the kvm
// backend emulate the CPU in software (tests and CI without /dev/kvm). It is
// never chosen implicitly.
const EnvAccel = "ENARX_VM_ACCEL"

// Accel is the way a VMM runs guest code.
type Accel string

// Accelerators.
const (
	// AccelKVM runs the guest with the host kernel's KVM (needs /dev/kvm).
	AccelKVM Accel = "kvm"
	// AccelTCG emulates the CPU in software: slow, no hardware isolation;
	// for tests and machines without KVM.
	AccelTCG Accel = "tcg"
)

// TEE is the kind of confidential VM.
type TEE int

// TEE kinds.
const (
	// TEENone is a plain VM: the host can read and change its memory.
	TEENone TEE = iota
	// TEESNP is an AMD SEV-SNP confidential VM.
	TEESNP
	// TEETDX is an Intel TDX trust domain.
	TEETDX
)

// String returns "none", "sev-snp" or "tdx".
func (t TEE) String() string {
	switch t {
	case TEENone:
		return "none"
	case TEESNP:
		return "sev-snp"
	case TEETDX:
		return "tdx"
	}
	return fmt.Sprintf("TEE(%d)", int(t))
}

// SNP holds the sev-snp-guest object's properties.
type SNP struct {
	// Policy is the SNP guest policy; 0 means DefaultSNPPolicy. Validate
	// refuses the DEBUG (bit 19) and MIGRATE_MA (bit 18) bits: a Steward
	// refuses Keeps launched with them (docs/policy.md).
	Policy uint64
	// CBitPos is the C-bit position (CPUID 0x8000001F EBX[5:0] on the
	// host); 0 means DefaultCBitPos.
	CBitPos int
	// ReducedPhysBits is the physical address bits lost to memory
	// encryption (CPUID 0x8000001F EBX[11:6]); 0 means
	// DefaultReducedPhysBits.
	ReducedPhysBits int
	// KernelHashes has the VMM put the SHA-256 of kernel, initrd and
	// command line into the measured hashes page (measured direct boot).
	// It is required (Validate): without it the launch measurement covers
	// the firmware only, and the firmware boots whatever kernel, initrd
	// and command line the host serves. A nil Spec.SNP gets it on.
	KernelHashes bool
	// HostData is the 32-byte HOST_DATA reported in attestation reports;
	// empty means all zeros.
	HostData []byte
}

// SNP defaults.
const (
	// DefaultSNPPolicy: SMT allowed, bit 17 (reserved, must be one), debug
	// off, no migration agent.
	DefaultSNPPolicy uint64 = 0x30000
	// DefaultCBitPos is the C-bit position of every EPYC generation with
	// SEV-SNP (Milan, Genoa, Turin).
	DefaultCBitPos = 51
	// DefaultReducedPhysBits is what those CPUs report.
	DefaultReducedPhysBits = 1
	// SNPPolicyMigrateMA and SNPPolicyDebug are the guest policy bits
	// that allow a migration agent and debugging (SEV-SNP ABI, guest
	// policy structure).
	SNPPolicyMigrateMA uint64 = 1 << 18
	SNPPolicyDebug     uint64 = 1 << 19
)

// SNPFromCPUID fills CBitPos and ReducedPhysBits from the host's CPUID leaf
// 0x8000001F (ok is false when the CPU does not report SEV there). cpuid
// executes CPUID (see package platform).
func SNPFromCPUID(cpuid func(leaf, sub uint32) (eax, ebx, ecx, edx uint32)) (cbitpos, reducedPhysBits int, ok bool) {
	if cpuid == nil {
		return 0, 0, false
	}
	if max, _, _, _ := cpuid(0x80000000, 0); max < 0x8000001f {
		return 0, 0, false
	}
	eax, ebx, _, _ := cpuid(0x8000001f, 0)
	if eax&(1<<1) == 0 { // SEV
		return 0, 0, false
	}
	return int(ebx & 0x3f), int(ebx >> 6 & 0x3f), true
}

// TDX holds the tdx-guest object's properties (QEMU >= 10.1).
type TDX struct {
	// SeptVEDisable sets TD attribute bit 28; Linux guests refuse to boot
	// without it (unless the TD is in debug mode). QEMU sets it by
	// default, but the VMM passes this field explicitly: false clears it.
	// A nil Spec.TDX gets it on.
	SeptVEDisable bool
	// MRConfigID, MROwner and MROwnerConfig are the 48-byte values the TD
	// reports; empty means all zeros.
	MRConfigID, MROwner, MROwnerConfig []byte
	// QuoteGenerationSocket is the unix socket of the host's Quote
	// Generation Service; "" means the TD cannot get quotes through QEMU.
	QuoteGenerationSocket string
}

// Channel is one virtio-serial port between host and guest.
type Channel struct {
	// Name is the port name the guest sees in
	// /sys/class/virtio-ports/*/name, e.g. "enarx.ctl".
	Name string
	// File is the host end: a connected unix stream socket. The VMM
	// inherits it as a file descriptor. Launcher.Start takes ownership:
	// it closes File when it returns (the VMM keeps its own copy), so the
	// caller's other end sees EOF when the VMM exits.
	File *os.File
}

// Spec is the VM to start.
type Spec struct {
	// Kernel is the guest kernel (bzImage); required.
	Kernel string
	// Initrd is the initramfs; "" boots without one.
	Initrd string
	// Cmdline is the kernel command line.
	Cmdline string
	// Firmware is the OVMF / TDVF image; "" uses the VMM's default BIOS
	// (plain VMs only: SEV-SNP and TDX need one, see FindFirmware).
	Firmware string
	// MemoryMiB is the guest memory; 0 means DefaultMemoryMiB.
	MemoryMiB int
	// VCPUs is the number of vCPUs; 0 means 1.
	VCPUs int
	// CPU is the VMM's CPU model; "" picks one for Accel and TEE.
	CPU string
	// Accel is how the guest runs; "" means AccelKVM. TCG is used only
	// when asked for.
	Accel Accel
	// TEE is the confidential-VM kind.
	TEE TEE
	// SNP configures TEESNP (nil: defaults); must be nil otherwise.
	SNP *SNP
	// TDX configures TEETDX (nil: defaults); must be nil otherwise.
	TDX *TDX
	// Channels are the virtio-serial ports.
	Channels []Channel
	// Console receives the guest's serial console, one Write per line
	// (ending in "\n"); nil discards it. Writes come from one goroutine
	// and should not block for long: the VMM waits for them. The console
	// is written by the guest: untrusted.
	Console io.Writer
}

// Limits and defaults of a Spec.
const (
	DefaultMemoryMiB = 512
	MinMemoryMiB     = 64
	MaxMemoryMiB     = 1 << 20 // 1 TiB
	MaxVCPUs         = 255     // q35 without interrupt remapping
	// MaxChannels is what one virtio-serial device carries (port 0 is the
	// unused console port).
	MaxChannels = 31
	// MaxCmdline is Linux's x86 COMMAND_LINE_SIZE less the NUL.
	MaxCmdline = 2047
	// MaxChannelName bounds a port name.
	MaxChannelName = 128
	// SNPHostDataSize and TDXMeasurementSize are the sizes of those fields.
	SNPHostDataSize    = 32
	TDXMeasurementSize = 48
)

// ErrInvalidSpec is wrapped by every error of Spec.Validate.
var ErrInvalidSpec = errors.New("invalid VM spec")

// ErrKilled is wrapped by VM.Wait's error when the VM was stopped with
// VM.Kill.
var ErrKilled = errors.New("VM killed")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// WithDefaults returns s with the zero fields that have a default filled
// in: MemoryMiB, VCPUs, Accel, and for TEESNP the SNP properties (a nil
// SNP also gets KernelHashes), for TEETDX a nil TDX gets SeptVEDisable. It
// does not choose a CPU model (that is the VMM's vocabulary) and does not
// modify s's SNP value.
func (s Spec) WithDefaults() Spec {
	if s.MemoryMiB == 0 {
		s.MemoryMiB = DefaultMemoryMiB
	}
	if s.VCPUs == 0 {
		s.VCPUs = 1
	}
	if s.Accel == "" {
		s.Accel = AccelKVM
	}
	if s.TEE == TEESNP {
		snp := SNP{KernelHashes: true}
		if s.SNP != nil {
			snp = *s.SNP
		}
		if snp.Policy == 0 {
			snp.Policy = DefaultSNPPolicy
		}
		if snp.CBitPos == 0 {
			snp.CBitPos = DefaultCBitPos
		}
		if snp.ReducedPhysBits == 0 {
			snp.ReducedPhysBits = DefaultReducedPhysBits
		}
		s.SNP = &snp
	}
	if s.TEE == TEETDX && s.TDX == nil {
		s.TDX = &TDX{SeptVEDisable: true}
	}
	return s
}

// Validate checks what any VMM needs of s (after WithDefaults), without
// touching the file system: ranges, the TEE / accelerator combination,
// property sizes, channel names. Errors wrap ErrInvalidSpec.
func (s Spec) Validate() error {
	if s.Kernel == "" {
		return invalid("no kernel: set Spec.Kernel to a bzImage")
	}
	for _, f := range []struct{ name, v string }{{"kernel", s.Kernel}, {"initrd", s.Initrd}, {"firmware", s.Firmware}} {
		if strings.ContainsRune(f.v, 0) {
			return invalid("the %s path contains a NUL byte", f.name)
		}
	}
	if len(s.Cmdline) > MaxCmdline {
		return invalid("the kernel command line is %d bytes; Linux takes at most %d", len(s.Cmdline), MaxCmdline)
	}
	for _, r := range s.Cmdline {
		if r < ' ' || r > '~' {
			return invalid("the kernel command line contains %q; use printable ASCII", r)
		}
	}
	if s.MemoryMiB < MinMemoryMiB || s.MemoryMiB > MaxMemoryMiB {
		return invalid("memory %d MiB is out of range [%d, %d]", s.MemoryMiB, MinMemoryMiB, MaxMemoryMiB)
	}
	if s.VCPUs < 1 || s.VCPUs > MaxVCPUs {
		return invalid("%d vCPUs is out of range [1, %d]", s.VCPUs, MaxVCPUs)
	}
	switch s.Accel {
	case AccelKVM, AccelTCG:
	default:
		return invalid("unknown accelerator %q; use %q or %q", s.Accel, AccelKVM, AccelTCG)
	}
	if err := s.validateTEE(); err != nil {
		return err
	}
	return s.validateChannels()
}

func (s Spec) validateTEE() error {
	switch s.TEE {
	case TEENone:
		if s.SNP != nil || s.TDX != nil {
			return invalid("SNP or TDX properties given for a plain VM; set Spec.TEE")
		}
		return nil
	case TEESNP:
		if s.TDX != nil {
			return invalid("TDX properties given for an SEV-SNP VM")
		}
		if s.SNP == nil {
			return invalid("no SNP properties (call WithDefaults)")
		}
		if n := len(s.SNP.HostData); n != 0 && n != SNPHostDataSize {
			return invalid("SNP host data is %d bytes; it must be %d", n, SNPHostDataSize)
		}
		if s.SNP.CBitPos < 32 || s.SNP.CBitPos > 63 {
			return invalid("SNP C-bit position %d is out of range [32, 63]", s.SNP.CBitPos)
		}
		if s.SNP.ReducedPhysBits < 1 || s.SNP.ReducedPhysBits > 63 {
			return invalid("SNP reduced physical bits %d is out of range [1, 63]", s.SNP.ReducedPhysBits)
		}
		if s.SNP.Policy&(1<<17) == 0 {
			return invalid("SNP policy %#x lacks bit 17, which the SEV-SNP ABI requires to be one", s.SNP.Policy)
		}
		if s.SNP.Policy&SNPPolicyDebug != 0 {
			return invalid("SNP policy %#x sets DEBUG (bit 19): the host could read and change the Keep's memory; clear it", s.SNP.Policy)
		}
		if s.SNP.Policy&SNPPolicyMigrateMA != 0 {
			return invalid("SNP policy %#x sets MIGRATE_MA (bit 18): a host-chosen migration agent could export the Keep; clear it", s.SNP.Policy)
		}
		if !s.SNP.KernelHashes {
			return invalid("SNP without kernel hashes: the launch measurement would not cover the kernel, initrd and command line; set SNP.KernelHashes")
		}
	case TEETDX:
		if s.SNP != nil {
			return invalid("SNP properties given for a TDX VM")
		}
		if s.TDX == nil {
			return invalid("no TDX properties (call WithDefaults)")
		}
		for _, m := range []struct {
			name string
			v    []byte
		}{{"MRCONFIGID", s.TDX.MRConfigID}, {"MROWNER", s.TDX.MROwner}, {"MROWNERCONFIG", s.TDX.MROwnerConfig}} {
			if n := len(m.v); n != 0 && n != TDXMeasurementSize {
				return invalid("TDX %s is %d bytes; it must be %d", m.name, n, TDXMeasurementSize)
			}
		}
		if q := s.TDX.QuoteGenerationSocket; q != "" && (!strings.HasPrefix(q, "/") || strings.ContainsRune(q, 0)) {
			return invalid("the TDX quote generation socket %q must be an absolute path", q)
		}
	default:
		return invalid("unknown TEE kind %d", int(s.TEE))
	}
	if s.Accel != AccelKVM {
		return invalid("a %s VM needs KVM; it cannot run under %s", s.TEE, s.Accel)
	}
	if s.Firmware == "" {
		return invalid("a %s VM needs its firmware in Spec.Firmware (see vmm.FindFirmware)", s.TEE)
	}
	return nil
}

func (s Spec) validateChannels() error {
	if len(s.Channels) > MaxChannels {
		return invalid("%d channels; at most %d fit on one virtio-serial device", len(s.Channels), MaxChannels)
	}
	seen := make(map[string]bool, len(s.Channels))
	for i, c := range s.Channels {
		if err := ValidChannelName(c.Name); err != nil {
			return invalid("channel %d: %v", i, err)
		}
		if seen[c.Name] {
			return invalid("channel %d: the name %q is used twice", i, c.Name)
		}
		seen[c.Name] = true
		if c.File == nil {
			return invalid("channel %q has no host file", c.Name)
		}
	}
	return nil
}

// ValidChannelName reports whether name can be a virtio-serial port name:
// 1 to MaxChannelName printable ASCII characters other than space.
func ValidChannelName(name string) error {
	if name == "" || len(name) > MaxChannelName {
		return fmt.Errorf("a channel name has 1 to %d characters, not %d", MaxChannelName, len(name))
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f {
			return fmt.Errorf("channel name %q: use printable ASCII without spaces", name)
		}
	}
	return nil
}

// CheckFiles checks that the kernel, initrd and firmware that s names are
// readable regular files, with errors that name the missing file.
func (s Spec) CheckFiles() error {
	for _, f := range []struct{ what, path string }{
		{"kernel", s.Kernel}, {"initrd", s.Initrd}, {"firmware", s.Firmware},
	} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("the VM's %s: %w", f.what, err)
		}
		st, err := fh.Stat()
		fh.Close()
		if err != nil {
			return fmt.Errorf("the VM's %s: %w", f.what, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("the VM's %s %s is not a regular file", f.what, f.path)
		}
		if st.Size() == 0 {
			return fmt.Errorf("the VM's %s %s is empty", f.what, f.path)
		}
	}
	return nil
}

// Launcher starts VMs.
type Launcher interface {
	// Name identifies the VMM ("qemu").
	Name() string
	// Start validates s, starts the VM and returns once the VMM process
	// runs. Cancelling ctx kills the VM at any time during its life.
	Start(ctx context.Context, s Spec) (VM, error)
}

// VM is a started VM.
type VM interface {
	// Wait blocks until the VMM exits. It returns nil when the VMM exited
	// 0 (the guest powered off, or rebooted: VMMs run with "no reboot"),
	// an error wrapping ErrKilled after Kill, the context's error after
	// the Start context was cancelled, and otherwise an error with the
	// VMM's exit status and last messages. Every call returns the same.
	Wait() error
	// Kill stops the VM at once. It is idempotent and safe to call after
	// the VM exited.
	Kill() error
	// Pid is the VMM's process id.
	Pid() int
}
