package tdxquote

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/google/go-tdx-guest/abi"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/enarx-go/enarx/internal/testutil"
)

func layoutSeeds() [][]byte {
	short := bytes.Clone(testdata.RawQuote)
	binary.LittleEndian.PutUint32(short[SignedSizeAt:], 0)
	return [][]byte{bytes.Clone(testdata.RawQuote), short, testdata.RawQuote[:abi.QuoteMinSize]}
}

// FuzzQuoteLayout: a quote whose length fields CheckLayout accepts
// never panics go-tdx-guest's parser, which slices by those fields
// unchecked.
func FuzzQuoteLayout(f *testing.F) {
	seeds := layoutSeeds()
	testutil.CheckSeedCorpus(f, "FuzzQuoteLayout", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		if CheckLayout(q) != nil {
			return
		}
		// A panic here fails the target; an error is the library's own
		// refusal.
		_, _ = abi.QuoteToProto(q)
	})
}
