package tdxmeasure

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

const (
	pageSize = 4096
	// MaxFirmwareSize bounds the image (TDVF builds are 2 to 4 MiB).
	MaxFirmwareSize = 64 << 20

	// MaxInitialMemory bounds the guest memory the sections add at build
	// time (TDVF builds add about 4 MiB), so that a hostile image cannot
	// make MRTD hash for hours.
	MaxInitialMemory = 256 << 20

	// MaxSections bounds the number of TDVF metadata sections (TDVF builds
	// have about six). Each section is checked against the earlier ones,
	// and PermMem sections count against no memory bound, so an unbounded
	// count would let a hostile image make parsing take hours.
	MaxSections = 256

	tdvfSignature = "TDVF"
	tdvfHeader    = 16 // signature, length, version, section count
	tdvfSection   = 32
)

// SectionType is a TDVF metadata section type (TDVF Design Guide, Table 11-2).
type SectionType uint32

// Section types QEMU accepts.
const (
	SectionBFV     SectionType = 0 // boot firmware volume (code)
	SectionCFV     SectionType = 1 // configuration firmware volume (variables)
	SectionTDHOB   SectionType = 2 // the TD HOB QEMU builds
	SectionTempMem SectionType = 3 // temporary memory accepted at build time
	SectionPermMem SectionType = 4 // memory added later with TDH.MEM.PAGE.AUG
)

func (t SectionType) String() string {
	switch t {
	case SectionBFV:
		return "BFV"
	case SectionCFV:
		return "CFV"
	case SectionTDHOB:
		return "TD_HOB"
	case SectionTempMem:
		return "TempMem"
	case SectionPermMem:
		return "PermMem"
	}
	return fmt.Sprintf("unknown(%d)", uint32(t))
}

// Section attributes.
const (
	AttrMRExtend uint32 = 1 << 0 // measure the data with TDH.MR.EXTEND
	AttrPageAug  uint32 = 1 << 1 // added later with TDH.MEM.PAGE.AUG, unmeasured
)

// Section is one TDVF metadata section.
type Section struct {
	DataOffset     uint32 // where the data starts in the image
	RawDataSize    uint32 // how many bytes of the image it takes
	MemoryAddress  uint64 // GPA
	MemoryDataSize uint64 // bytes of guest memory
	Type           SectionType
	Attributes     uint32
}

// Firmware is a parsed TDVF image.
type Firmware struct {
	Image    []byte
	Sections []Section
}

// ErrNotTDVF is returned (wrapped) for an image without TDX metadata.
var ErrNotTDVF = errors.New("not a TDX (TDVF) firmware build")

// ParseFirmware reads the TDVF metadata of a firmware image and checks it as
// QEMU does (hw/i386/tdvf.c) and a little more: version 1; page-aligned
// sections that do not overlap in guest memory; image data inside the image;
// BFV/CFV with data, TD_HOB/TempMem/PermMem without; MR_EXTEND only on
// sections whose memory is all image data; PAGE_AUG exactly on PermMem
// sections (QEMU skips PermMem by type, other tools by attribute); exactly
// one TD_HOB; at most MaxSections sections.
func ParseFirmware(image []byte) (*Firmware, error) {
	if len(image) == 0 || len(image) > MaxFirmwareSize {
		return nil, fmt.Errorf("firmware image is %d bytes: want 1 to %d", len(image), MaxFirmwareSize)
	}
	tab, err := ovmf.ParseTable(image)
	if err != nil {
		if errors.Is(err, ovmf.ErrNoTable) {
			return nil, fmt.Errorf("%w (%w)", ErrNotTDVF, err)
		}
		return nil, err
	}
	if _, ok := tab.Find(ovmf.TDXMetadataGUID); !ok {
		return nil, fmt.Errorf("%w: the firmware has no TDX metadata (footer GUID %s); use an OVMF built from OvmfPkg/IntelTdx/IntelTdxX64.dsc (Debian: ovmf-inteltdx, OVMF.inteltdx.ms.fd)", ErrNotTDVF, ovmf.TDXMetadataGUID)
	}
	md, err := tab.Metadata(image, ovmf.TDXMetadataGUID, tdvfSignature, tdvfHeader)
	if err != nil {
		return nil, err
	}
	if v := binary.LittleEndian.Uint32(md[8:]); v != 1 {
		return nil, fmt.Errorf("TDVF metadata version %d, want 1", v)
	}
	n := binary.LittleEndian.Uint32(md[12:])
	if uint64(n) > uint64(len(md)-tdvfHeader)/tdvfSection {
		return nil, fmt.Errorf("TDVF metadata: %d sections do not fit in its %d bytes", n, len(md))
	}
	if n > MaxSections {
		return nil, fmt.Errorf("TDVF metadata: %d sections, at most %d are accepted", n, MaxSections)
	}
	fw := &Firmware{Image: image}
	hobs := 0
	var added uint64
	for i := range int(n) {
		b := md[tdvfHeader+i*tdvfSection:]
		s := Section{
			DataOffset:     binary.LittleEndian.Uint32(b),
			RawDataSize:    binary.LittleEndian.Uint32(b[4:]),
			MemoryAddress:  binary.LittleEndian.Uint64(b[8:]),
			MemoryDataSize: binary.LittleEndian.Uint64(b[16:]),
			Type:           SectionType(binary.LittleEndian.Uint32(b[24:])),
			Attributes:     binary.LittleEndian.Uint32(b[28:]),
		}
		if err := fw.checkSection(i, s); err != nil {
			return nil, err
		}
		if s.Type == SectionTDHOB {
			hobs++
		}
		if s.Attributes&AttrPageAug == 0 {
			if added += s.MemoryDataSize; added > MaxInitialMemory {
				return nil, fmt.Errorf("TDVF metadata: the sections add more than %d MiB of memory at build time", MaxInitialMemory>>20)
			}
		}
		fw.Sections = append(fw.Sections, s)
	}
	if hobs != 1 {
		return nil, fmt.Errorf("TDVF metadata has %d TD_HOB sections, want 1 (QEMU places its TD HOB there)", hobs)
	}
	return fw, nil
}

