package snpmeasure

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// MaxVCPUs is the largest vCPU count accepted (QEMU's q35 limit with x2APIC).
const MaxVCPUs = 4096

// GuestFeatureSNPActive is SEV_FEATURES bit 0; the SNP firmware refuses a
// VMSA without it.
const GuestFeatureSNPActive = 0x1

// Options are the inputs of a QEMU SEV-SNP launch.
type Options struct {
	// OVMF is the AmdSev firmware image (-bios).
	OVMF []byte
	// Kernel (-kernel) switches on measured direct boot (kernel-hashes=on).
	// nil means no -kernel: the hashes page is measured as zero pages.
	Kernel []byte
	// Initrd (-initrd); nil or empty means none. Needs Kernel.
	Initrd []byte
	// Cmdline (-append); "" means none. Needs Kernel.
	Cmdline string
	// VCPUs is the vCPU count (-smp).
	VCPUs int
	// VCPUType is the QEMU CPU model (-cpu), e.g. "EPYC-v4"; see VCPUTypes.
	VCPUType string
	// GuestFeatures is the VMSA SEV_FEATURES value, 0x1 (SNPActive) on a
	// QEMU ≥ 9.1 / KVM_SEV_INIT2 host unless configured otherwise.
	GuestFeatures uint64
}

// Digest is a 48-byte SNP launch digest (the report's MEASUREMENT).
type Digest [48]byte

// String returns the digest as 96 lower-case hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Measure computes the launch digest for o.
func Measure(o Options) (Digest, error) {
	fw, err := ParseFirmware(o.OVMF)
	if err != nil {
		return Digest{}, fmt.Errorf("OVMF: %w", err)
	}
	return fw.Measure(o)
}

// Measure computes the launch digest for o with this firmware; o.OVMF is
// ignored. Parsing the firmware once and measuring several vCPU shapes with
// it saves re-reading the image, not hashing it.
func (fw *Firmware) Measure(o Options) (Digest, error) {
	if o.VCPUs < 1 || o.VCPUs > MaxVCPUs {
		return Digest{}, fmt.Errorf("vCPU count %d: want 1 to %d", o.VCPUs, MaxVCPUs)
	}
	sig, err := VCPUSignature(o.VCPUType)
	if err != nil {
		return Digest{}, err
	}
	if o.GuestFeatures&GuestFeatureSNPActive == 0 {
		return Digest{}, fmt.Errorf("guest features %#x: bit 0 (SNPActive) must be set for an SNP guest", o.GuestFeatures)
	}
	var hashes *Hashes
	if o.Kernel == nil {
		if len(o.Initrd) > 0 || o.Cmdline != "" {
			return Digest{}, errors.New("an initrd or command line needs a kernel: QEMU measures them only with -kernel")
		}
	} else {
		if err := fw.SupportsKernelHashes(); err != nil {
			return Digest{}, err
		}
		h, err := HashInputs(o.Kernel, o.Initrd, o.Cmdline)
		if err != nil {
			return Digest{}, err
		}
		hashes = &h
	}

	var d launchDigest
	d.addData(fw.GPA, fw.Image)
	for _, s := range fw.Sections {
		switch s.Type {
		case SectionSNPSecMemory, SectionSVSMCAA:
			d.addEmpty(pageZero, uint64(s.GPA), s.Size)
		case SectionSNPSecrets:
			d.addEmpty(pageSecrets, uint64(s.GPA), s.Size)
		case SectionCPUID:
			d.addEmpty(pageCPUID, uint64(s.GPA), s.Size)
		case SectionKernelHashes:
			if hashes != nil {
				d.addData(uint64(s.GPA), hashes.hashPage(fw.HashTableGPA))
			} else {
				d.addEmpty(pageZero, uint64(s.GPA), s.Size)
			}
		default: // ParseFirmware admits no other type
			return Digest{}, fmt.Errorf("SEV metadata section type %s", s.Type)
		}
	}
	bsp := vmsaPage(bspResetV, sig, o.GuestFeatures)
	var ap []byte
	if o.VCPUs > 1 {
		ap = vmsaPage(fw.APResetAddr, sig, o.GuestFeatures)
	}
	d.addVMSA(bsp)
	for range o.VCPUs - 1 {
		d.addVMSA(ap)
	}
	return Digest(d.cur), nil
}
