// Package e2e holds the hardware-free end-to-end tests of the confidential-VM
// backends: a Keep on the snp-emulated or tdx-emulated backend produces
// real-format evidence, a real Steward on 127.0.0.1 verifies it against a
// policy that names the emulated root, the Keep serves TLS with the issued
// certificate, and a relying party checks the attested measurement.
package e2e
