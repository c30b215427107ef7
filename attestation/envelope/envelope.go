// Package envelope encodes and decodes the DER envelopes that carry TEE
// evidence inside a CSR extension: upstream Enarx's SnpEvidence, SgxEvidence,
// CrlList and TcbPackage (wire-compatible, see steward.md §3.3), and this
// project's TdxEvidence.
//
//	CrlListEntry ::= SEQUENCE { url UTF8String, crl CertificateList }
//	CrlList      ::= SEQUENCE { crls SEQUENCE OF CrlListEntry }
//	TcbPackage   ::= SEQUENCE { crts SEQUENCE OF Certificate, report OCTET STRING }
//	SgxEvidence  ::= SEQUENCE { quote OCTET STRING, crl CrlList, tcb TcbPackage }
//	SnpEvidence  ::= SEQUENCE {
//	    crts   SEQUENCE { vcek Certificate, crl CrlList },
//	    report OCTET STRING (SIZE(1184)) }
//	TdxEvidence  ::= SEQUENCE {                -- ours, OID 1.3.6.1.4.1.58270.1.4
//	    quote      OCTET STRING,               -- raw TDX quote v4 or v5
//	    crl        CrlList,                    -- Intel root CA CRL + PCK CA CRL
//	    tcb        TcbPackage,                 -- TDX TCB Info (PCS v4 /tdx/.../tcb)
//	    qeIdentity TcbPackage }                -- QE Identity (PCS v4 /tdx/.../qe/identity)
//
// This package only frames bytes. It trusts nothing: certificates, CRLs,
// reports and JSON bodies come back as raw bytes for the verifiers to parse
// and check. Decoders are strict DER readers: wrong tags, non-minimal
// lengths, trailing data, invalid UTF-8 and oversized input are errors, and
// no input makes them panic.
//
// Hand-written on x/crypto/cryptobyte rather than encoding/asn1 because
// encoding/asn1 silently accepts trailing bytes inside nested structures
// and offers no size limits.
package envelope

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Limits on decoded input. Real evidence is 4–15 KiB; these leave ample
// room while keeping a hostile CSR from making the Steward allocate much.
const (
	// MaxEvidenceSize bounds a whole envelope.
	MaxEvidenceSize = 1 << 20
	// MaxCRLs bounds the entries of a CrlList.
	MaxCRLs = 16
	// MaxCerts bounds the certificates of a TcbPackage.
	MaxCerts = 8
	// MaxURLLength bounds a CrlListEntry URL.
	MaxURLLength = 2048
	// SNPReportSize is the size of every SEV-SNP ATTESTATION_REPORT (v2–v5).
	SNPReportSize = 1184
)

// ErrTooLarge is returned (wrapped) when input exceeds a limit.
var ErrTooLarge = errors.New("evidence too large")

// CrlListEntry is one CRL with the URL it was downloaded from. Verifiers
// match CRLs to certificates by this URL (upstream) or by issuer.
type CrlListEntry struct {
	URL string
	CRL []byte // DER CertificateList, unparsed
}

// CrlList is a list of CRLs.
type CrlList []CrlListEntry

// TcbPackage is a signed Intel collateral document (TCB Info, QE Identity)
// with its issuer chain as PCS returns it: [TCB Signing, Root].
type TcbPackage struct {
	Certs  [][]byte // DER Certificates, unparsed
	Report []byte   // raw PCS JSON body, byte-exact
}

// SnpEvidence is the SEV-SNP evidence envelope.
type SnpEvidence struct {
	VCEK   []byte // DER Certificate, unparsed
	CRLs   CrlList
	Report []byte // raw ATTESTATION_REPORT, SNPReportSize bytes
}

// SgxEvidence is the SGX DCAP evidence envelope.
type SgxEvidence struct {
	Quote []byte // raw DCAP quote v3
	CRLs  CrlList
	TCB   TcbPackage
}

// TdxEvidence is the TDX evidence envelope: a quote and all collateral an
// offline verifier needs. The quote carries the PCK chain itself (certification
// data type 5/6); the CRLs are the Intel SGX Root CA CRL and the PCK
// (processor or platform) CA CRL, keyed by their PCS URLs.
type TdxEvidence struct {
	Quote      []byte
	CRLs       CrlList
	TCB        TcbPackage // TDX TCB Info v3
	QEIdentity TcbPackage // TDX QE Identity v2
}

