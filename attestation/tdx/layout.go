package tdx

import (
	"encoding/binary"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
)

// The TDX quote v4 layout (Intel TDX DCAP Quoting Library API, "Quote
// Format"), as far as its length fields go. Offsets are from the start of
// the part each group of constants describes.
const (
	v4SignedSizeAt = 0x278 // u32: the length of the signed data, after the header and TD quote body
	v4SignedAt     = 0x27c

	// The signed data: signature, attestation key, certification data.
	v4CertAt      = 0x80 // certification data: u16 type, u32 size, data
	v4CertSizeAt  = v4CertAt + 2
	v4CertDataAt  = v4CertAt + 6
	v4QEAuthAt    = 0x1c0 // in the certification data: after the QE report (0x180) and its signature (0x40): u16 size, data
	v4QEAuthHdr   = 2
	v4PCKChainHdr = 6 // after the QE auth data: u16 type, u32 size, PEM chain
)

// checkQuoteLayout refuses a v4 quote whose length fields do not fit in
// it, before go-tdx-guest parses it. go-tdx-guest v0.3.1's abi slices the
// signed data, the certification data and the QE authentication data by
// their length fields without checking them against the bytes there, so a
// quote with, say, a signed-data size of 0 would panic its parser (the
// panic would end a caller that does not recover, and costs every request
// server a stack trace in its log). Where the library does check a length
// (the signed data against the quote, the certification data's size, the
// PCK chain's), its check stands; this only covers what it slices first.
func checkQuoteLayout(q []byte) error {
	if len(q) < abi.QuoteMinSize {
		return fmt.Errorf("the quote has %d bytes, fewer than the %d of the smallest v4 quote", len(q), abi.QuoteMinSize)
	}
	signed := q[v4SignedAt:]
	n := binary.LittleEndian.Uint32(q[v4SignedSizeAt:])
	if uint64(n) > uint64(len(signed)) {
		return fmt.Errorf("the quote's signed data claims %d bytes, %d follow", n, len(signed))
	}
	signed = signed[:n]
	if len(signed) < v4CertDataAt {
		return fmt.Errorf("the quote's signed data has %d bytes, fewer than the %d of its signature, attestation key and certification data header", len(signed), v4CertDataAt)
	}
	cert := signed[v4CertDataAt:]
	if n := binary.LittleEndian.Uint32(signed[v4CertSizeAt:]); uint64(n) != uint64(len(cert)) {
		return fmt.Errorf("the quote's certification data claims %d bytes, %d follow", n, len(cert))
	}
	if len(cert) < v4QEAuthAt+v4QEAuthHdr {
		return fmt.Errorf("the quote's certification data has %d bytes, fewer than the %d of a QE report, its signature and the QE authentication data header", len(cert), v4QEAuthAt+v4QEAuthHdr)
	}
	auth := int(binary.LittleEndian.Uint16(cert[v4QEAuthAt:]))
	if rest := len(cert) - v4QEAuthAt - v4QEAuthHdr; auth+v4PCKChainHdr > rest {
		return fmt.Errorf("the quote's QE authentication data claims %d bytes, %d follow with the PCK chain's header", auth, rest)
	}
	return nil
}

// parseQuote parses a v4 quote whose layout checkQuoteLayout accepted. A
// panic in the library on an input that check missed is an error, not the
// end of the process.
func parseQuote(q []byte) (quote any, err error) {
	if err := checkQuoteLayout(q); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			quote, err = nil, fmt.Errorf("go-tdx-guest failed on the quote: %v", r)
		}
	}()
	return abi.QuoteToProto(q)
}
