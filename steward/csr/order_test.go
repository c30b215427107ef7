package csr_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/steward/csr"
)

// twiceRequested is an ES256 request (version v, key) asking for the KVM
// evidence extension twice, signed by signer.
func twiceRequested(t *testing.T, v int64, key, signer *ecdsa.PrivateKey) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := asn1.Marshal(pkix.Extension{Id: attest.OIDEvidenceKVM, Value: []byte{}})
	if err != nil {
		t.Fatal(err)
	}
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(v)
		b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(attest.OIDExtensionRequest)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(ext); b.AddBytes(ext) })
				})
			})
		})
	})
	tbs := tb.BytesOrPanic()
	h := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, signer, h[:])
	if err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
		})
		b.AddASN1BitString(sig)
	})
	return b.BytesOrPanic()
}

// TestCheckOrder: the structure, then the version, the algorithm and the
// self-signature are checked before anything about the requested
// extensions is said: a repeated extension is reported only for a request
// whose signature verifies (crypto/x509 refuses such requests before
// checking anything, so Parse checks them itself).
func TestCheckOrder(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name string
		der  []byte
		code string
	}{
		{"signed", twiceRequested(t, 0, key, key), csr.CodeExtensionDuplicate},
		{"signed by another key", twiceRequested(t, 0, key, other), csr.CodeSignature},
		{"version 1", twiceRequested(t, 1, key, key), csr.CodeVersion},
		{"P-384 key with ES256", twiceRequested(t, 0, p384, p384), csr.CodeAlgorithm},
	} {
		if _, err := csr.Parse(tc.der); !hasCode(err, tc.code) {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}