// ---- decoding ----

func checkSize(der []byte) error {
	if len(der) > MaxEvidenceSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(der), MaxEvidenceSize)
	}
	return nil
}

func finish(what string, outer cryptobyte.String) error {
	if !outer.Empty() {
		return fmt.Errorf("%s: %d bytes of trailing data", what, len(outer))
	}
	return nil
}

// readSeqElement reads one complete DER SEQUENCE element (tag and length
// included), as used for Certificates and CertificateLists.
func readSeqElement(s *cryptobyte.String, what string) ([]byte, error) {
	var el cryptobyte.String
	if !s.ReadASN1Element(&el, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%s: not a DER SEQUENCE", what)
	}
	return clone(el), nil
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

func readCrlList(s *cryptobyte.String) (CrlList, error) {
	var outer, list cryptobyte.String
	if !s.ReadASN1(&outer, cbasn1.SEQUENCE) {
		return nil, errors.New("CrlList: not a DER SEQUENCE")
	}
	if !outer.ReadASN1(&list, cbasn1.SEQUENCE) {
		return nil, errors.New("CrlList: crls is not a SEQUENCE OF")
	}
	if err := finish("CrlList", outer); err != nil {
		return nil, err
	}
	var out CrlList
	for !list.Empty() {
		if len(out) == MaxCRLs {
			return nil, fmt.Errorf("CrlList: %w: more than %d CRLs", ErrTooLarge, MaxCRLs)
		}
		var entry, url cryptobyte.String
		if !list.ReadASN1(&entry, cbasn1.SEQUENCE) {
			return nil, fmt.Errorf("CrlListEntry %d: not a DER SEQUENCE", len(out))
		}
		if !entry.ReadASN1(&url, cbasn1.UTF8String) {
			return nil, fmt.Errorf("CrlListEntry %d: url is not a UTF8String", len(out))
		}
		if len(url) > MaxURLLength {
			return nil, fmt.Errorf("CrlListEntry %d: %w: url of %d bytes", len(out), ErrTooLarge, len(url))
		}
		if !utf8.Valid(url) {
			return nil, fmt.Errorf("CrlListEntry %d: url is not valid UTF-8", len(out))
		}
		crl, err := readSeqElement(&entry, fmt.Sprintf("CrlListEntry %d: crl", len(out)))
		if err != nil {
			return nil, err
		}
		if err := finish(fmt.Sprintf("CrlListEntry %d", len(out)), entry); err != nil {
			return nil, err
		}
		out = append(out, CrlListEntry{URL: string(url), CRL: crl})
	}
	return out, nil
}

func readTcbPackage(s *cryptobyte.String, what string) (TcbPackage, error) {
	var outer, crts, report cryptobyte.String
	if !s.ReadASN1(&outer, cbasn1.SEQUENCE) {
		return TcbPackage{}, fmt.Errorf("%s: not a DER SEQUENCE", what)
	}
	if !outer.ReadASN1(&crts, cbasn1.SEQUENCE) {
		return TcbPackage{}, fmt.Errorf("%s: crts is not a SEQUENCE OF", what)
	}
	var p TcbPackage
	for !crts.Empty() {
		if len(p.Certs) == MaxCerts {
			return TcbPackage{}, fmt.Errorf("%s: %w: more than %d certificates", what, ErrTooLarge, MaxCerts)
		}
		c, err := readSeqElement(&crts, fmt.Sprintf("%s: certificate %d", what, len(p.Certs)))
		if err != nil {
			return TcbPackage{}, err
		}
		p.Certs = append(p.Certs, c)
	}
	if !outer.ReadASN1(&report, cbasn1.OCTET_STRING) {
		return TcbPackage{}, fmt.Errorf("%s: report is not an OCTET STRING", what)
	}
	p.Report = clone(report)
	return p, finish(what, outer)
}

func decodeOuter(der []byte, what string) (cryptobyte.String, error) {
	if err := checkSize(der); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	in := cryptobyte.String(der)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) {
		return nil, fmt.Errorf("%s: not a DER SEQUENCE", what)
	}
	if err := finish(what, in); err != nil {
		return nil, err
	}
	return body, nil
}

