// Package quote decodes the byte layout of an Intel SGX DCAP quote, version 3
// (ECDSA-256-with-P-256 attestation key, certification data type 5 = PCK
// certificate chain), as produced by the Intel Quoting Enclave and carried in
// Enarx SGX evidence.
//
// It is written on the standard library because no usable pure-Go DCAP v3
// library exists: go-tdx-guest handles only TDX quotes v4/v5, oasis-core's
// decoder requires QE identity collateral and TCB Info v2, and ego/Open
// Enclave need cgo.
//
// The package trusts nothing: Parse only checks the layout (sizes, lengths,
// the fixed version/key-type fields) and hands back the fields and the exact
// byte ranges that signatures cover. It verifies no signature and applies no
// policy; that is package attestation/sgx.
package quote

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
)

// Layout constants (Intel SGX ECDSA Quote Library Reference, quote v3).
const (
	// Version is the only quote version this package decodes.
	Version = 3
	// AttestationKeyECDSAP256 is the attestation key type ECDSA-256-with-P-256.
	AttestationKeyECDSAP256 = 2
	// TEETypeSGX is the value of the header's (v3: reserved, v4: TEE type)
	// word for SGX.
	TEETypeSGX = 0
	// CertDataPCKChain is the certification data type "PEM PCK certificate
	// chain" (PCK leaf, intermediate CA, root CA).
	CertDataPCKChain = 5

	HeaderSize     = 48
	ReportBodySize = 384
	// SignedSize is the length of the prefix (header + ISV report body) that
	// the attestation key signs.
	SignedSize = HeaderSize + ReportBodySize
	// sigDataLenSize is the 4-byte signature data length after SignedSize.
	sigDataLenSize = 4
	// MinSize is the smallest well-formed quote: the signed part, the length
	// word and the fixed part of the signature data with empty QE auth data
	// and empty certification data.
	MinSize = SignedSize + sigDataLenSize + fixedSigDataSize + 2 + 2 + 4
	// MaxSize bounds what Parse accepts. Real quotes are about 4.6 KiB
	// (mostly the PEM chain); anything near this bound is hostile.
	MaxSize = 64 << 10

	fixedSigDataSize = 64 + 64 + ReportBodySize + 64
)

// IntelQEVendorID is the QE vendor ID of Intel's Quoting Enclave
// (939A7233-F79C-4CA9-940A-0DB3957F0607).
var IntelQEVendorID = [16]byte{0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07}

// Header is the 48-byte quote header.
type Header struct {
	Version            uint16
	AttestationKeyType uint16
	// TEEType is reserved (zero) in v3 and names the TEE in v4 (0 = SGX).
	TEEType    uint32
	QESVN      uint16
	PCESVN     uint16
	QEVendorID [16]byte
	UserData   [20]byte
}

// Attribute flag bits of ReportBody.Attributes (Intel SDM Vol. 3D, 34.7.1).
const (
	AttrInit          uint64 = 1 << 0
	AttrDebug         uint64 = 1 << 1
	AttrMode64Bit     uint64 = 1 << 2
	AttrProvisionKey  uint64 = 1 << 4
	AttrEInitTokenKey uint64 = 1 << 5
	AttrCET           uint64 = 1 << 6
	AttrKSS           uint64 = 1 << 7
	AttrAEXNotify     uint64 = 1 << 10
)

// MiscSelectEXINFO is the MISCSELECT bit that reports #PF/#GP info in the SSA.
const MiscSelectEXINFO uint32 = 1 << 0

// ReportBody is the 384-byte SGX REPORTBODY, used for both the ISV enclave
// report and the QE report.
type ReportBody struct {
	CPUSVN     [16]byte
	MiscSelect uint32
	// ISVExtProdID is reserved in older SDMs.
	ISVExtProdID [16]byte
	// Attributes is ATTRIBUTES.FLAGS (see the Attr* bits).
	Attributes  uint64
	XFRM        uint64
	MRENCLAVE   [32]byte
	MRSIGNER    [32]byte
	ConfigID    [64]byte
	ISVProdID   uint16
	ISVSVN      uint16
	ConfigSVN   uint16
	ISVFamilyID [16]byte
	ReportData  [64]byte
}

