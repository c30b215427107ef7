// Package csr parses and authenticates the PKCS#10 certificate requests
// (RFC 2986) that Keeps send to the Steward.
//
// It trusts nothing in its input. Parse checks the structure, the version,
// the key and signature algorithm and the self-signature, and collects the
// requested extensions strictly: every attribute must be a single-valued
// extensionRequest and no extension may appear twice. It does not decide
// which extensions are acceptable or verify evidence; that is the Steward's
// policy (package steward) and the verifiers' job.
//
// Every error Parse returns is an *attest.Rejection with one of the Code*
// constants below, so the Steward can answer with a stable reason.
package csr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
)

// Stable rejection codes for problems with the request itself.
const (
	// CodeMalformed: the bytes are not a DER CertificationRequest.
	CodeMalformed = "csr.malformed"
	// CodeVersion: the version is not v1 (0).
	CodeVersion = "csr.version"
	// CodeAlgorithm: the key type and signature algorithm are not one of the
	// accepted pairs (ES256 with P-256, ES384 with P-384, RSASSA-PSS with
	// RSA of 2048 to 4096 bits). Decided before the signature is checked.
	CodeAlgorithm = "csr.algorithm"
	// CodeSignature: the self-signature does not verify.
	CodeSignature = "csr.signature"
	// CodeAttribute: an attribute other than a single-valued extensionRequest.
	CodeAttribute = "csr.attribute"
	// CodeExtensionDuplicate: the same extension is requested twice.
	CodeExtensionDuplicate = "csr.extension.duplicate"
	// CodeBundle: a request bundle is not a DER SEQUENCE OF
	// CertificationRequest, is empty, or holds too many requests.
	CodeBundle = "csr.bundle"
)

// minRSABits is the smallest RSA modulus accepted for RSASSA-PSS requests.
const minRSABits = 2048

// MaxRSABits is the largest RSA modulus accepted (as upstream's Rust rsa
// crate, whose RsaPublicKey refuses moduli above 4096 bits). Without it a
// request's self-signature check costs whatever the sender chooses: one
// RSA verification is quadratic in the modulus size, and a 2,000,000-bit
// modulus (a 500 KB request, no real key needed) burned 70 s of CPU.
const MaxRSABits = 4096

// Request is a parsed, self-signature-checked certificate request.
type Request struct {
	// CSR is the request as crypto/x509 parses it. Use its Raw* fields
	// (RawSubject, RawSubjectPublicKeyInfo) rather than the decoded ones.
	CSR *x509.CertificateRequest
	// Extensions are the requested extensions, in request order, with their
	// criticality exactly as encoded.
	Extensions []pkix.Extension
}

// Parse decodes one DER CertificationRequest and checks it: version 0, an
// accepted key/signature-algorithm pair, a valid self-signature, and only
// single-valued extensionRequest attributes without duplicate extensions.
func Parse(der []byte) (*Request, error) {
	c, err := x509.ParseCertificateRequest(der)
	if err != nil {
		// crypto/x509 refuses duplicate extensions itself; find out whether
		// that is the problem, to give its specific code (after the same
		// version, algorithm and signature checks as below).
		if dup := duplicateExtension(der); dup != nil {
			return nil, dup
		}
		return nil, attest.Reject(CodeMalformed, "the body is not a DER PKCS#10 certificate request: %s", malformedReason(der, err))
	}
	if c.Version != 0 {
		return nil, attest.Reject(CodeVersion, "certificate request version is %d, want 0 (v1)", c.Version)
	}
	if err := checkAlgorithm(c); err != nil {
		return nil, err
	}
	if err := c.CheckSignature(); err != nil {
		return nil, attest.RejectErr(CodeSignature, err, "the certificate request's self-signature does not verify")
	}
	// Only now, with the signature checked, look at what was requested.
	exts, err := parseAttributes(c.RawTBSCertificateRequest)
	if err != nil {
		return nil, err
	}
	return &Request{CSR: c, Extensions: exts}, nil
}

