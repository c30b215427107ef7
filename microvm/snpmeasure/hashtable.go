package snpmeasure

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/enarx-go/enarx/microvm/internal/ovmf"
)

// GUIDs of QEMU's SEV hash table (target/i386/sev.c), which OVMF's
// BlobVerifierLibSevHashes checks the fw_cfg kernel, initrd and cmdline against.
var (
	hashTableHeaderGUID = ovmf.MustParseGUID("9438d606-4f22-4cc9-b479-a793d411fd21")
	hashKernelGUID      = ovmf.MustParseGUID("4de79437-abd2-427f-b835-d5b172d2045b")
	hashInitrdGUID      = ovmf.MustParseGUID("44baf731-3a2f-4bd7-9af1-41e29169781d")
	hashCmdlineGUID     = ovmf.MustParseGUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
)

const (
	hashEntrySize = 16 + 2 + sha256.Size       // {GUID, uint16 length, SHA-256}
	hashTableBody = 16 + 2 + 3*hashEntrySize   // SevHashTable: 168 bytes
	hashTableSize = (hashTableBody + 15) &^ 15 // PaddedSevHashTable: 176 bytes
)

// Hashes are the three SHA-256 digests QEMU puts in the hash table.
type Hashes struct {
	Kernel, Initrd, Cmdline [sha256.Size]byte
}

// HashInputs hashes what QEMU hashes: the kernel file as given (QEMU leaves
// the setup header of an SEV guest's kernel unpatched), the initrd (empty
// when there is none) and the command line with its terminating NUL ("\x00"
// alone without -append).
func HashInputs(kernel, initrd []byte, cmdline string) (Hashes, error) {
	if strings.IndexByte(cmdline, 0) >= 0 {
		return Hashes{}, fmt.Errorf("the kernel command line contains a NUL byte")
	}
	c := make([]byte, len(cmdline)+1)
	copy(c, cmdline)
	return Hashes{
		Kernel:  sha256.Sum256(kernel),
		Initrd:  sha256.Sum256(initrd),
		Cmdline: sha256.Sum256(c),
	}, nil
}

// HashTable returns the PaddedSevHashTable bytes QEMU writes for h: a header
// {GUID, uint16 length 168} followed by the cmdline, initrd and kernel
// entries {GUID, uint16 length 50, SHA-256}, zero-padded to 176 bytes.
func (h Hashes) HashTable() []byte {
	b := make([]byte, 0, hashTableSize)
	b = append(b, hashTableHeaderGUID[:]...)
	b = binary.LittleEndian.AppendUint16(b, hashTableBody)
	for _, e := range []struct {
		g ovmf.GUID
		h [sha256.Size]byte
	}{{hashCmdlineGUID, h.Cmdline}, {hashInitrdGUID, h.Initrd}, {hashKernelGUID, h.Kernel}} {
		b = append(b, e.g[:]...)
		b = binary.LittleEndian.AppendUint16(b, hashEntrySize)
		b = append(b, e.h[:]...)
	}
	return b[:hashTableSize] // the tail up to the capacity is the zero padding
}

// hashPage is the SNP_KERNEL_HASHES page: zeros with the table at the
// hash table address's offset within the page.
func (h Hashes) hashPage(tableGPA uint32) []byte {
	page := make([]byte, pageSize)
	copy(page[tableGPA%pageSize:], h.HashTable())
	return page
}
