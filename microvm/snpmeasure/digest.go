package snpmeasure

import (
	"crypto/sha512"
	"encoding/binary"
)

// Page types of SNP_LAUNCH_UPDATE (SEV-SNP ABI spec, PAGE_INFO.PAGE_TYPE).
const (
	pageNormal  = 0x1
	pageVMSA    = 0x2
	pageZero    = 0x3
	pageSecrets = 0x5
	pageCPUID   = 0x6
)

// vmsaGPA is the GPA recorded for VMSA pages: KVM registers them at GPA
// (u64)-1, which the firmware reduces to a page-aligned 52-bit address.
const vmsaGPA = 0xfffffffff000

const pageInfoSize = 0x70

// launchDigest chains PAGE_INFO structures as the SNP firmware does for
// every page given to SNP_LAUNCH_UPDATE.
type launchDigest struct {
	cur  [sha512.Size384]byte
	info [pageInfoSize]byte
}

// extend appends one page: contents is SHA-384 of the page for NORMAL and
// VMSA pages and all zeros for the other types.
func (d *launchDigest) extend(pageType byte, gpa uint64, contents *[sha512.Size384]byte) {
	b := d.info[:]
	copy(b[0:48], d.cur[:])
	copy(b[48:96], contents[:])
	binary.LittleEndian.PutUint16(b[96:], pageInfoSize)
	b[98] = pageType
	b[99] = 0                                   // IMI_PAGE
	b[100], b[101], b[102], b[103] = 0, 0, 0, 0 // VMPL3/2/1 permissions, reserved
	binary.LittleEndian.PutUint64(b[104:], gpa)
	d.cur = sha512.Sum384(b)
}

// addData measures data (a multiple of the page size) as NORMAL pages from gpa.
func (d *launchDigest) addData(gpa uint64, data []byte) {
	for off := 0; off < len(data); off += pageSize {
		h := sha512.Sum384(data[off : off+pageSize])
		d.extend(pageNormal, gpa+uint64(off), &h)
	}
}

// addEmpty measures size bytes from gpa as pages of a content-less type.
func (d *launchDigest) addEmpty(pageType byte, gpa uint64, size uint32) {
	var zero [sha512.Size384]byte
	for off := uint64(0); off < uint64(size); off += pageSize {
		d.extend(pageType, gpa+off, &zero)
	}
}

func (d *launchDigest) addVMSA(page []byte) {
	h := sha512.Sum384(page)
	d.extend(pageVMSA, vmsaGPA, &h)
}
