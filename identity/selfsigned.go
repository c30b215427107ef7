package identity

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// selfSignedValidity is upstream's self-signed certificate lifetime.
const selfSignedValidity = 365 * 24 * time.Hour

// selfSigned makes upstream's certificate for a Keep without a Steward:
// subject = issuer = CN=localhost, a 16-byte random serial, validity
// now..now+365 days, KeyUsage digitalSignature|keyEncipherment (critical),
// BasicConstraints CA=false (critical), EKU serverAuth+clientAuth.
//
// Beyond upstream it carries a DNS SAN "localhost": modern verifiers (Go's
// crypto/x509, rustls/webpki) ignore the Common Name, so without it a client
// that pins this certificate could still not verify it for "localhost".
func selfSigned(s *keySigner) (*x509.Certificate, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             now,
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  false,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		SignatureAlgorithm:    s.signatureAlgorithm(),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.Public(), s)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing own certificate: %w", err)
	}
	return cert, nil
}

// randomSerial returns a positive serial made of 16 random bytes (as
// upstream). The first byte is made non-zero so the integer keeps all 16
// significant bytes; if its top bit is set, DER adds a leading zero octet.
func randomSerial() (*big.Int, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("random serial: %w", err)
	}
	b[0] |= 1
	return new(big.Int).SetBytes(b[:]), nil
}
