// Package conformance holds end-to-end tests that replay real hardware
// evidence (SEV-SNP, SGX; see package vectors) and emulated evidence through
// a real Steward HTTP server on 127.0.0.1, configured like production: a CA
// that is not self-issued (so no debug shortcuts), the upstream test policy
// loaded by attestation/policy, and the verification clock pinned to
// 2023-02-01T00:00:00Z. It checks that every CSR is certified with the right
// attested-as record and that each tampered or disallowed variant is
// rejected with its specific reason code.
//
// The package has no non-test code besides this comment.
package conformance
