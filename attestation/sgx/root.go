package sgx

import (
	"crypto/x509"
	_ "embed"
	"fmt"
)

// intelRootDER is the Intel SGX Root CA (CN=Intel SGX Root CA, valid
// 2018-05-21 to 2049-12-31, SHA-256 fingerprint
// 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3), the
// same certificate upstream Steward embeds as root.der. It is the only SGX
// trust anchor.
//
//go:embed intel_sgx_root_ca.der
var intelRootDER []byte

// IntelRootCA returns a fresh parsed copy of the embedded Intel SGX Root CA.
func IntelRootCA() *x509.Certificate {
	c, err := x509.ParseCertificate(intelRootDER)
	if err != nil {
		// The bytes are part of the binary; TestIntelRootCA pins them.
		panic(fmt.Sprintf("sgx: embedded Intel SGX Root CA does not parse: %v", err))
	}
	return c
}