// Quote is a decoded DCAP v3 quote. Byte slices alias the input of Parse.
type Quote struct {
	Header    Header
	ISVReport ReportBody

	// Signed is quote[0:432], the bytes the ISV signature covers.
	Signed []byte
	// ISVSignature is the ECDSA P-256 signature r‖s (big-endian) over Signed
	// by the attestation key.
	ISVSignature [64]byte
	// AttestationKey is the raw P-256 public key X‖Y (no 0x04 prefix).
	AttestationKey [64]byte
	// QEReportRaw is the QE report body as signed by the PCK key.
	QEReportRaw []byte
	QEReport    ReportBody
	// QEReportSignature is r‖s over QEReportRaw by the PCK key.
	QEReportSignature [64]byte
	// QEAuthData is hashed with AttestationKey into QEReport.ReportData.
	QEAuthData []byte
	// CertDataType is always CertDataPCKChain after a successful Parse.
	CertDataType uint16
	// CertData is the raw certification data (PEM PCK chain).
	CertData []byte
}

// Errors that Parse wraps, so callers can tell the failures apart.
var (
	// ErrTruncated: the quote is shorter than its own length fields say.
	ErrTruncated = errors.New("sgx quote: truncated")
	// ErrTooLarge: the quote exceeds MaxSize.
	ErrTooLarge = errors.New("sgx quote: too large")
	// ErrTrailing: bytes follow the last field.
	ErrTrailing = errors.New("sgx quote: trailing bytes")
	// ErrUnsupported: another version, attestation key type or TEE type.
	ErrUnsupported = errors.New("sgx quote: unsupported")
	// ErrCertData: the certification data is not a PCK certificate chain.
	ErrCertData = errors.New("sgx quote: unsupported certification data")
)

// Parse decodes a DCAP v3 quote. It rejects other versions and key types,
// certification data other than a PCK chain, length fields that point past
// the end, and any bytes after the signature data (upstream ignores those;
// no current producer emits them).
func Parse(b []byte) (*Quote, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d-byte limit", ErrTooLarge, len(b), MaxSize)
	}
	if len(b) < MinSize {
		return nil, fmt.Errorf("%w: %d bytes, need at least %d", ErrTruncated, len(b), MinSize)
	}
	q := &Quote{Signed: b[:SignedSize:SignedSize]}
	q.Header = parseHeader(b[:HeaderSize])
	if q.Header.Version != Version {
		return nil, fmt.Errorf("%w version %d (want %d)", ErrUnsupported, q.Header.Version, Version)
	}
	if q.Header.AttestationKeyType != AttestationKeyECDSAP256 {
		return nil, fmt.Errorf("%w attestation key type %d (want %d, ECDSA-256-with-P-256)", ErrUnsupported, q.Header.AttestationKeyType, AttestationKeyECDSAP256)
	}
	if q.Header.TEEType != TEETypeSGX {
		return nil, fmt.Errorf("%w TEE type %#x (want 0, SGX)", ErrUnsupported, q.Header.TEEType)
	}
	q.ISVReport = ParseReportBody((*[ReportBodySize]byte)(b[HeaderSize:SignedSize]))

	r := reader{b: b, off: SignedSize}
	sigLen := r.u32()
	sig := r.bytes(int(sigLen))
	if r.err != nil {
		return nil, fmt.Errorf("%w: signature data length %d exceeds the %d remaining bytes", ErrTruncated, sigLen, len(b)-SignedSize-sigDataLenSize)
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d bytes after the signature data", ErrTrailing, len(b)-r.off)
	}

	s := reader{b: sig}
	copy(q.ISVSignature[:], s.bytes(64))
	copy(q.AttestationKey[:], s.bytes(64))
	q.QEReportRaw = s.bytes(ReportBodySize)
	copy(q.QEReportSignature[:], s.bytes(64))
	q.QEAuthData = s.bytes(int(s.u16()))
	q.CertDataType = s.u16()
	q.CertData = s.bytes(int(s.u32()))
	if s.err != nil {
		return nil, fmt.Errorf("%w: signature data (%d bytes) is shorter than its fields", ErrTruncated, len(sig))
	}
	if s.off != len(sig) {
		return nil, fmt.Errorf("%w: %d unknown bytes at the end of the signature data", ErrTrailing, len(sig)-s.off)
	}
	q.QEReport = ParseReportBody((*[ReportBodySize]byte)(q.QEReportRaw))
	if q.CertDataType != CertDataPCKChain {
		return nil, fmt.Errorf("%w: type %d is not a PCK certificate chain (%d); is the host's PCCS/aesmd working?", ErrCertData, q.CertDataType, CertDataPCKChain)
	}
	return q, nil
}

