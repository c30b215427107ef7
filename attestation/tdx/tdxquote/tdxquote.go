// Package tdxquote parses raw Intel TDX quotes (v4) with
// github.com/google/go-tdx-guest/abi without letting a malformed one panic
// the caller. The Steward's verifier (attestation/tdx) and the Keep's
// evidence provider (evidence/tdx), which reads quotes the host's quoting
// service returns, both parse through it. It depends only on go-tdx-guest's
// abi, so the provider does not link the verifier.
//
// It trusts nothing and verifies nothing: it checks length fields and
// decodes.
package tdxquote

import (
	"encoding/binary"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
)

// The TDX quote v4 layout (Intel TDX DCAP Quoting Library API, "Quote
// Format"), as far as its length fields go. Offsets are from the start of
// the part each group of constants describes.
const (
	SignedSizeAt = 0x278 // u32: the length of the signed data, after the header and TD quote body
	SignedAt     = 0x27c

	// The signed data: signature, attestation key, certification data.
	CertAt     = 0x80 // certification data: u16 type, u32 size, data
	CertSizeAt = CertAt + 2
	CertDataAt = CertAt + 6
	// QEAuthAt is in the certification data: after the QE report (0x180)
	// and its signature (0x40): u16 size, data.
	QEAuthAt    = 0x1c0
	qeAuthHdr   = 2
	pckChainHdr = 6 // after the QE auth data: u16 type, u32 size, PEM chain
)

// CheckLayout refuses a v4 quote whose length fields do not fit in it,
// before go-tdx-guest parses it. go-tdx-guest v0.3.1's abi slices the
// signed data, the certification data and the QE authentication data by
// their length fields without checking them against the bytes there, so a
// quote with, say, a signed-data size of 0 would panic its parser (the
// panic would end a caller that does not recover, and costs every request
// server a stack trace in its log). Where the library does check a length
// (the signed data against the quote, the certification data's size, the
// PCK chain's), its check stands; this only covers what it slices first.
func CheckLayout(q []byte) error {
	if len(q) < abi.QuoteMinSize {
		return fmt.Errorf("the quote has %d bytes, fewer than the %d of the smallest v4 quote", len(q), abi.QuoteMinSize)
	}
	signed := q[SignedAt:]
	n := binary.LittleEndian.Uint32(q[SignedSizeAt:])
	if uint64(n) > uint64(len(signed)) {
		return fmt.Errorf("the quote's signed data claims %d bytes, %d follow", n, len(signed))
	}
	signed = signed[:n]
	if len(signed) < CertDataAt {
		return fmt.Errorf("the quote's signed data has %d bytes, fewer than the %d of its signature, attestation key and certification data header", len(signed), CertDataAt)
	}
	cert := signed[CertDataAt:]
	if n := binary.LittleEndian.Uint32(signed[CertSizeAt:]); uint64(n) != uint64(len(cert)) {
		return fmt.Errorf("the quote's certification data claims %d bytes, %d follow", n, len(cert))
	}
	if len(cert) < QEAuthAt+qeAuthHdr {
		return fmt.Errorf("the quote's certification data has %d bytes, fewer than the %d of a QE report, its signature and the QE authentication data header", len(cert), QEAuthAt+qeAuthHdr)
	}
	auth := int(binary.LittleEndian.Uint16(cert[QEAuthAt:]))
	if rest := len(cert) - QEAuthAt - qeAuthHdr; auth+pckChainHdr > rest {
		return fmt.Errorf("the quote's QE authentication data claims %d bytes, %d follow with the PCK chain's header", auth, rest)
	}
	return nil
}

// Parse parses a quote whose layout CheckLayout accepts, as go-tdx-guest's
// abi.QuoteToProto does. A panic in the library on an input that check
// missed is an error, not the end of the process.
func Parse(q []byte) (quote any, err error) {
	if err := CheckLayout(q); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			quote, err = nil, fmt.Errorf("go-tdx-guest failed on the quote: %v", r)
		}
	}()
	return abi.QuoteToProto(q)
}

// ParseV4 is Parse for callers that handle only quote v4.
func ParseV4(q []byte) (*pb.QuoteV4, error) {
	quote, err := Parse(q)
	if err != nil {
		return nil, err
	}
	v4, ok := quote.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("unsupported quote type %T (only v4)", quote)
	}
	return v4, nil
}
