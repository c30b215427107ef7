package csr

import (
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// malformedReason says in one line why der is not a DER
// CertificationRequest (RFC 2986), for the csr.malformed rejection:
//
//	CertificationRequest ::= SEQUENCE {
//	  certificationRequestInfo SEQUENCE { version INTEGER, subject Name,
//	    subjectPKInfo SEQUENCE, attributes [0] IMPLICIT SET OF Attribute },
//	  signatureAlgorithm AlgorithmIdentifier, signature BIT STRING }
//
// It walks that outline itself because crypto/x509's errors for broken
// DER are multi-line dumps of encoding/asn1's field parameters; parseErr
// (crypto/x509's error) is used, shortened, only for faults inside a
// field that has the right outline (a bad key, say).
func malformedReason(der []byte, parseErr error) string {
	if len(der) == 0 {
		return "the body is empty"
	}
	s := cryptobyte.String(der)
	var req cryptobyte.String
	if !s.ReadASN1(&req, cbasn1.SEQUENCE) {
		if der[0] != 0x30 {
			return fmt.Sprintf("the body does not start with a DER SEQUENCE (first byte 0x%02x)", der[0])
		}
		return "the body is truncated, or its outer length is not DER"
	}
	if len(s) > 0 {
		return fmt.Sprintf("%d bytes of trailing data follow the request", len(s))
	}
	var info, alg cryptobyte.String
	var sig asn1.BitString
	switch {
	case !req.ReadASN1(&info, cbasn1.SEQUENCE):
		return "the request info is missing, truncated or not a SEQUENCE"
	case !req.ReadASN1(&alg, cbasn1.SEQUENCE):
		return "the signature algorithm is missing or not a SEQUENCE"
	case !req.ReadASN1BitString(&sig):
		return "the signature is missing or not a BIT STRING"
	case len(req) > 0:
		return "unexpected data after the signature"
	}
	var version int64
	var name, spki, attrs cryptobyte.String
	switch {
	case !info.ReadASN1Int64WithTag(&version, cbasn1.INTEGER):
		return "the request info does not start with a version INTEGER"
	case !info.ReadASN1(&name, cbasn1.SEQUENCE):
		return "the subject name is missing or not a SEQUENCE"
	case !info.ReadASN1(&spki, cbasn1.SEQUENCE):
		return "the subject public key info is missing or not a SEQUENCE"
	case !info.ReadASN1(&attrs, cbasn1.Tag(0).ContextSpecific().Constructed()):
		return "the attributes ([0] SET) are missing or malformed"
	case len(info) > 0:
		return "unexpected data after the attributes"
	}
	return "a field is malformed: " + shortASN1Error(parseErr)
}

// shortASN1Error keeps the first clause of a crypto/x509 or encoding/asn1
// error: "asn1: structure error: tags don't match (16 vs {class:0 …}) {…}
// tbsCertificateRequest @2" becomes "asn1: structure error: tags don't
// match".
func shortASN1Error(err error) string {
	if err == nil {
		return "unknown error"
	}
	msg := err.Error()
	var se asn1.StructuralError
	var sy asn1.SyntaxError
	if errors.As(err, &se) {
		msg = "asn1: structure error: " + se.Msg
	} else if errors.As(err, &sy) {
		msg = "asn1: syntax error: " + sy.Msg
	}
	if i := strings.IndexAny(msg, "({\n"); i > 0 {
		msg = msg[:i]
	}
	return strings.TrimSpace(msg)
}
