package snpmeasure

import "encoding/binary"

// VMSA field offsets (AMD64 APM Volume 2, Table B-4, "VMSA Layout, State Save
// Area for SEV-ES"). A segment register is {uint16 selector, uint16
// attributes, uint32 limit, uint64 base}.
const (
	vmsaES, vmsaCS, vmsaSS, vmsaDS, vmsaFS, vmsaGS = 0x000, 0x010, 0x020, 0x030, 0x040, 0x050
	vmsaGDTR, vmsaLDTR, vmsaIDTR, vmsaTR           = 0x060, 0x070, 0x080, 0x090
	vmsaEFER                                       = 0x0d0
	vmsaCR4, vmsaCR0, vmsaDR7, vmsaDR6             = 0x148, 0x158, 0x160, 0x168
	vmsaRFLAGS, vmsaRIP                            = 0x170, 0x178
	vmsaGPAT                                       = 0x268
	vmsaRDX                                        = 0x310
	vmsaSEVFeatures                                = 0x3b0
	vmsaXCR0                                       = 0x3e8
	vmsaMXCSR, vmsaX87FCW                          = 0x408, 0x410
)

// Segment attributes in the VMCB's packed form (type, S, DPL, P in bits 7:0).
const (
	attrData  = 0x93 // present, read/write data, accessed
	attrCode  = 0x9b // present, execute/read code, accessed
	attrLDT   = 0x82 // present LDT
	attrTSS   = 0x8b // present busy 32-bit TSS
	bspResetV = 0xfffffff0
)

// vmsaPage builds the initial VMSA of one vCPU as KVM encrypts it for a QEMU
// SNP guest (KVM_SEV_INIT2): the x86 reset state (APM Vol. 2, 14.1.3) with
// KVM's adjustments — EFER.SVME, CR4.MCE, the default PAT, XCR0 = 1, the
// FCW and MXCSR QEMU sets (0x37f, 0x1f80) — the CPUID signature in RDX, and
// the guest features. resetAddr is where the vCPU starts: 0xfffffff0 for the
// boot CPU, the SEV-ES reset block address for the others.
func vmsaPage(resetAddr, cpuSig uint32, features uint64) []byte {
	p := make([]byte, pageSize)
	le := binary.LittleEndian
	seg := func(off int, sel, attr uint16, base uint64) {
		le.PutUint16(p[off:], sel)
		le.PutUint16(p[off+2:], attr)
		le.PutUint32(p[off+4:], 0xffff)
		le.PutUint64(p[off+8:], base)
	}
	for _, off := range []int{vmsaES, vmsaSS, vmsaDS, vmsaFS, vmsaGS} {
		seg(off, 0, attrData, 0)
	}
	seg(vmsaCS, 0xf000, attrCode, uint64(resetAddr&0xffff0000))
	seg(vmsaGDTR, 0, 0, 0)
	seg(vmsaIDTR, 0, 0, 0)
	seg(vmsaLDTR, 0, attrLDT, 0)
	seg(vmsaTR, 0, attrTSS, 0)
	le.PutUint64(p[vmsaEFER:], 0x1000) // EFER.SVME
	le.PutUint64(p[vmsaCR4:], 0x40)    // CR4.MCE
	le.PutUint64(p[vmsaCR0:], 0x10)    // CR0.ET
	le.PutUint64(p[vmsaDR7:], 0x400)   // DR7 reset value
	le.PutUint64(p[vmsaDR6:], 0xffff0ff0)
	le.PutUint64(p[vmsaRFLAGS:], 0x2) // reserved bit 1
	le.PutUint64(p[vmsaRIP:], uint64(resetAddr&0xffff))
	le.PutUint64(p[vmsaGPAT:], 0x0007040600070406)
	le.PutUint64(p[vmsaRDX:], uint64(cpuSig))
	le.PutUint64(p[vmsaSEVFeatures:], features)
	le.PutUint64(p[vmsaXCR0:], 1)
	le.PutUint32(p[vmsaMXCSR:], 0x1f80)
	le.PutUint16(p[vmsaX87FCW:], 0x37f)
	return p
}