// DecodeCrlList decodes a DER CrlList (as cached by `enarx platform … cache-crl`).
func DecodeCrlList(der []byte) (CrlList, error) {
	if err := checkSize(der); err != nil {
		return nil, fmt.Errorf("CrlList: %w", err)
	}
	s := cryptobyte.String(der)
	l, err := readCrlList(&s)
	if err != nil {
		return nil, err
	}
	return l, finish("CrlList", s)
}

// DecodeTcbPackage decodes a DER TcbPackage.
func DecodeTcbPackage(der []byte) (TcbPackage, error) {
	if err := checkSize(der); err != nil {
		return TcbPackage{}, fmt.Errorf("TcbPackage: %w", err)
	}
	s := cryptobyte.String(der)
	p, err := readTcbPackage(&s, "TcbPackage")
	if err != nil {
		return TcbPackage{}, err
	}
	return p, finish("TcbPackage", s)
}

// DecodeSnpEvidence decodes the value of an SNP evidence extension.
func DecodeSnpEvidence(der []byte) (*SnpEvidence, error) {
	body, err := decodeOuter(der, "SnpEvidence")
	if err != nil {
		return nil, err
	}
	var crts, report cryptobyte.String
	if !body.ReadASN1(&crts, cbasn1.SEQUENCE) {
		return nil, errors.New("SnpEvidence: crts is not a SEQUENCE")
	}
	vcek, err := readSeqElement(&crts, "SnpEvidence: vcek")
	if err != nil {
		return nil, err
	}
	crls, err := readCrlList(&crts)
	if err != nil {
		return nil, fmt.Errorf("SnpEvidence: %w", err)
	}
	if err := finish("SnpEvidence crts", crts); err != nil {
		return nil, err
	}
	if !body.ReadASN1(&report, cbasn1.OCTET_STRING) {
		return nil, errors.New("SnpEvidence: report is not an OCTET STRING")
	}
	if len(report) != SNPReportSize {
		return nil, fmt.Errorf("SnpEvidence: report is %d bytes, want %d", len(report), SNPReportSize)
	}
	if err := finish("SnpEvidence", body); err != nil {
		return nil, err
	}
	return &SnpEvidence{VCEK: vcek, CRLs: crls, Report: clone(report)}, nil
}

// DecodeSgxEvidence decodes the value of an SGX evidence extension (upstream
// generation C: quote, CRLs and TCB info).
func DecodeSgxEvidence(der []byte) (*SgxEvidence, error) {
	body, err := decodeOuter(der, "SgxEvidence")
	if err != nil {
		return nil, err
	}
	var quote cryptobyte.String
	if !body.ReadASN1(&quote, cbasn1.OCTET_STRING) {
		return nil, errors.New("SgxEvidence: quote is not an OCTET STRING")
	}
	crls, err := readCrlList(&body)
	if err != nil {
		return nil, fmt.Errorf("SgxEvidence: %w", err)
	}
	tcb, err := readTcbPackage(&body, "SgxEvidence: tcb")
	if err != nil {
		return nil, err
	}
	if err := finish("SgxEvidence", body); err != nil {
		return nil, err
	}
	return &SgxEvidence{Quote: clone(quote), CRLs: crls, TCB: tcb}, nil
}

// DecodeTdxEvidence decodes the value of a TDX evidence extension.
func DecodeTdxEvidence(der []byte) (*TdxEvidence, error) {
	body, err := decodeOuter(der, "TdxEvidence")
	if err != nil {
		return nil, err
	}
	var quote cryptobyte.String
	if !body.ReadASN1(&quote, cbasn1.OCTET_STRING) {
		return nil, errors.New("TdxEvidence: quote is not an OCTET STRING")
	}
	crls, err := readCrlList(&body)
	if err != nil {
		return nil, fmt.Errorf("TdxEvidence: %w", err)
	}
	tcb, err := readTcbPackage(&body, "TdxEvidence: tcb")
	if err != nil {
		return nil, err
	}
	qe, err := readTcbPackage(&body, "TdxEvidence: qeIdentity")
	if err != nil {
		return nil, err
	}
	if err := finish("TdxEvidence", body); err != nil {
		return nil, err
	}
	return &TdxEvidence{Quote: clone(quote), CRLs: crls, TCB: tcb, QEIdentity: qe}, nil
}

// ---- encoding ----

