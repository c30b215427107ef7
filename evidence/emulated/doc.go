// Package emulated produces real-format SEV-SNP reports (with their VCEK
// chain and CRLs) and TDX quotes v4 (with a PCK chain, CRLs, TCB Info and QE
// Identity) signed by test roots generated on this machine, so the
// whole attestation path — Keep, CSR, Steward verification with policy,
// certificate, relying party — runs where there is no TEE hardware.
//
// The roots are generated once and kept in the user's config directory
// (0600); it is never shipped. A Steward trusts it only when its policy
// names the emulated root certificate (ARK or Intel root) explicitly, logs that loudly, and
// records the issued certificate as not hardware-backed. Evidence from this
// package proves nothing about confidentiality: the "firmware" is this
// process, and its keys sit on the host's disk.
//
// Written here rather than on go-sev-guest's and go-tdx-guest's testing
// packages because those import "testing", register global flags and sign
// with an insecure random source — unsuitable inside the enarx binary. The
// tests check that go-sev-guest's and go-tdx-guest's own verifiers accept
// this evidence when given the emulated roots, and reject it with the real
// AMD and Intel roots.
package emulated
