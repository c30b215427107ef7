package snpmeasure

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

const (
	pageSize = 4096
	fourGiB  = 1 << 32
	// MaxFirmwareSize bounds the image: QEMU maps -bios images below 4 GiB
	// and the largest OVMF builds are 4 MiB.
	MaxFirmwareSize = 64 << 20
	// MaxSectionMemory bounds the memory the SEV metadata sections describe
	// (AmdSev OVMF: under 1 MiB), so that a hostile image cannot make the
	// digest take long.
	MaxSectionMemory = 256 << 20
	// MaxSections bounds the number of SEV metadata sections (AmdSev OVMF:
	// seven). Each section is checked against the earlier ones, so an
	// unbounded count would let a hostile image make parsing take hours.
	MaxSections = 256
)

// SectionType is the type of an SEV metadata section
// (edk2 OvmfPkg/ResetVector/X64/OvmfSevMetadata.asm).
type SectionType uint32

// Section types QEMU knows.
const (
	SectionSNPSecMemory  SectionType = 1    // pre-validated memory: ZERO pages
	SectionSNPSecrets    SectionType = 2    // the secrets page
	SectionCPUID         SectionType = 3    // the CPUID page
	SectionSVSMCAA       SectionType = 4    // SVSM calling area: ZERO pages
	SectionKernelHashes  SectionType = 0x10 // QEMU's kernel hash table page
	sevMetadataSignature             = "ASEV"
	sevMetadataHeader                = 16 // signature, length, version, count
	sevSectionSize                   = 12 // gpa, size, type (uint32 each)
)

func (t SectionType) String() string {
	switch t {
	case SectionSNPSecMemory:
		return "SNP_SEC_MEMORY"
	case SectionSNPSecrets:
		return "SNP_SECRETS"
	case SectionCPUID:
		return "CPUID"
	case SectionSVSMCAA:
		return "SVSM_CAA"
	case SectionKernelHashes:
		return "SNP_KERNEL_HASHES"
	}
	return fmt.Sprintf("unknown(%#x)", uint32(t))
}

// Section is one SEV metadata section: guest memory the VMM must add with
// SNP_LAUNCH_UPDATE before the guest starts.
type Section struct {
	GPA  uint32
	Size uint32
	Type SectionType
}

// Firmware is what the launch digest needs from an AmdSev OVMF image.
type Firmware struct {
	// Image is the whole firmware file.
	Image []byte
	// GPA is where the image starts in guest memory: 4 GiB - len(Image).
	GPA uint64
	// Sections are the SEV metadata sections, in metadata order.
	Sections []Section
	// APResetAddr is the SEV-ES reset block address where application
	// processors start (CS base = addr & 0xffff0000, RIP = addr & 0xffff).
	APResetAddr uint32
	// HashTableGPA and HashTableSize describe the area reserved for QEMU's
	// SEV hash table; both are 0 when the firmware has none.
	HashTableGPA, HashTableSize uint32
}

// ErrNotAmdSev is returned (wrapped) for an image without SEV metadata.
var ErrNotAmdSev = errors.New("not an AmdSev OVMF build")

