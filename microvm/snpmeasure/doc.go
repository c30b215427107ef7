// Package snpmeasure computes, offline, the AMD SEV-SNP launch digest — the
// 48-byte MEASUREMENT field of an attestation report — of a guest that QEMU
// starts with an AmdSev OVMF and measured direct kernel boot:
//
//	qemu-system-x86_64 -machine q35,confidential-guest-support=sev0 \
//	  -object sev-snp-guest,id=sev0,...,kernel-hashes=on \
//	  -bios OVMF.amdsev.fd -kernel K -initrd I -append C -smp N -cpu T
//
// so that a Steward policy can pin the value before the guest ever runs.
//
// What is measured, in order (AMD SEV-SNP ABI spec, SNP_LAUNCH_UPDATE and the
// PAGE_INFO structure; QEMU target/i386/sev.c; KVM's SNP_LAUNCH_FINISH):
//
//  1. every 4 KiB page of the firmware image as a NORMAL page, mapped so that
//     the image ends at 4 GiB;
//  2. the firmware's SEV metadata sections, in metadata order: SNP_SEC_MEMORY
//     and SVSM_CAA as ZERO pages, SNP_SECRETS as a SECRETS page, CPUID as a
//     CPUID page, and SNP_KERNEL_HASHES either as the NORMAL page holding
//     QEMU's SEV hash table (SHA-256 of kernel, initrd and cmdline with its
//     trailing NUL) or, without a kernel, as ZERO pages;
//  3. one VMSA page per vCPU: the boot CPU starts at the reset vector
//     (CS base 0xffff0000, RIP 0xfff0), the others at the SEV-ES reset block
//     address from the firmware; RDX holds the CPUID signature of the vCPU
//     type and SEV_FEATURES the guest features.
//
// Each page extends the digest: digest = SHA-384(PAGE_INFO), where PAGE_INFO
// is {digest so far, SHA-384 of the page or zeros, length 0x70, page type,
// IMI 0, VMPL permissions 0, GPA}.
//
// The VMSA contents model QEMU ≥ 9.1 on a host kernel with KVM_SEV_INIT2
// (QEMU passes vmsa_features = 0, KVM adds SNP_ACTIVE, so SEV_FEATURES = 0x1
// unless the host is configured otherwise); older hosts with the legacy
// KVM_SEV_SNP_INIT and debug_swap produce other VMSAs. Only the QEMU VMM is
// modelled (not EC2 or GCE).
//
// Results agree with virtee's sev-snp-measure (`--mode snp --vmm-type QEMU`)
// on the vectors in testdata/; no value here was checked against an SNP
// report from hardware.
//
// Parsing the firmware (ParseFirmware, on top of microvm/internal/ovmf) is apart from
// the digest computation (Measure). Inputs are untrusted bytes: errors say
// what is wrong, nothing panics.
package snpmeasure
