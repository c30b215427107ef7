// Package ovmf reads the GUIDed footer table that OVMF/TDVF firmware images
// (edk2 OvmfPkg) carry just below their reset vector. The table is how a VMM
// finds what the firmware expects at launch: the SEV metadata
// (microvm/snpmeasure), the TDX metadata (microvm/tdxmeasure), the SEV-ES AP
// reset address and the area reserved for QEMU's kernel hash table.
//
// Layout (edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.asm, read the same way
// by QEMU's hw/i386/pc_sysfw_ovmf.c): the last 32 bytes of the image hold the
// reset vector; the 18 bytes before them are the footer entry
// {uint16 total table length, footer GUID}; the entries precede it, each laid
// out as {data, uint16 entry length (data + 18), GUID}, walked from the end of
// the table towards its start.
//
// Trust: the image is untrusted input. Parsing never panics, never reads
// outside the image, and rejects tables whose lengths do not add up or that
// name a GUID twice (QEMU would take the entry nearest the footer, other tools
// the farthest, so such an image has no single meaning).
package ovmf

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// GUID is a UEFI GUID in its on-disk byte order: the first three fields
// little-endian, the last eight bytes as written.
type GUID [16]byte

// ParseGUID parses the canonical text form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx".
func ParseGUID(s string) (GUID, error) {
	var g GUID
	parts := strings.Split(s, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 ||
		len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	raw, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	// Data1 (4 bytes), Data2 and Data3 (2 bytes each) are stored little-endian.
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants; it panics on a malformed literal.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the canonical lower-case text form.
func (g GUID) String() string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%s-%s",
		g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], hex.EncodeToString(g[8:10]), hex.EncodeToString(g[10:]))
}

// Well-known GUIDs of the footer table.
var (
	// FooterGUID marks the end of the table (OVMF_TABLE_FOOTER_GUID).
	FooterGUID = MustParseGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	// SEVESResetBlockGUID: {uint32 SEV-ES AP reset address}.
	SEVESResetBlockGUID = MustParseGUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
	// SEVMetadataGUID: {uint32 offset of the "ASEV" metadata from the image end}.
	SEVMetadataGUID = MustParseGUID("dc886566-984a-4798-a75e-5585a7bf67cc")
	// SEVHashTableGUID: {uint32 GPA, uint32 size} of the area reserved for
	// QEMU's kernel/initrd/cmdline hash table (SEV_HASH_TABLE_RV_GUID).
	SEVHashTableGUID = MustParseGUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
	// SEVSecretGUID: {uint32 GPA, uint32 size} of the SEV launch secret area.
	SEVSecretGUID = MustParseGUID("4c2eb361-7d9b-4cc3-8081-127c90d3d294")
	// TDXMetadataGUID: {uint32 offset of the "TDVF" metadata from the image end}.
	TDXMetadataGUID = MustParseGUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
)

const (
	// TrailerSize is what follows the footer entry: the 16-byte reset vector
	// and its padding.
	TrailerSize = 32
	entryHeader = 2 + 16 // uint16 length + GUID
)

// ErrNoTable is returned (wrapped) when the image has no footer GUID at the
// place OVMF puts it: the image is not an OVMF/TDVF build with a GUID table.
var ErrNoTable = errors.New("no OVMF footer GUID table")

// Entry is one table entry.
type Entry struct {
	GUID GUID
	// Data is the entry's payload (a sub-slice of the image).
	Data []byte
	// Offset is where Data starts in the image.
	Offset int
}

// Table is an image's footer GUID table, in image order (lowest offset first).
type Table struct {
	Entries []Entry
}

