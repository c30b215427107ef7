package tdx

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"math/big"
	"reflect"
	"testing"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/envelope"
	"github.com/enarx-go/enarx/internal/testutil"
)

// verifySeeds are FuzzVerify's evidence values: base's (the sample) first.
func verifySeeds(base *attest.VerifyRequest) [][]byte {
	return [][]byte{base.Extension.Value, {0x30, 0x00}}
}

// FuzzVerify feeds hostile evidence values to the verifier: it must never
// panic, and the sample (which fails TCB matching) must never be accepted.
// It cannot reach the accept path; FuzzVerifyAccept does.
func FuzzVerify(f *testing.F) {
	base := request(f, sampleEvidence(f), elliptic.P384())
	seeds := verifySeeds(base)
	testutil.CheckSeedCorpus(f, "FuzzVerify", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	v := mustNew(f, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		req := *base
		req.Extension.Value = b
		if _, err := v.Verify(context.Background(), &req); err == nil {
			t.Fatalf("accepted evidence")
		}
	})
}

// acceptSeeds are FuzzVerifyAccept's evidence values: the genuine
// emulated fixture first, then deterministic changes of it that stop at
// the quote signature (MRTD) and the TCB Info signature (TCB status), two
// that change only what no signature covers (the quote signature's s
// replaced by n−s, which ECDSA accepts as well; the root CRL's URL), and
// an empty SEQUENCE.
func acceptSeeds(t testing.TB, f *fixture) [][]byte {
	mrtd := f.decode(t)
	mrtd.Quote[48+136] ^= 1
	status := f.decode(t)
	status.TCB.Report = bytes.Replace(status.TCB.Report, []byte(`"UpToDate"`), []byte(`"OutOfDate"`), 1)
	malleated := f.decode(t)
	sig := malleated.Quote[quoteSigAt+32 : quoteSigAt+64]
	new(big.Int).Sub(elliptic.P256().Params().N, new(big.Int).SetBytes(sig)).FillBytes(sig)
	url := f.decode(t)
	url.CRLs[0].URL = "https://example.com/root.crl"
	return [][]byte{f.evidence, marshal(t, mrtd), marshal(t, status), marshal(t, malleated), marshal(t, url), {0x30, 0x00}}
}

// FuzzVerifyAccept feeds changed evidence values to a verifier that
// trusts the emulated fixture's root in place of Intel's (fixture_test.go),
// on whose genuine evidence it reaches the accept path. Property: evidence
// is accepted only if its quote's signed header and TD quote body are byte
// for byte the genuine quote's, and the claims are then the genuine claims:
// whatever else changes (collateral, CRLs, chain encoding, unsigned bytes,
// signature encodings), the verifier never attests content that the
// fixture's keys did not sign. Every refusal is an *attest.Rejection, and
// nothing panics.
//
// An evidence value near the genuine one costs milliseconds (every
// signature is checked twice, see stages.go) and is 11 KB, so minimizing
// each new input for the default 60 s would take most of a run: fuzz with
// -fuzzminimizetime 5s.
func FuzzVerifyAccept(f *testing.F) {
	fx := loadFixture(f)
	seeds := acceptSeeds(f, fx)
	testutil.CheckSeedCorpus(f, "FuzzVerifyAccept", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	genuine := fx.decode(f).Quote[:signedLen]
	base := fx.request(f, fx.evidence, nil)
	v := fx.verifiers(f, nil)["Roots"]
	want, err := v.Verify(context.Background(), base)
	if err != nil {
		f.Fatalf("the genuine fixture is rejected: %v", err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := *base
		req.Extension.Value = b
		c, err := v.Verify(context.Background(), &req)
		if err != nil {
			if _, ok := attest.AsRejection(err); !ok {
				t.Fatalf("refused with %T, not a rejection: %v", err, err)
			}
			return
		}
		ev, err := envelope.DecodeTdxEvidence(b)
		if err != nil {
			t.Fatalf("accepted evidence that does not decode: %v", err)
		}
		if len(ev.Quote) < signedLen || !bytes.Equal(ev.Quote[:signedLen], genuine) {
			t.Fatal("accepted a quote whose signed header and body differ from the genuine one")
		}
		if !reflect.DeepEqual(c, want) {
			t.Fatalf("accepted with claims %+v, want %+v", c, want)
		}
	})
}
