package snp

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
)

// TestUnusedCRLsAuthenticated: the Milan evidence also carries the Genoa
// CRL, which the Milan chain does not use. It and any other CRL in the
// evidence must still be authentic (parse, and be signed by a trusted
// ARK): a changed byte, garbage, or a CRL from a key of the sender's own
// is refused, though none of them changes what the chain decides.
func TestUnusedCRLsAuthenticated(t *testing.T) {
	base := milanRequest(t)
	key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	genoa := rootsByProduct(t)["Genoa"]
	// A CRL in the Genoa ARK's name, signed by another key.
	forged, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: base.Now.Add(-time.Hour), NextUpdate: base.Now.Add(time.Hour),
	}, &x509.Certificate{Subject: genoa.ARK.Subject, KeyUsage: x509.KeyUsageCRLSign, SubjectKeyId: []byte{1}}, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    func(e *envelope.SnpEvidence)
		code string
	}{
		{"Genoa CRL signature byte", func(e *envelope.SnpEvidence) {
			c := e.CRLs[crlIndex(t, e, "Genoa")].CRL
			c[len(c)-1] ^= 1
		}, CodeCRLSignature},
		{"Genoa CRL garbage", func(e *envelope.SnpEvidence) {
			e.CRLs[crlIndex(t, e, "Genoa")].CRL = []byte{0x30, 0x03, 0x02, 0x01, 0x01}
		}, CodeCRLParse},
		{"forged CRL added", func(e *envelope.SnpEvidence) {
			e.CRLs = append(e.CRLs, envelope.CrlListEntry{URL: "https://example.com/crl", CRL: forged})
		}, CodeCRLSignature},
	} {
		_, err := newVerifier(t, stewardPolicy(t)).Verify(context.Background(), withEvidence(t, base, tc.f))
		if r, ok := attest.AsRejection(err); !ok || r.Code != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
	}
}

// rootsByProduct is DefaultRoots by product line.
func rootsByProduct(t testing.TB) map[string]Root {
	t.Helper()
	roots, err := DefaultRoots()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Root{}
	for _, r := range roots {
		m[r.ProductLine] = r
	}
	return m
}
