package tdx

import (
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
)

// TestChainKeysCheckedFirst: a TCB Info or QE Identity issuer chain whose
// signing certificate holds a huge RSA key (crafted: only its public key
// is needed) is refused for its key before any signature is checked with
// it; checking one would cost the sender's choice of CPU.
func TestChainKeysCheckedFirst(t *testing.T) {
	n := new(big.Int).Lsh(big.NewInt(1), 100_000-1)
	n.SetBit(n, 0, 1)
	signer, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	huge, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Intel SGX TCB Signing"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}, &x509.Certificate{Subject: pkix.Name{CommonName: "Intel SGX Root CA"}}, &rsa.PublicKey{N: n, E: 65537}, signer)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(e *envelope.TdxEvidence)
		code   string
	}{
		{"TCB Info signer", func(e *envelope.TdxEvidence) { e.TCB.Certs[0] = huge }, CodeTCBInfo},
		{"QE Identity signer", func(e *envelope.TdxEvidence) { e.QEIdentity.Certs[0] = huge }, CodeQEIdentity},
	} {
		ev := sampleEvidence(t)
		tc.mutate(ev)
		_, err := mustNew(t, nil).Verify(context.Background(), request(t, ev, elliptic.P384()))
		if r, ok := attest.AsRejection(err); !ok || r.Code != tc.code || !strings.Contains(r.Msg, "not ECDSA P-256") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
