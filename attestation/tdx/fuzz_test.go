package tdx

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"encoding/binary"
	"testing"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/testing/testdata"
)

// FuzzVerify feeds hostile evidence values to the verifier: it must never
// panic, and the sample (which fails TCB matching) must never be accepted.
func FuzzVerify(f *testing.F) {
	base := request(f, sampleEvidence(f), elliptic.P384())
	f.Add(base.Extension.Value)
	f.Add([]byte{0x30, 0x00})
	v := mustNew(f, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		req := *base
		req.Extension.Value = b
		if _, err := v.Verify(context.Background(), &req); err == nil {
			t.Fatalf("accepted evidence")
		}
	})
}

// FuzzQuoteLayout: a quote whose length fields checkQuoteLayout accepts
// never panics go-tdx-guest's parser, which slices by those fields
// unchecked.
func FuzzQuoteLayout(f *testing.F) {
	f.Add(bytes.Clone(testdata.RawQuote))
	short := bytes.Clone(testdata.RawQuote)
	binary.LittleEndian.PutUint32(short[v4SignedSizeAt:], 0)
	f.Add(short)
	f.Add(testdata.RawQuote[:abi.QuoteMinSize])
	f.Fuzz(func(t *testing.T, q []byte) {
		if checkQuoteLayout(q) != nil {
			return
		}
		// A panic here fails the target; an error is the library's own
		// refusal.
		_, _ = abi.QuoteToProto(q)
	})
}
