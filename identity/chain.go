package identity

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest/certext"
)

// maxChainCerts bounds how many certificates a Steward reply may hold.
// Upstream sends two (the Steward CA and the issued certificate).
const maxChainCerts = 8

// ParseChain decodes a Steward's reply to an application/pkcs10 request: a
// DER SEQUENCE OF Certificate, root first (PkiPath order), as upstream
// Steward sends it. It returns the certificates in the order received. The
// input is untrusted: any DER error, trailing data, an empty sequence or more
// than a few certificates is an error. It does not verify signatures; see
// Establish for that.
//
// It is hand-written with cryptobyte because encoding/asn1 cannot decode
// a SEQUENCE OF Certificate without re-encoding each element, and
// crypto/x509 must see each certificate's exact bytes.
func ParseChain(der []byte) ([]*x509.Certificate, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, errors.New("steward reply: not a DER SEQUENCE OF Certificate")
	}
	if !in.Empty() {
		return nil, errors.New("steward reply: trailing data after the certificate sequence")
	}
	var certs []*x509.Certificate
	for !seq.Empty() {
		if len(certs) == maxChainCerts {
			return nil, fmt.Errorf("steward reply: more than %d certificates", maxChainCerts)
		}
		var elem cryptobyte.String
		if !seq.ReadASN1Element(&elem, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("steward reply: certificate %d is not a DER SEQUENCE", len(certs))
		}
		c, err := x509.ParseCertificate(elem)
		if err != nil {
			return nil, fmt.Errorf("steward reply: certificate %d: %w", len(certs), err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("steward reply: empty certificate sequence")
	}
	return certs, nil
}

// leafFirst reverses a root-first PkiPath into the leaf-first order TLS uses.
func leafFirst(rootFirst []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, len(rootFirst))
	for i, c := range rootFirst {
		out[len(rootFirst)-1-i] = c
	}
	return out
}

// checkIssued checks a leaf-first chain from a Steward: it holds the issued
// certificate and the Steward CA, the leaf certifies this Keep's key and is
// not a CA, the last certificate (the root) is a CA, the chain verifies up
// to it, the leaf may serve for TLS server and client authentication, and a
// workload identity extension in the leaf, when the Steward copied one, is
// ours.
// It reports whether the leaf carries the workload identity.
func checkIssued(chain []*x509.Certificate, s *keySigner, w *certext.Workload) (workloadCopied bool, err error) {
	if len(chain) < 2 {
		return false, errors.New("want the steward CA certificate and the issued certificate, got one certificate")
	}
	leaf := chain[0]
	if !bytes.Equal(leaf.RawSubjectPublicKeyInfo, s.spki) {
		return false, errors.New("the issued certificate is not for this keep's key")
	}
	if leaf.BasicConstraintsValid && leaf.IsCA {
		return false, errors.New("the issued certificate is a CA certificate")
	}
	root := chain[len(chain)-1]
	// crypto/x509 trusts a certificate found in Roots as it is, without
	// checking its signature or that it may sign: a reply that repeats the
	// leaf as its root would "verify" without anyone vouching for it, and
	// make the leaf this Keep's Steward CA.
	if !root.BasicConstraintsValid || !root.IsCA {
		return false, fmt.Errorf("the chain's root %q is not a CA certificate", root.Subject)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	inter := x509.NewCertPool()
	for _, c := range chain[1 : len(chain)-1] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}
	if _, err := leaf.Verify(opts); err != nil {
		return false, fmt.Errorf("the chain does not verify: %w", err)
	}
	// The Keep presents the leaf as a TLS server (listen) and as a TLS
	// client (connect, client_auth = "steward" between Keeps); peers refuse
	// a leaf whose chain does not allow that, so refuse it here, at start,
	// naming the Steward. Upstream and this project's Stewards issue
	// serverAuth+clientAuth.
	for _, u := range []struct {
		eku  x509.ExtKeyUsage
		name string
	}{{x509.ExtKeyUsageServerAuth, "server"}, {x509.ExtKeyUsageClientAuth, "client"}} {
		opts.KeyUsages = []x509.ExtKeyUsage{u.eku}
		if _, err := leaf.Verify(opts); err != nil {
			return false, fmt.Errorf("the issued certificate is not valid for TLS %s authentication (extended key usage): %w", u.name, err)
		}
	}
	// TLS 1.3 signs with the ECDSA key; a key usage extension, when present
	// (this project's Steward sets digitalSignature, upstream sets none),
	// must allow that, or verifiers that check it (OpenSSL) refuse the leaf.
	if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return false, errors.New("the issued certificate's key usage does not allow digital signatures, which TLS needs")
	}
	got, _, err := certext.FromCertificate(leaf)
	if err != nil {
		return false, fmt.Errorf("the issued certificate: %w", err)
	}
	if got == nil {
		return false, nil
	}
	if !bytes.Equal(got.WasmSHA256, w.WasmSHA256) || !bytes.Equal(got.ConfigSHA256, w.ConfigSHA256) || got.Package != w.Package {
		return false, errors.New("the issued certificate names a different workload")
	}
	return true, nil
}