// ParseFirmware reads an OVMF image's footer table and SEV metadata. It
// checks that the metadata is consistent: every section is page-aligned, lies
// below 4 GiB, outside the firmware image and apart from the other sections;
// the secrets, CPUID and kernel-hashes sections are one page; the SEV-ES
// reset address is set; there are at most MaxSections sections.
func ParseFirmware(image []byte) (*Firmware, error) {
	if len(image) == 0 || len(image)%pageSize != 0 || len(image) > MaxFirmwareSize {
		return nil, fmt.Errorf("firmware image is %d bytes: want a non-zero multiple of %d up to %d", len(image), pageSize, MaxFirmwareSize)
	}
	tab, err := ovmf.ParseTable(image)
	if err != nil {
		if errors.Is(err, ovmf.ErrNoTable) {
			return nil, fmt.Errorf("%w (%w): build OvmfPkg/AmdSev/AmdSevX64.dsc", ErrNotAmdSev, err)
		}
		return nil, err
	}
	fw := &Firmware{Image: image, GPA: fourGiB - uint64(len(image))}

	md, err := tab.Metadata(image, ovmf.SEVMetadataGUID, sevMetadataSignature, sevMetadataHeader)
	if err != nil {
		if _, ok := tab.Find(ovmf.SEVMetadataGUID); !ok {
			return nil, fmt.Errorf("%w: the firmware has no SEV metadata (footer GUID %s); use an OVMF built from OvmfPkg/AmdSev/AmdSevX64.dsc (Debian: ovmf-amdsev, OVMF.amdsev.fd)", ErrNotAmdSev, ovmf.SEVMetadataGUID)
		}
		return nil, err
	}
	if v := binary.LittleEndian.Uint32(md[8:]); v != 1 {
		return nil, fmt.Errorf("SEV metadata version %d, want 1", v)
	}
	n := binary.LittleEndian.Uint32(md[12:])
	if uint64(n) > uint64(len(md)-sevMetadataHeader)/sevSectionSize {
		return nil, fmt.Errorf("SEV metadata: %d sections do not fit in its %d bytes", n, len(md))
	}
	if n > MaxSections {
		return nil, fmt.Errorf("SEV metadata: %d sections, at most %d are accepted", n, MaxSections)
	}
	var total uint64
	for i := range int(n) {
		b := md[sevMetadataHeader+i*sevSectionSize:]
		s := Section{
			GPA:  binary.LittleEndian.Uint32(b),
			Size: binary.LittleEndian.Uint32(b[4:]),
			Type: SectionType(binary.LittleEndian.Uint32(b[8:])),
		}
		if err := fw.checkSection(i, s); err != nil {
			return nil, err
		}
		if total += uint64(s.Size); total > MaxSectionMemory {
			return nil, fmt.Errorf("SEV metadata: the sections describe more than %d MiB of memory", MaxSectionMemory>>20)
		}
		fw.Sections = append(fw.Sections, s)
	}

	addr, ok, err := tab.Uint32(ovmf.SEVESResetBlockGUID)
	if err != nil {
		return nil, err
	}
	if !ok || addr == 0 {
		return nil, fmt.Errorf("%w: the firmware has no SEV-ES reset block (footer GUID %s), which QEMU requires for SEV-ES and SNP guests", ErrNotAmdSev, ovmf.SEVESResetBlockGUID)
	}
	fw.APResetAddr = addr

	if d, ok := tab.Find(ovmf.SEVHashTableGUID); ok {
		if len(d) < 8 {
			return nil, fmt.Errorf("SEV hash table entry has %d data bytes, want 8", len(d))
		}
		fw.HashTableGPA = binary.LittleEndian.Uint32(d)
		fw.HashTableSize = binary.LittleEndian.Uint32(d[4:])
	}
	return fw, nil
}

func (fw *Firmware) checkSection(i int, s Section) error {
	switch s.Type {
	case SectionSNPSecMemory, SectionSVSMCAA:
	case SectionSNPSecrets, SectionCPUID, SectionKernelHashes:
		if s.Size != pageSize {
			return fmt.Errorf("SEV metadata section %d (%s) is %#x bytes: want one page (%#x)", i, s.Type, s.Size, pageSize)
		}
	default:
		return fmt.Errorf("SEV metadata section %d has unknown type %s", i, s.Type)
	}
	if s.Size == 0 {
		return nil // describes no memory; QEMU adds nothing for it
	}
	end := uint64(s.GPA) + uint64(s.Size)
	if s.GPA%pageSize != 0 || s.Size%pageSize != 0 {
		return fmt.Errorf("SEV metadata section %d (%s) at %#x+%#x is not page-aligned", i, s.Type, s.GPA, s.Size)
	}
	if end > fw.GPA {
		return fmt.Errorf("SEV metadata section %d (%s) at %#x+%#x overlaps the firmware image at %#x", i, s.Type, s.GPA, s.Size, fw.GPA)
	}
	for j, o := range fw.Sections {
		if o.Size != 0 && uint64(s.GPA) < uint64(o.GPA)+uint64(o.Size) && uint64(o.GPA) < end {
			return fmt.Errorf("SEV metadata sections %d (%s) and %d (%s) overlap", j, o.Type, i, s.Type)
		}
	}
	return nil
}

// Section returns the first section of type t.
func (fw *Firmware) Section(t SectionType) (Section, bool) {
	for _, s := range fw.Sections {
		if s.Type == t && s.Size != 0 {
			return s, true
		}
	}
	return Section{}, false
}

// SupportsKernelHashes says whether QEMU can place its kernel hash table in
// this firmware (kernel-hashes=on): it needs an SNP_KERNEL_HASHES section and
// a hash table area inside it.
func (fw *Firmware) SupportsKernelHashes() error {
	s, ok := fw.Section(SectionKernelHashes)
	if !ok {
		return fmt.Errorf("the firmware has no SNP_KERNEL_HASHES metadata section, so it cannot verify a kernel passed with -kernel; use an AmdSev OVMF build")
	}
	if fw.HashTableGPA == 0 || fw.HashTableSize < hashTableSize {
		return fmt.Errorf("the firmware's SEV hash table area (footer GUID %s) is %#x+%#x: want a non-zero address and at least %d bytes", ovmf.SEVHashTableGUID, fw.HashTableGPA, fw.HashTableSize, hashTableSize)
	}
	if fw.HashTableGPA < s.GPA || uint64(fw.HashTableGPA)+hashTableSize > uint64(s.GPA)+uint64(s.Size) {
		return fmt.Errorf("the firmware's SEV hash table at %#x is not inside its SNP_KERNEL_HASHES page %#x", fw.HashTableGPA, s.GPA)
	}
	return nil
}
