package identity

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
)

// createCSR builds the Keep's PKCS#10 request in upstream Enarx's layout:
// version 0, empty subject, the Keep's SubjectPublicKeyInfo, and one
// extensionRequest attribute holding non-critical extensions: the evidence
// extension (attest.EvidenceOID(kind); empty value for "none"/KVM) and,
// beyond upstream, the workload identity (attest.OIDWorkload) unless w is
// nil. No SANs: a Steward rejects any other requested extension.
//
// crypto/x509 puts ExtraExtensions into a single extensionRequest attribute
// and omits the critical flag when false, which is exactly upstream's
// encoding (checked byte-for-byte in the tests with cryptobyte).
func createCSR(s *keySigner, kind attest.Kind, evidence []byte, w *certext.Workload) ([]byte, error) {
	oid, err := attest.EvidenceOID(kind)
	if err != nil {
		return nil, err
	}
	exts := []pkix.Extension{{Id: oid, Critical: false, Value: evidence}}
	if w != nil {
		wext, err := w.Extension()
		if err != nil {
			return nil, err
		}
		exts = append(exts, wext)
	}
	tmpl := &x509.CertificateRequest{SignatureAlgorithm: s.signatureAlgorithm(), ExtraExtensions: exts}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, s)
	if err != nil {
		return nil, fmt.Errorf("signing CSR: %w", err)
	}
	return der, nil
}