// duplicateExtension returns the CodeExtensionDuplicate rejection when der
// is structurally a request whose only fault is a repeated extension, and
// only once its self-signature is known to verify (with the checks of
// Parse: version, algorithm, then signature), so that an unauthenticated
// request learns nothing about its content. It returns the rejection of
// the version, algorithm or signature when one of those fails first, and
// nil when der has no repeated extension.
func duplicateExtension(der []byte) error {
	in := cryptobyte.String(der)
	var req, tbs, alg cryptobyte.String
	var sig asn1.BitString
	if !in.ReadASN1(&req, cbasn1.SEQUENCE) || !req.ReadASN1Element(&tbs, cbasn1.SEQUENCE) ||
		!req.ReadASN1Element(&alg, cbasn1.SEQUENCE) || !req.ReadASN1BitString(&sig) || sig.BitLength%8 != 0 {
		return nil
	}
	_, err := parseAttributes(tbs)
	r, ok := attest.AsRejection(err)
	if !ok || r.Code != CodeExtensionDuplicate {
		return nil
	}
	// crypto/x509 parses the key and signature algorithm of the same
	// request without its attributes; the signature is then checked over
	// the original, complete request info.
	c, err := x509.ParseCertificateRequest(withoutAttributes(tbs, alg, sig.Bytes))
	if err != nil {
		return nil
	}
	if c.Version != 0 {
		return attest.Reject(CodeVersion, "certificate request version is %d, want 0 (v1)", c.Version)
	}
	if err := checkAlgorithm(c); err != nil {
		return err
	}
	signer := &x509.Certificate{PublicKey: c.PublicKey, PublicKeyAlgorithm: c.PublicKeyAlgorithm}
	if err := signer.CheckSignature(c.SignatureAlgorithm, tbs, sig.Bytes); err != nil {
		return attest.RejectErr(CodeSignature, err, "the certificate request's self-signature does not verify")
	}
	return r
}

// withoutAttributes re-encodes a request with tbs's version, subject and
// key, an empty attribute set, and alg and sig: a request crypto/x509 can
// parse (its signature no longer matches; only the key and algorithm are
// wanted).
func withoutAttributes(tbs, alg cryptobyte.String, sig []byte) []byte {
	info := tbs
	var body, version, subject, spki cryptobyte.String
	if !info.ReadASN1(&body, cbasn1.SEQUENCE) || !body.ReadASN1Element(&version, cbasn1.INTEGER) ||
		!body.ReadASN1Element(&subject, cbasn1.SEQUENCE) || !body.ReadASN1Element(&spki, cbasn1.SEQUENCE) {
		return nil
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(version)
			b.AddBytes(subject)
			b.AddBytes(spki)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(*cryptobyte.Builder) {})
		})
		b.AddBytes(alg)
		b.AddASN1BitString(sig)
	})
	out, err := b.Bytes()
	if err != nil {
		return nil
	}
	return out
}

// checkAlgorithm enforces upstream Steward's accepted (key, signature)
// pairs and key sizes; it runs before the signature check, whose cost
// depends on the key. (Elliptic curves other than the named P-224, P-256,
// P-384 and P-521 never get here: crypto/x509 refuses explicit curve
// parameters and unknown curves while parsing.) crypto/x509 would also accept e.g. ECDSA-SHA512, Ed25519 and RSA
// PKCS#1 v1.5; upstream refuses those and so do we.
func checkAlgorithm(c *x509.CertificateRequest) error {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		switch {
		case k.Curve == elliptic.P256() && c.SignatureAlgorithm == x509.ECDSAWithSHA256,
			k.Curve == elliptic.P384() && c.SignatureAlgorithm == x509.ECDSAWithSHA384:
			return nil
		}
		return attest.Reject(CodeAlgorithm, "ECDSA %s key with signature algorithm %v is not accepted; use P-256 with ECDSA-SHA256 or P-384 with ECDSA-SHA384",
			k.Curve.Params().Name, c.SignatureAlgorithm)
	case *rsa.PublicKey:
		// The size first: everything after this may cost time in it.
		if n := k.N.BitLen(); n > MaxRSABits {
			return attest.Reject(CodeAlgorithm, "RSA key of %d bits is too large; want at most %d", n, MaxRSABits)
		}
		switch c.SignatureAlgorithm {
		case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
			// crypto/x509 accepts PSS parameters only when the MGF1 hash
			// equals the message hash, the salt length equals the hash
			// length and the trailer field is 1: exactly upstream's rule.
			if k.N.BitLen() < minRSABits {
				return attest.Reject(CodeAlgorithm, "RSA key of %d bits is too small; want at least %d", k.N.BitLen(), minRSABits)
			}
			return nil
		}
		return attest.Reject(CodeAlgorithm, "RSA signature algorithm %v is not accepted; use RSASSA-PSS", c.SignatureAlgorithm)
	}
	return attest.Reject(CodeAlgorithm, "public key algorithm %v is not accepted; use ECDSA P-256 or P-384", c.PublicKeyAlgorithm)
}

