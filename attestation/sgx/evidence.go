package sgx

import (
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attestation/envelope"
)

// decodeEvidence decodes the SGX evidence extension value. Upstream's
// three-field SgxEvidence goes straight to package envelope. As an additive
// extension of this project, a fourth field may carry Intel's QE Identity
// collateral in the TcbPackage framing (issuer chain [TCB Signing, Root] and
// the raw PCS /qe/identity body):
//
//	SgxEvidence ::= SEQUENCE {
//	    quote      OCTET STRING,
//	    crl        CrlList,
//	    tcb        TcbPackage,
//	    qeIdentity TcbPackage OPTIONAL }   -- ours
//
// Upstream Steward would reject the four-field form, so Keeps send it only
// to this Steward.
func decodeEvidence(der []byte) (*envelope.SgxEvidence, *envelope.TcbPackage, error) {
	ev, err := envelope.DecodeSgxEvidence(der)
	if err == nil {
		return ev, nil, nil
	}
	if len(der) > envelope.MaxEvidenceSize {
		return nil, nil, err
	}
	// Split off an optional fourth element and decode both parts with the
	// envelope package.
	in := cryptobyte.String(der)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, nil, err
	}
	var quote, crls, tcb, qe cryptobyte.String
	if !body.ReadASN1Element(&quote, cbasn1.OCTET_STRING) ||
		!body.ReadASN1Element(&crls, cbasn1.SEQUENCE) ||
		!body.ReadASN1Element(&tcb, cbasn1.SEQUENCE) ||
		!body.ReadASN1Element(&qe, cbasn1.SEQUENCE) || !body.Empty() {
		return nil, nil, err // report the three-field decoder's error
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(quote)
		b.AddBytes(crls)
		b.AddBytes(tcb)
	})
	three, berr := b.Bytes()
	if berr != nil {
		return nil, nil, berr
	}
	if ev, err = envelope.DecodeSgxEvidence(three); err != nil {
		return nil, nil, err
	}
	pkg, err := envelope.DecodeTcbPackage(qe)
	if err != nil {
		return nil, nil, fmt.Errorf("SgxEvidence: qeIdentity: %w", err)
	}
	return ev, &pkg, nil
}
