package vectors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/evidence/emulated"
)

// EmulatedTDXRequest returns the verifier's request for TDX evidence from
// the emulated Intel hierarchy e (a TD described by o, changed by f after
// signing when f is not nil), bound to a fresh P-384 CSR key, verified at
// now.
func EmulatedTDXRequest(e *emulated.TDXRoot, o emulated.TDXOptions, now time.Time, f func(*envelope.TdxEvidence)) (*attest.VerifyRequest, error) {
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, err
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	ev, err := e.Evidence(attest.ReportData(attest.KindTDX, spki), o, now)
	if err != nil {
		return nil, err
	}
	if f != nil {
		f(ev)
	}
	der, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	return Request(k, pkix.Extension{Id: attest.OIDEvidenceTDX, Value: der}, now)
}
