package sgx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

// TestChainKeysCheckedFirst: a PCK chain whose intermediate holds a huge
// RSA key (crafted: no private key is needed, the leaf's signature only
// has to claim RSA) is refused for its key before any signature is
// checked with it; checking one would cost the sender's choice of CPU.
func TestChainKeysCheckedFirst(t *testing.T) {
	v := newVerifier(Options{Policy: testPolicy(t)})
	n := new(big.Int).Lsh(big.NewInt(1), 100_000-1)
	n.SetBit(n, 0, 1)
	huge := &rsa.PublicKey{N: n, E: 65537}
	signer, _ := rsa.GenerateKey(rand.Reader, 2048)
	now := time.Now()
	interName := pkix.Name{CommonName: "Intel SGX PCK Platform CA"}
	interDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: interName, Issuer: v.root.Subject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign,
	}, &x509.Certificate{Subject: v.root.Subject}, huge, signer)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "Intel SGX PCK Certificate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), SignatureAlgorithm: x509.SHA256WithRSA,
	}, &x509.Certificate{Subject: interName}, &leafKey.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := x509.ParseCertificate(interDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(leafDER)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = v.verifyChain([]*x509.Certificate{leaf, inter, v.root}, 3)
	if err == nil || !strings.Contains(err.Error(), "not ECDSA P-256") {
		t.Fatalf("%v", err)
	}
}
