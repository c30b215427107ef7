package tdx

import (
	"context"
	"crypto/elliptic"
	"testing"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/internal/testutil"
)

// verifySeeds are FuzzVerify's evidence values: base's (the sample) first.
func verifySeeds(base *attest.VerifyRequest) [][]byte {
	return [][]byte{base.Extension.Value, {0x30, 0x00}}
}

// FuzzVerify feeds hostile evidence values to the verifier: it must never
// panic, and the sample (which fails TCB matching) must never be accepted.
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
