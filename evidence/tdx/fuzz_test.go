package tdx

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"net/http"
	"net/url"
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/enarx-go/enarx/attestation/tdx/tdxquote"
	"github.com/enarx-go/enarx/internal/testutil"
)

func fmspcSeeds() [][]byte {
	v5 := append([]byte{}, testdata.RawQuote...)
	v5[0] = 5
	short := bytes.Clone(testdata.RawQuote) // a length field go-tdx-guest slices by unchecked
	binary.LittleEndian.PutUint32(short[tdxquote.SignedSizeAt:], 0)
	return [][]byte{
		testdata.RawQuote,
		testdata.RawQuote[:200],
		testdata.RawQuote[:len(testdata.RawQuote)-1],
		v5,
		{},
		short,
	}
}

// FuzzFMSPC feeds arbitrary bytes, as a hostile or broken quoting enclave
// would return them, to the quote → PCK certificate → FMSPC path that
// `enarx platform tdx fetch` runs. It must return an error, never panic.
func FuzzFMSPC(f *testing.F) {
	seeds := fmspcSeeds()
	testutil.CheckSeedCorpus(f, "FuzzFMSPC", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fmspc, err := FMSPC(raw)
		if err == nil && len(fmspc) != 12 {
			t.Fatalf("FMSPC %q accepted; want 12 hex digits", fmspc)
		}
	})
}

func issuerChainSeeds(t testing.TB) []string {
	pck, err := PCKCertificate(testdata.RawQuote)
	if err != nil {
		t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: pck.Raw})
	return []string{
		url.QueryEscape(string(p)),
		url.QueryEscape(string(p) + string(p)),
		url.QueryEscape(string(p[:len(p)/2])),
		"%zz",
		"-----BEGIN CERTIFICATE-----%0A-----END CERTIFICATE-----",
	}
}

// FuzzIssuerChain feeds arbitrary header values, as a hostile PCS (or
// whatever answers in its place) could send them, to the issuer-chain
// decoder. It must return an error or only parsable certificates.
func FuzzIssuerChain(f *testing.F) {
	seeds := issuerChainSeeds(f)
	testutil.CheckStringSeedCorpus(f, "FuzzIssuerChain", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set(tcbChainHdr, v)
		certs, err := issuerChain(h, tcbChainHdr)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}
