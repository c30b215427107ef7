// Package vectors embeds the real attestation evidence captured on hardware by
// upstream Enarx (enarx/steward commit bb0ea54f9ba6, Apache-2.0; see
// testdata/README.md) and go-tdx-guest's real sample TDX quote (TDXSample)
// so that tests in several packages can share them, plus helpers to pull
// the evidence extension out of a CSR and to make CSRs.
//
// It is test data: nothing here is trusted, and production code must not
// import it.
package vectors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/asn1"
	"fmt"
	"time"

	"github.com/enarx-go/enarx/attest"
)

var (
	// MilanCSR is a P-384 CSR with SEV-SNP evidence (VCEK, Milan and Genoa
	// CRLs, a v2 report) from an AMD Milan host.
	//go:embed testdata/milan.signed.crl.csr
	MilanCSR []byte
	// SGXi5CSR is a P-256 CSR with SGX evidence from an Ice Lake client i5.
	//go:embed testdata/icelake.signed.tcb.crl.single.i5.csr
	SGXi5CSR []byte
	// SGXXeonCSR is a P-256 CSR with SGX evidence from an Ice Lake Xeon.
	//go:embed testdata/icelake.signed.tcb.crl.multi.xeon.csr
	SGXXeonCSR []byte
	// GenoaPKIPath is [ARK-Genoa, ASK-Genoa 0x020001]; that ASK is revoked
	// by the Genoa CRL inside MilanCSR.
	//go:embed testdata/genoa.pkipath
	GenoaPKIPath []byte
	// MilanPKIPath is [ARK-Milan, ASK-Milan].
	//go:embed testdata/milan.pkipath
	MilanPKIPath []byte
	// IntelRoot is the Intel SGX Root CA certificate (DER).
	//go:embed testdata/root.der
	IntelRoot []byte
	// StewardTOML is upstream's policy that matches the three CSRs.
	//go:embed testdata/steward.toml
	StewardTOML []byte
)

// Time is when all vectors are valid together (CRLs and TCB info expire
// later in February 2023).
var Time = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

// ParseCSR parses a CSR and returns it with its single evidence extension.
func ParseCSR(der []byte) (*x509.CertificateRequest, pkix.Extension, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, pkix.Extension{}, fmt.Errorf("parse CSR: %w", err)
	}
	prefix := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 58270, 1}
	for _, e := range csr.Extensions {
		if len(e.Id) == len(prefix)+1 && e.Id[:len(prefix)].Equal(prefix) {
			return csr, e, nil
		}
	}
	return nil, pkix.Extension{}, fmt.Errorf("CSR has no evidence extension")
}

// Evidence returns the evidence extension value of a CSR, or panics; for
// tests on the embedded vectors only.
func Evidence(der []byte) []byte {
	_, ext, err := ParseCSR(der)
	if err != nil {
		panic(err)
	}
	return ext.Value
}

// PKIPath decodes a DER SEQUENCE OF Certificate.
func PKIPath(der []byte) ([]*x509.Certificate, error) {
	var raws []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raws)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("pkipath: trailing data")
	}
	var out []*x509.Certificate
	for _, r := range raws {
		c, err := x509.ParseCertificate(r.FullBytes)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// NewCSR returns a CSR (upstream layout: empty subject, one extension
// request) for a fresh key on curve carrying exts, parsed and in DER, with
// its key.
func NewCSR(curve elliptic.Curve, exts ...pkix.Extension) (*x509.CertificateRequest, []byte, *ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	der, err := CSRWithKey(k, exts...)
	if err != nil {
		return nil, nil, nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return csr, der, k, nil
}

// CSRWithKey returns a DER CSR signed by k carrying exts.
func CSRWithKey(k *ecdsa.PrivateKey, exts ...pkix.Extension) ([]byte, error) {
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{ExtraExtensions: exts}, k)
}

// Request returns the verifier's request for a CSR signed by k carrying the
// evidence extension ext, verified at now.
func Request(k *ecdsa.PrivateKey, ext pkix.Extension, now time.Time) (*attest.VerifyRequest, error) {
	der, err := CSRWithKey(k, ext)
	if err != nil {
		return nil, err
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, err
	}
	return &attest.VerifyRequest{CSR: csr, Extension: ext, Now: now}, nil
}