func addCrlList(b *cryptobyte.Builder, l CrlList) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, e := range l {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte(e.URL)) })
					b.AddBytes(e.CRL)
				})
			}
		})
	})
}

func addTcbPackage(b *cryptobyte.Builder, p TcbPackage) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, c := range p.Certs {
				b.AddBytes(c)
			}
		})
		b.AddASN1OctetString(p.Report)
	})
}

// checkElement makes sure raw (a certificate or CRL) is exactly one DER
// SEQUENCE, so that encoding never produces something Decode rejects.
func checkElement(raw []byte, what string) error {
	s := cryptobyte.String(raw)
	if _, err := readSeqElement(&s, what); err != nil {
		return err
	}
	return finish(what, s)
}

func (l CrlList) check() error {
	if len(l) > MaxCRLs {
		return fmt.Errorf("CrlList: %w: %d CRLs, limit %d", ErrTooLarge, len(l), MaxCRLs)
	}
	for i, e := range l {
		if !utf8.ValidString(e.URL) || len(e.URL) > MaxURLLength {
			return fmt.Errorf("CrlListEntry %d: invalid url", i)
		}
		if err := checkElement(e.CRL, fmt.Sprintf("CrlListEntry %d: crl", i)); err != nil {
			return err
		}
	}
	return nil
}

func (p TcbPackage) check(what string) error {
	if len(p.Certs) > MaxCerts {
		return fmt.Errorf("%s: %w: %d certificates, limit %d", what, ErrTooLarge, len(p.Certs), MaxCerts)
	}
	for i, c := range p.Certs {
		if err := checkElement(c, fmt.Sprintf("%s: certificate %d", what, i)); err != nil {
			return err
		}
	}
	return nil
}

func build(what string, f func(*cryptobyte.Builder)) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, f)
	out, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkSize(out); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// Marshal encodes l as a DER CrlList.
func (l CrlList) Marshal() ([]byte, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	addCrlList(&b, l)
	return b.Bytes()
}

// Marshal encodes p as a DER TcbPackage.
func (p TcbPackage) Marshal() ([]byte, error) {
	if err := p.check("TcbPackage"); err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	addTcbPackage(&b, p)
	return b.Bytes()
}

// Marshal encodes e as a DER SnpEvidence.
func (e *SnpEvidence) Marshal() ([]byte, error) {
	if err := checkElement(e.VCEK, "SnpEvidence: vcek"); err != nil {
		return nil, err
	}
	if err := e.CRLs.check(); err != nil {
		return nil, fmt.Errorf("SnpEvidence: %w", err)
	}
	if len(e.Report) != SNPReportSize {
		return nil, fmt.Errorf("SnpEvidence: report is %d bytes, want %d", len(e.Report), SNPReportSize)
	}
	return build("SnpEvidence", func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(e.VCEK)
			addCrlList(b, e.CRLs)
		})
		b.AddASN1OctetString(e.Report)
	})
}

// Marshal encodes e as a DER SgxEvidence.
func (e *SgxEvidence) Marshal() ([]byte, error) {
	if err := e.CRLs.check(); err != nil {
		return nil, fmt.Errorf("SgxEvidence: %w", err)
	}
	if err := e.TCB.check("SgxEvidence: tcb"); err != nil {
		return nil, err
	}
	return build("SgxEvidence", func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(e.Quote)
		addCrlList(b, e.CRLs)
		addTcbPackage(b, e.TCB)
	})
}

// Marshal encodes e as a DER TdxEvidence.
func (e *TdxEvidence) Marshal() ([]byte, error) {
	if err := e.CRLs.check(); err != nil {
		return nil, fmt.Errorf("TdxEvidence: %w", err)
	}
	if err := e.TCB.check("TdxEvidence: tcb"); err != nil {
		return nil, err
	}
	if err := e.QEIdentity.check("TdxEvidence: qeIdentity"); err != nil {
		return nil, err
	}
	return build("TdxEvidence", func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(e.Quote)
		addCrlList(b, e.CRLs)
		addTcbPackage(b, e.TCB)
		addTcbPackage(b, e.QEIdentity)
	})
}

// Lookup returns the CRL downloaded from url, if the list has one.
func (l CrlList) Lookup(url string) ([]byte, bool) {
	for _, e := range l {
		if e.URL == url {
			return e.CRL, true
		}
	}
	return nil, false
}
