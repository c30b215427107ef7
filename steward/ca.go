package steward

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// CA is the Steward's signing identity: its private key and its
// certificate, followed by the certificates that issued it.
type CA struct {
	// Key signs issued certificates: an ECDSA P-256 or P-384 key.
	Key *ecdsa.PrivateKey
	// Chain[0] is the CA certificate for Key; Chain[1:] are its issuers,
	// each certifying the one before, optionally ending at a root.
	Chain []*x509.Certificate
}

// ParseCA reads a CA from PEM: keyPEM holds a PKCS#8 "PRIVATE KEY" (ECDSA
// P-256 or P-384, as upstream Steward), certPEM one or more "CERTIFICATE"
// blocks, the CA certificate for that key first and then its issuers.
func ParseCA(keyPEM, certPEM []byte) (*CA, error) {
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("CA certificate file: unexpected PEM block %q; want CERTIFICATE blocks only", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA certificate file: certificate %d: %w", len(chain), err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("CA certificate file: no PEM CERTIFICATE block found")
	}
	ca := &CA{Key: key, Chain: chain}
	if err := ca.check(); err != nil {
		return nil, err
	}
	return ca, nil
}

func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("CA key file: no PEM block found")
	}
	if b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("CA key file: PEM block %q; want an unencrypted PKCS#8 \"PRIVATE KEY\" (convert with: openssl pkcs8 -topk8 -nocrypt)", b.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key file: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || (ek.Curve != elliptic.P256() && ek.Curve != elliptic.P384()) {
		return nil, fmt.Errorf("CA key file: key type %T is not accepted; want ECDSA P-256 or P-384", k)
	}
	return ek, nil
}

// check verifies that the key matches Chain[0], that Chain[0] may issue
// certificates, and that each certificate is signed by the next.
func (ca *CA) check() error {
	if ca.Key == nil || len(ca.Chain) == 0 {
		return errors.New("CA: key and certificate are required")
	}
	if c := ca.Key.Curve; c != elliptic.P256() && c != elliptic.P384() {
		return fmt.Errorf("CA: key curve %s is not accepted; want P-256 or P-384", c.Params().Name)
	}
	cert := ca.Chain[0]
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&ca.Key.PublicKey) {
		return errors.New("CA: the key does not match the (first) CA certificate")
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errors.New("CA: the certificate is not a CA certificate (basicConstraints cA is not set)")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("CA: the certificate's key usage does not allow certificate signing")
	}
	for i := 0; i+1 < len(ca.Chain); i++ {
		if err := ca.Chain[i].CheckSignatureFrom(ca.Chain[i+1]); err != nil {
			return fmt.Errorf("CA: certificate %d is not issued by certificate %d: %w", i, i+1, err)
		}
	}
	return nil
}

// Debug reports upstream Steward's debug mode: the CA certificate is
// self-issued (its issuer name equals its subject name). A production
// Steward's CA is issued by another CA. (Upstream also compares the
// issuer and subject unique IDs, which real CA certificates never carry.)
func (ca *CA) Debug() bool {
	c := ca.Chain[0]
	return bytes.Equal(c.RawIssuer, c.RawSubject)
}

// GenerateCA creates an ephemeral self-signed CA as upstream's --host does:
// a P-256 key, subject and issuer CN=host, valid for 365 days from now,
// keyCertSign and cA with pathLen 0 (both critical). Being self-issued, it
// puts the Steward in debug mode.
func GenerateCA(host string, now time.Time) (*CA, error) {
	if host == "" {
		return nil, errors.New("generate CA: host name is empty")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		// Upstream uses serial 0, which RFC 5280 forbids; use a random one.
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: host},
		NotBefore:             now,
		NotAfter:              now.AddDate(0, 0, 365),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("generate CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("generate CA certificate: %w", err)
	}
	return &CA{Key: key, Chain: []*x509.Certificate{cert}}, nil
}

// signatureAlgorithm follows upstream: ES256 for a P-256 CA key, ES384 for
// P-384.
func (ca *CA) signatureAlgorithm() x509.SignatureAlgorithm {
	if ca.Key.Curve == elliptic.P384() {
		return x509.ECDSAWithSHA384
	}
	return x509.ECDSAWithSHA256
}

// serialLimit bounds random serials for generated CA certificates.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 127)

func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
