// Package emulated produces real-format SEV-SNP reports (and their VCEK
// chain and CRLs) signed by a test root generated on this machine, so the
// whole attestation path — Keep, CSR, Steward verification with policy,
// certificate, relying party — runs where there is no TEE hardware.
//
// The root is generated once and kept in the user's config directory
// (0600); it is never shipped. A Steward trusts it only when its policy
// names the emulated ARK certificate explicitly, logs that loudly, and
// records the issued certificate as not hardware-backed. Evidence from this
// package proves nothing about confidentiality: the "firmware" is this
// process, and its keys sit on the host's disk.
//
// Written here rather than on go-sev-guest's testing package because that
// package imports "testing", registers global flags and signs with an
// insecure random source — unsuitable inside the enarx binary.
package emulated
