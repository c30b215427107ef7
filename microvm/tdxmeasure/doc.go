// Package tdxmeasure computes, offline, the MRTD of an Intel TDX trust domain
// that QEMU builds from a TDVF (OVMF with TDX support, e.g. Debian's
// OVMF.inteltdx.fd), so that a Steward [tdx] policy can pin it.
//
// MRTD is one SHA-384 over what the TDX module is given while the TD is
// built (Intel TDX Module ABI, TDH.MEM.PAGE.ADD and TDH.MR.EXTEND; Intel TDX
// Virtual Firmware Design Guide, "TDVF metadata"): for each TDVF metadata
// section in metadata order,
//
//   - every page is added with TDH.MEM.PAGE.ADD, which hashes a 128-byte
//     record {"MEM.PAGE.ADD", 4 zero bytes, GPA as uint64 LE, zeros};
//   - if the section has the MR_EXTEND attribute, every 256-byte chunk of
//     its data is measured with TDH.MR.EXTEND, which hashes the record
//     {"MR.EXTEND", 7 zero bytes, GPA of the chunk, zeros} and the chunk;
//   - PERM_MEM sections (PAGE_AUG attribute) are not added at build time
//     and do not count.
//
// Sections without MR_EXTEND (the CFV variable store, TD_HOB, TEMP_MEM)
// contribute their addresses only, so MRTD depends on the firmware image
// alone, not on anything QEMU writes into those pages.
//
// QEMU and KVM versions order the two kinds of record differently, and MRTD
// changes with the order:
//
//   - SinglePass (per page: PAGE.ADD, then its 16 MR.EXTENDs): upstream QEMU
//     ≥ 10.1 with upstream KVM TDX (Linux ≥ 6.16), where QEMU issues one
//     KVM_TDX_INIT_MEM_REGION per section and KVM's tdx_gmem_post_populate
//     adds and extends page by page. Read from QEMU target/i386/kvm/tdx.c and
//     Linux arch/x86/kvm/vmx/tdx.c.
//   - TwoPass (per section: all PAGE.ADDs, then all MR.EXTENDs): the 2024
//     pre-upstream TDX trees where QEMU populated a section with
//     KVM_MEMORY_MAPPING and then measured it with KVM_TDX_EXTEND_MEMORY
//     (KVM TDX v19 series); dstack-mr attributes this order to QEMU 8.x-based
//     TDX builds. We did not read those trees' sources in full.
//
// Both variants agree with Oasis's MRTD calculator (oasisprotocol/cli,
// build/measurement) on the vectors in testdata/; none was checked against a
// quote from TDX hardware.
//
// What cannot be computed here:
//
//   - RTMR0 is extended by TDVF with the TD HOB (built by QEMU from the guest
//     memory size and the metadata), the CFV variable store, the Secure Boot
//     variables and separators, QEMU's ACPI tables, table loader and RSDP
//     (which depend on the QEMU version, machine type, vCPU count, memory and
//     devices) and the boot variables; it can only be pinned per exact QEMU
//     command line, from an allow-list taken on hardware or by replaying the
//     TD's CCEL event log.
//   - RTMR1 would need the Authenticode (PE) SHA-384 of the kernel after QEMU
//     patches its setup header (type_of_loader, loadflags, cmd_line_ptr,
//     heap_end_ptr) and the EFI boot-service events TDVF logs.
//   - RTMR2 would need the kernel command line as TDVF measures it (UTF-16LE
//     with a NUL) and the initrd as Linux's EFI stub measures it.
//   - RTMR3 is not extended at boot.
//
// Parsing (ParseFirmware, on top of microvm/internal/ovmf) is apart from the digest
// (Firmware.MRTD). The image is untrusted: errors say what is wrong, nothing
// panics.
package tdxmeasure