func parseHeader(b []byte) Header {
	var h Header
	h.Version = binary.LittleEndian.Uint16(b[0:])
	h.AttestationKeyType = binary.LittleEndian.Uint16(b[2:])
	h.TEEType = binary.LittleEndian.Uint32(b[4:])
	h.QESVN = binary.LittleEndian.Uint16(b[8:])
	h.PCESVN = binary.LittleEndian.Uint16(b[10:])
	copy(h.QEVendorID[:], b[12:28])
	copy(h.UserData[:], b[28:48])
	return h
}

// ParseReportBody decodes a 384-byte REPORTBODY.
func ParseReportBody(b *[ReportBodySize]byte) ReportBody {
	var r ReportBody
	copy(r.CPUSVN[:], b[0:16])
	r.MiscSelect = binary.LittleEndian.Uint32(b[16:])
	copy(r.ISVExtProdID[:], b[32:48])
	r.Attributes = binary.LittleEndian.Uint64(b[48:])
	r.XFRM = binary.LittleEndian.Uint64(b[56:])
	copy(r.MRENCLAVE[:], b[64:96])
	copy(r.MRSIGNER[:], b[128:160])
	copy(r.ConfigID[:], b[192:256])
	r.ISVProdID = binary.LittleEndian.Uint16(b[256:])
	r.ISVSVN = binary.LittleEndian.Uint16(b[258:])
	r.ConfigSVN = binary.LittleEndian.Uint16(b[260:])
	copy(r.ISVFamilyID[:], b[304:320])
	copy(r.ReportData[:], b[320:384])
	return r
}

// PCKChain splits the certification data into DER certificates in quote
// order: PCK leaf, intermediate CA, root CA.
//
// It copies upstream's handling of older QEs that emit PEM blocks with no
// newline between them ("-----END CERTIFICATE----------BEGIN…"), which
// encoding/pem would otherwise read as one garbled block, and it tolerates
// trailing NUL and whitespace bytes (the i5 vector ends in a NUL). Anything
// else — non-certificate blocks, stray text — is an error.
func (q *Quote) PCKChain() ([][]byte, error) {
	return SplitPEMChain(q.CertData)
}

var (
	pemEnd   = []byte("-----END CERTIFICATE-----")
	pemBegin = []byte("-----BEGIN ")
)

// SplitPEMChain is PCKChain on raw certification data.
func SplitPEMChain(data []byte) ([][]byte, error) {
	fixed := bytes.ReplaceAll(data, pemEnd, append(append([]byte{}, pemEnd...), '\n'))
	var out [][]byte
	rest := fixed
	for {
		trimmed := bytes.TrimLeft(rest, " \t\r\n\x00")
		if len(trimmed) == 0 {
			break
		}
		block, r := pem.Decode(trimmed)
		if block == nil {
			return nil, errors.New("sgx quote: certification data holds text that is not a PEM block")
		}
		// pem.Decode skips whatever precedes the block it returns: leading
		// junk, and also a block it cannot decode (a broken one, or a stray
		// BEGIN line), after which it returns the next block. Refuse both:
		// the block returned must be the first one, so what it consumed
		// holds exactly one BEGIN line.
		consumed := trimmed[:len(trimmed)-len(r)]
		if !bytes.HasPrefix(trimmed, pemBegin) || bytes.Count(consumed, pemBegin) != 1 {
			return nil, errors.New("sgx quote: certification data holds text before a PEM block, or a PEM block that does not decode")
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("sgx quote: certification data holds a %q PEM block, want CERTIFICATE", block.Type)
		}
		out = append(out, block.Bytes)
		rest = r
	}
	if len(out) == 0 {
		return nil, errors.New("sgx quote: certification data holds no certificate")
	}
	return out, nil
}

// reader is a bounds-checked little-endian cursor; after the first short
// read it returns zero values and keeps err set.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.err = ErrTruncated
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) u16() uint16 {
	v := r.bytes(2)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(v)
}

func (r *reader) u32() uint32 {
	v := r.bytes(4)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}
