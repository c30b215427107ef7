package testutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"fmt"
	"io"
	"testing"
)

// FixedKey is an ECDSA key that signs deterministically (RFC 6979),
// whatever random source the caller passes: x509.CreateCertificate,
// CreateRevocationList and CreateCertificateRequest given a FixedKey and
// fixed templates return the same bytes every run, as committed fuzz seeds
// need.
type FixedKey struct{ *ecdsa.PrivateKey }

// Sign implements crypto.Signer with RFC 6979 nonces.
func (k FixedKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.PrivateKey.Sign(nil, digest, opts)
}

// FixedECDSAKey returns the reproducible key for label on curve (P-224,
// P-256, P-384 or P-521): its scalar is DeterministicBytes of the label.
func FixedECDSAKey(t testing.TB, curve elliptic.Curve, label string) FixedKey {
	t.Helper()
	n := (curve.Params().BitSize + 7) / 8
	for i := 0; i < 16; i++ {
		// A scalar not below the order (or zero) is refused: try the
		// next one (the chance is about 2^-32 for P-256).
		k, err := ecdsa.ParseRawPrivateKey(curve, DeterministicBytes(fmt.Sprintf("%s/%d", label, i), n))
		if err == nil {
			return FixedKey{k}
		}
	}
	t.Fatalf("no ECDSA scalar for %q", label)
	return FixedKey{}
}
