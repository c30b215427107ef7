package vectors

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"net/url"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	sample "github.com/google/go-tdx-guest/testing"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/enarx-go/enarx/attestation/envelope"
)

// TDXSampleTime is when go-tdx-guest's sample TDX collateral is valid.
var TDXSampleTime = time.Date(2023, 7, 1, 1, 0, 0, 0, time.UTC)

// PCS URLs of the sample collateral.
const (
	tdxTCBInfoURL = "https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000"
	tdxPCKCRLURL  = "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der"
	tdxRootCRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"
)

// TDXSample returns a fresh copy of go-tdx-guest's real sample TDX quote
// (Sapphire Rapids, quote v4) and its sample Intel PCS collateral in this
// project's TdxEvidence envelope.
//
// The sample is internally consistent up to TCB level matching: upstream
// raised the sample TCB Info's SVNs past the quote's, so a full
// verification ends in tdx.tcb.status (see go-tdx-guest's
// TestNegativeRawQuoteVerifyWithCollateral). For the accept path, tests
// use the emulated Intel hierarchy of evidence/emulated.
func TDXSample() (*envelope.TdxEvidence, error) {
	g := sample.TestGetter
	tcbChain, err := headerChain(g.Responses[tdxTCBInfoURL].Header, "Tcb-Info-Issuer-Chain")
	if err != nil {
		return nil, err
	}
	qeChain, err := headerChain(g.Responses[pcs.QeIdentityURL()].Header, "Sgx-Enclave-Identity-Issuer-Chain")
	if err != nil {
		return nil, err
	}
	return &envelope.TdxEvidence{
		Quote: bytes.Clone(testdata.RawQuote),
		CRLs: envelope.CrlList{
			{URL: tdxRootCRLURL, CRL: bytes.Clone(testdata.RootCrlBody)},
			{URL: tdxPCKCRLURL, CRL: bytes.Clone(testdata.PckCrlBody)},
		},
		TCB:        envelope.TcbPackage{Certs: tcbChain, Report: bytes.Clone(testdata.TcbInfoBody)},
		QEIdentity: envelope.TcbPackage{Certs: qeChain, Report: bytes.Clone(testdata.QeIdentityBody)},
	}, nil
}

// headerChain decodes a PCS issuer-chain header: URL-escaped PEM.
func headerChain(h map[string][]string, key string) ([][]byte, error) {
	if len(h[key]) != 1 {
		return nil, fmt.Errorf("vectors: no %s header", key)
	}
	s, err := url.QueryUnescape(h[key][0])
	if err != nil {
		return nil, fmt.Errorf("vectors: %s: %w", key, err)
	}
	var out [][]byte
	rest := []byte(s)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		out = append(out, b.Bytes)
	}
	return out, nil
}
