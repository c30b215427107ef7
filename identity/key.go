package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"

	"github.com/enarx-go/enarx/attest"
)

// keySigner holds the Keep's private key. It implements crypto.Signer so that
// crypto/x509 and crypto/tls can use the key, but it does not expose the key
// itself (no exported field, no accessor, no String or Format method), so a
// caller holding a tls.Certificate cannot extract or print it.
type keySigner struct {
	priv *ecdsa.PrivateKey
	// spki is the DER SubjectPublicKeyInfo: what evidence binds.
	spki []byte
}

// curveFor is the Keep key's curve: P-384 when the evidence is SNP or TDX
// (matching the VCEK and the SHA-384 report-data rule), P-256 otherwise
// (SGX's PCK curve; upstream uses it for KVM too).
func curveFor(k attest.Kind) elliptic.Curve {
	switch k {
	case attest.KindSNP, attest.KindTDX:
		return elliptic.P384()
	default:
		return elliptic.P256()
	}
}

func newKeySigner(k attest.Kind) (*keySigner, error) {
	priv, err := ecdsa.GenerateKey(curveFor(k), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating keep key: %w", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("encoding keep public key: %w", err)
	}
	return &keySigner{priv: priv, spki: spki}, nil
}

// Public implements crypto.Signer.
func (s *keySigner) Public() crypto.PublicKey { return &s.priv.PublicKey }

// Sign implements crypto.Signer.
func (s *keySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.priv.Sign(r, digest, opts)
}

// String keeps fmt from printing the key's fields.
func (s *keySigner) String() string { return "keep key (" + s.curveName() + ")" }

// GoString keeps %#v from printing the key's fields.
func (s *keySigner) GoString() string { return s.String() }

func (s *keySigner) curveName() string { return s.priv.Curve.Params().Name }

// signatureAlgorithm pairs the hash with the curve as upstream does:
// ecdsa-with-SHA384 for P-384, ecdsa-with-SHA256 for P-256.
func (s *keySigner) signatureAlgorithm() x509.SignatureAlgorithm {
	if s.priv.Curve == elliptic.P384() {
		return x509.ECDSAWithSHA384
	}
	return x509.ECDSAWithSHA256
}
