// Package sgx verifies Intel SGX DCAP evidence (quote v3 with ECDSA P-256
// attestation keys, as produced by Enarx SGX Keeps and carried in the
// SgxEvidence CSR extension, OID 1.3.6.1.4.1.58270.1.2) and applies the
// Steward's [sgx] policy to it.
//
// It is written on the standard library (crypto/ecdsa, crypto/x509) because
// no usable pure-Go DCAP v3 verifier exists: go-tdx-guest verifies only TDX
// quotes v4/v5, oasis-core needs QE Identity collateral and TCB Info v2, and
// ego/Open Enclave need cgo and a PCCS. The PCK certificate's SGX extension
// is parsed with go-tdx-guest's pcs package.
//
// What it trusts: only the embedded Intel SGX Root CA and the verification
// clock it is given. Everything else — quote, PCK chain, CRLs, TCB Info and
// its signing chain — comes from the evidence and is checked against that
// root. Byte layouts live in the quote and tcbinfo subpackages; CRL logic in
// attestation/crl.
//
// The order of checks follows upstream Steward (steward.md §4.2), with its
// gaps fixed: the TCB Signing certificate's validity is checked, a CRL is
// required for every link of the PCK and TCB chains (matched by URL or by
// issuer name), nextUpdate is enforced for CRLs and TCB Info, malformed TCB
// levels are rejected instead of crashing, a TCB level with status Revoked
// is never accepted, debug enclaves need an explicit "Debug" feature, and
// the policy can require a minimum tcbEvaluationDataNumber of the TCB Info
// and QE Identity (min_tcb_evaluation_data_number).
//
// Every failure is an *attest.Rejection whose Code starts with "sgx.".
package sgx
