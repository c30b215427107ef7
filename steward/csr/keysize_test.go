package csr_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/steward/csr"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// TestRSAKeySizeBounded: an RSA key above MaxRSABits is refused as
// csr.algorithm, naming its size and the limit, before the signature is
// checked (verifying with a huge modulus is what costs the CPU: a
// 2,000,000-bit one took 70 s). A key at the limit reaches the signature
// check (and fails it: the crafted signature is wrong), so the rule, not
// the signature, refuses the larger ones.
func TestRSAKeySizeBounded(t *testing.T) {
	for _, tc := range []struct {
		bits int
		code string
	}{
		{csr.MaxRSABits, csr.CodeSignature},
		{csr.MaxRSABits + 1, csr.CodeAlgorithm},
		{8192, csr.CodeAlgorithm},
		{16384, csr.CodeAlgorithm},
		{2_000_000, csr.CodeAlgorithm},
	} {
		_, err := csr.Parse(stewardtest.CraftedRSARequest(tc.bits))
		r, ok := attest.AsRejection(err)
		if !ok || r.Code != tc.code {
			t.Fatalf("%d-bit key: %v, want %s", tc.bits, err, tc.code)
		}
		if tc.code == csr.CodeAlgorithm && !strings.Contains(r.Msg, "at most 4096") {
			t.Fatalf("%d-bit key: reason %q does not name the limit", tc.bits, r.Msg)
		}
	}
}

// TestCurvesRefused: only the P-256 and P-384 named curves pass; explicit
// curve parameters (a curve of the sender's choosing) do not parse.
func TestCurvesRefused(t *testing.T) {
	for _, curve := range []elliptic.Curve{elliptic.P224(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := csr.Parse(der); !hasCode(err, csr.CodeAlgorithm) {
			t.Fatalf("%s: %v", curve.Params().Name, err)
		}
	}
	// The P-256 request with its namedCurve OID replaced by explicit
	// parameters (any SEQUENCE: it is refused before they are read).
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	p256 := asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	var b cryptobyte.Builder
	b.AddASN1ObjectIdentifier(p256)
	old := b.BytesOrPanic()
	explicit := []byte{0x30, byte(len(old) - 2)}
	explicit = append(explicit, old[2:]...) // same length, a SEQUENCE tag
	i := strings.Index(string(der), string(old))
	if i < 0 {
		t.Fatal("no namedCurve in the request")
	}
	bad := append(append(append([]byte{}, der[:i]...), explicit...), der[i+len(old):]...)
	if _, err := csr.Parse(bad); !hasCode(err, csr.CodeMalformed) {
		t.Fatalf("explicit curve parameters: %v", err)
	}
}

func hasCode(err error, code string) bool {
	r, ok := attest.AsRejection(err)
	return ok && r.Code == code
}
