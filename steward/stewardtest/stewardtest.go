// Package stewardtest makes Steward CAs for tests of the Steward and of its
// clients. It is for tests only: its keys are generated on the spot and
// nothing it makes should be trusted anywhere else.
package stewardtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/enarx-go/enarx/steward"
)

// ProductionCA returns a Steward CA whose certificate (key on curve) is
// issued by a separate P-384 root, so the Steward runs in production, not
// debug, mode; and that root, for relying parties to trust. Both are valid
// from an hour ago for a year.
func ProductionCA(t testing.TB, curve elliptic.Curve) (*steward.CA, *x509.Certificate) {
	t.Helper()
	now := time.Now()
	rootKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root := certify(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}, nil, &rootKey.PublicKey, rootKey)
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := certify(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Test Steward"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}, root, &key.PublicKey, rootKey)
	ca := &steward.CA{Key: key, Chain: []*x509.Certificate{cert, root}}
	if ca.Debug() {
		t.Fatal("stewardtest: the production CA puts the Steward in debug mode")
	}
	return ca, root
}

// certify signs tmpl with issuerKey (self-signed when issuer is nil).
func certify(t testing.TB, tmpl, issuer *x509.Certificate, pub *ecdsa.PublicKey, issuerKey *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	if issuer == nil {
		issuer = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, pub, issuerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
