// Package evidence is the Keep side of attestation: the packages below it
// produce hardware evidence that binds a Keep's public key, for the Steward
// to verify.
//
//   - tsm: the Linux configfs-tsm report interface (shared by SNP and TDX)
//   - snp: SEV-SNP guest reports (configfs-tsm, else /dev/sev-guest) with the
//     VCEK and AMD CRLs in upstream's SnpEvidence envelope
//   - tdx: TDX quotes (configfs-tsm, else /dev/tdx_guest) with collateral
//   - emulated: real-format SNP reports and TDX quotes signed by a locally
//     generated test root, for machines without the hardware (never trusted
//     by a Steward unless its policy names that root)
//
// What these packages trust: the TEE firmware interface (the kernel's report
// provider) to return what the hardware signed. Everything they return is
// checked again by the Steward; nothing here decides whether evidence is
// acceptable.
package evidence
