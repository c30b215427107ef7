package tdxmeasure

import (
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
)

// Variant is the order in which the VMM adds and measures pages.
type Variant int

const (
	// SinglePass: per page, TDH.MEM.PAGE.ADD then TDH.MR.EXTEND of its
	// chunks (upstream QEMU ≥ 10.1, Linux ≥ 6.16).
	SinglePass Variant = iota
	// TwoPass: per section, every TDH.MEM.PAGE.ADD, then every
	// TDH.MR.EXTEND (pre-upstream KVM_MEMORY_MAPPING + KVM_TDX_EXTEND_MEMORY
	// trees).
	TwoPass
)

func (v Variant) String() string {
	switch v {
	case SinglePass:
		return "single-pass"
	case TwoPass:
		return "two-pass"
	}
	return fmt.Sprintf("Variant(%d)", int(v))
}

// Variants lists the supported variants.
func Variants() []Variant { return []Variant{SinglePass, TwoPass} }

// Digest is a 48-byte TDX measurement register value.
type Digest [48]byte

// String returns the digest as 96 lower-case hex digits.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

const extendChunk = 256 // TDH.MR.EXTEND measures 256 bytes at a time

// MRTD computes the MRTD of the TD QEMU builds from this firmware.
func (fw *Firmware) MRTD(v Variant) (Digest, error) {
	if v != SinglePass && v != TwoPass {
		return Digest{}, fmt.Errorf("unknown MRTD variant %d", int(v))
	}
	h := sha512.New384()
	var rec [128]byte
	pageAdd := func(gpa uint64) {
		clear(rec[:])
		copy(rec[:], "MEM.PAGE.ADD")
		binary.LittleEndian.PutUint64(rec[16:], gpa)
		h.Write(rec[:])
	}
	extend := func(s Section, page uint64) {
		data := fw.Image[uint64(s.DataOffset)+page*pageSize:][:pageSize]
		for off := uint64(0); off < pageSize; off += extendChunk {
			clear(rec[:])
			copy(rec[:], "MR.EXTEND")
			binary.LittleEndian.PutUint64(rec[16:], s.MemoryAddress+page*pageSize+off)
			h.Write(rec[:])
			h.Write(data[off : off+extendChunk])
		}
	}
	for _, s := range fw.Sections {
		if s.Attributes&AttrPageAug != 0 {
			continue // PermMem: not part of the initial TD
		}
		pages := s.MemoryDataSize / pageSize
		measured := s.Attributes&AttrMRExtend != 0
		for p := range pages {
			pageAdd(s.MemoryAddress + p*pageSize)
			if measured && v == SinglePass {
				extend(s, p)
			}
		}
		if measured && v == TwoPass {
			for p := range pages {
				extend(s, p)
			}
		}
	}
	return sum(h), nil
}

func sum(h hash.Hash) Digest {
	var d Digest
	copy(d[:], h.Sum(nil))
	return d
}

// MRTD parses a TDVF image and computes its MRTD for variant v.
func MRTD(image []byte, v Variant) (Digest, error) {
	fw, err := ParseFirmware(image)
	if err != nil {
		return Digest{}, fmt.Errorf("TDX firmware: %w", err)
	}
	return fw.MRTD(v)
}