func (fw *Firmware) checkSection(i int, s Section) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("TDVF metadata section %d (%s): %s", i, s.Type, fmt.Sprintf(format, a...))
	}
	if s.Attributes&^(AttrMRExtend|AttrPageAug) != 0 {
		return bad("unknown attributes %#x", s.Attributes)
	}
	switch s.Type {
	case SectionBFV, SectionCFV:
		if s.RawDataSize == 0 {
			return bad("no image data")
		}
	case SectionTDHOB, SectionTempMem, SectionPermMem:
		if s.RawDataSize != 0 {
			return bad("%#x bytes of image data, want none", s.RawDataSize)
		}
	default:
		return bad("type not supported by QEMU")
	}
	if (s.Type == SectionPermMem) != (s.Attributes&AttrPageAug != 0) {
		return bad("attributes %#x: PAGE_AUG must be set exactly on PermMem sections", s.Attributes)
	}
	if s.Attributes&AttrPageAug != 0 && s.Attributes&AttrMRExtend != 0 {
		return bad("both PAGE_AUG and MR_EXTEND")
	}
	if s.MemoryAddress%pageSize != 0 || s.MemoryDataSize%pageSize != 0 || s.MemoryDataSize == 0 {
		return bad("memory %#x+%#x is empty or not page-aligned", s.MemoryAddress, s.MemoryDataSize)
	}
	end := s.MemoryAddress + s.MemoryDataSize
	if end < s.MemoryAddress || end > 1<<52 {
		return bad("memory %#x+%#x is beyond 52-bit guest physical addresses", s.MemoryAddress, s.MemoryDataSize)
	}
	if uint64(s.RawDataSize) > s.MemoryDataSize {
		return bad("%#x bytes of data do not fit its %#x bytes of memory", s.RawDataSize, s.MemoryDataSize)
	}
	if uint64(s.DataOffset)+uint64(s.RawDataSize) > uint64(len(fw.Image)) {
		return bad("data %#x+%#x is outside the %d-byte image", s.DataOffset, s.RawDataSize, len(fw.Image))
	}
	if s.Attributes&AttrMRExtend != 0 && uint64(s.RawDataSize) != s.MemoryDataSize {
		return bad("MR_EXTEND over %#x bytes of memory but only %#x bytes of data", s.MemoryDataSize, s.RawDataSize)
	}
	for j, o := range fw.Sections {
		if s.MemoryAddress < o.MemoryAddress+o.MemoryDataSize && o.MemoryAddress < end {
			return fmt.Errorf("TDVF metadata sections %d (%s) and %d (%s) overlap in guest memory", j, o.Type, i, s.Type)
		}
	}
	return nil
}