// parseAttributes walks the attributes of a TBS CertificationRequest:
//
//	CertificationRequestInfo ::= SEQUENCE {
//	    version INTEGER, subject Name, subjectPKInfo SubjectPublicKeyInfo,
//	    attributes [0] IMPLICIT SET OF Attribute }
//	Attribute ::= SEQUENCE { type OBJECT IDENTIFIER, values SET OF ANY }
//	ExtensionReq ::= SEQUENCE OF Extension
//
// It is written with cryptobyte because crypto/x509 silently skips
// attributes it cannot parse and reads only the first value of an
// extensionRequest; the Steward must refuse both.
func parseAttributes(tbs []byte) ([]pkix.Extension, error) {
	in := cryptobyte.String(tbs)
	var info cryptobyte.String
	if !in.ReadASN1(&info, cbasn1.SEQUENCE) ||
		!info.SkipASN1(cbasn1.INTEGER) || // version
		!info.SkipASN1(cbasn1.SEQUENCE) || // subject
		!info.SkipASN1(cbasn1.SEQUENCE) { // subjectPKInfo
		return nil, attest.Reject(CodeMalformed, "cannot decode the certificate request info")
	}
	var attrs cryptobyte.String
	if !info.ReadASN1(&attrs, cbasn1.Tag(0).Constructed().ContextSpecific()) || !info.Empty() {
		return nil, attest.Reject(CodeMalformed, "cannot decode the certificate request attributes")
	}
	var exts []pkix.Extension
	seen := map[string]bool{}
	for !attrs.Empty() {
		var attr, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrs.ReadASN1(&attr, cbasn1.SEQUENCE) || !attr.ReadASN1ObjectIdentifier(&oid) ||
			!attr.ReadASN1(&values, cbasn1.SET) || !attr.Empty() {
			return nil, attest.Reject(CodeMalformed, "cannot decode a certificate request attribute")
		}
		if !oid.Equal(attest.OIDExtensionRequest) {
			return nil, attest.Reject(CodeAttribute, "attribute %v is not accepted; only extensionRequest (%v) is", oid, attest.OIDExtensionRequest)
		}
		var req cryptobyte.String
		if !values.ReadASN1(&req, cbasn1.SEQUENCE) || !values.Empty() {
			return nil, attest.Reject(CodeAttribute, "the extensionRequest attribute must hold exactly one SEQUENCE OF Extension")
		}
		for !req.Empty() {
			e, err := readExtension(&req)
			if err != nil {
				return nil, err
			}
			if seen[e.Id.String()] {
				return nil, attest.Reject(CodeExtensionDuplicate, "extension %v is requested more than once", e.Id)
			}
			seen[e.Id.String()] = true
			exts = append(exts, e)
		}
	}
	return exts, nil
}

// readExtension reads Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER,
// critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }. An explicitly
// encoded FALSE is tolerated (some encoders emit it).
func readExtension(s *cryptobyte.String) (pkix.Extension, error) {
	var ext cryptobyte.String
	var e pkix.Extension
	var value []byte
	ok := s.ReadASN1(&ext, cbasn1.SEQUENCE) && ext.ReadASN1ObjectIdentifier(&e.Id)
	// (cryptobyte's ReadOptionalASN1Boolean mis-parses a present value, so
	// peek at the tag instead.)
	if ok && ext.PeekASN1Tag(cbasn1.BOOLEAN) {
		ok = ext.ReadASN1Boolean(&e.Critical)
	}
	if !ok || !ext.ReadASN1Bytes(&value, cbasn1.OCTET_STRING) || !ext.Empty() {
		return pkix.Extension{}, attest.Reject(CodeMalformed, "cannot decode a requested extension")
	}
	e.Value = value
	return e, nil
}

// MaxBundle is the largest number of requests accepted in one bundle.
const MaxBundle = 64

// SplitBundle splits a DER SEQUENCE OF CertificationRequest (the body of an
// application/vnd.steward.pkcs10-bundle.v1 request) into the DER of each
// request, without parsing them. It rejects trailing data, an empty bundle
// and more than MaxBundle requests.
func SplitBundle(der []byte) ([][]byte, error) {
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, attest.Reject(CodeBundle, "the body is not a DER SEQUENCE OF CertificationRequest")
	}
	var out [][]byte
	for !seq.Empty() {
		if len(out) == MaxBundle {
			return nil, attest.Reject(CodeBundle, "a bundle holds at most %d requests", MaxBundle)
		}
		var elem cryptobyte.String
		if !seq.ReadASN1Element(&elem, cbasn1.SEQUENCE) {
			return nil, attest.Reject(CodeBundle, "bundle element %d is not a DER SEQUENCE", len(out))
		}
		out = append(out, elem)
	}
	if len(out) == 0 {
		return nil, attest.Reject(CodeBundle, "the bundle holds no requests")
	}
	return out, nil
}