// ParseTable reads the footer GUID table of a firmware image.
func ParseTable(image []byte) (*Table, error) {
	end := len(image) - TrailerSize // where the footer entry ends
	if end < entryHeader {
		return nil, fmt.Errorf("%w: the image is only %d bytes", ErrNoTable, len(image))
	}
	if GUID(image[end-16:end]) != FooterGUID {
		return nil, fmt.Errorf("%w: footer GUID %s not found %d bytes before the end", ErrNoTable, FooterGUID, TrailerSize+16)
	}
	total := int(binary.LittleEndian.Uint16(image[end-entryHeader:]))
	if total < entryHeader || total > end {
		return nil, fmt.Errorf("OVMF footer table: length %d is outside [%d, %d]", total, entryHeader, end)
	}
	start := end - total
	t := &Table{}
	seen := map[GUID]bool{}
	pos := end - entryHeader // end of the entry being read
	for pos > start {
		if pos-start < entryHeader {
			return nil, fmt.Errorf("OVMF footer table: %d stray bytes at offset %d", pos-start, start)
		}
		var g GUID
		copy(g[:], image[pos-16:pos])
		n := int(binary.LittleEndian.Uint16(image[pos-entryHeader:]))
		if n < entryHeader || n > pos-start {
			return nil, fmt.Errorf("OVMF footer table: entry %s at offset %d has length %d, outside [%d, %d]",
				g, pos-n, n, entryHeader, pos-start)
		}
		if seen[g] {
			return nil, fmt.Errorf("OVMF footer table: GUID %s appears twice", g)
		}
		seen[g] = true
		off := pos - n
		t.Entries = append(t.Entries, Entry{GUID: g, Data: image[off : pos-entryHeader : pos-entryHeader], Offset: off})
		pos = off
	}
	// Entries were collected from the end; present them in image order.
	for i, j := 0, len(t.Entries)-1; i < j; i, j = i+1, j-1 {
		t.Entries[i], t.Entries[j] = t.Entries[j], t.Entries[i]
	}
	return t, nil
}

// Find returns the data of the entry with GUID g.
func (t *Table) Find(g GUID) ([]byte, bool) {
	for _, e := range t.Entries {
		if e.GUID == g {
			return e.Data, true
		}
	}
	return nil, false
}

// Uint32 returns the little-endian uint32 at the start of entry g's data.
// ok is false when the entry is missing; an error says it is too short.
func (t *Table) Uint32(g GUID) (v uint32, ok bool, err error) {
	d, ok := t.Find(g)
	if !ok {
		return 0, false, nil
	}
	if len(d) < 4 {
		return 0, true, fmt.Errorf("OVMF footer table: entry %s has %d data bytes, want at least 4", g, len(d))
	}
	return binary.LittleEndian.Uint32(d), true, nil
}

// Metadata locates a metadata block that an entry points at by its offset
// from the end of the image (the SEV "ASEV" and TDX "TDVF" blocks): it checks
// the 4-byte signature and returns the block's bytes, whose length is the
// block's own uint32 length field (at offset 4), at least minLen.
func (t *Table) Metadata(image []byte, g GUID, signature string, minLen int) ([]byte, error) {
	off, ok, err := t.Uint32(g)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no %s metadata: the footer table has no entry %s", signature, g)
	}
	if off == 0 || uint64(off) > uint64(len(image)) {
		return nil, fmt.Errorf("%s metadata: offset %#x from the image end is outside the %d-byte image", signature, off, len(image))
	}
	start := len(image) - int(off)
	if len(image)-start < 8 {
		return nil, fmt.Errorf("%s metadata at offset %#x: truncated header", signature, start)
	}
	if string(image[start:start+4]) != signature {
		return nil, fmt.Errorf("%s metadata at offset %#x: signature %q, want %q", signature, start, image[start:start+4], signature)
	}
	n := binary.LittleEndian.Uint32(image[start+4:])
	if uint64(n) < uint64(minLen) || uint64(n) > uint64(len(image)-start) {
		return nil, fmt.Errorf("%s metadata at offset %#x: length %d is outside [%d, %d]", signature, start, n, minLen, len(image)-start)
	}
	return image[start : start+int(n) : start+int(n)], nil
}
