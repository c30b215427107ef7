package tdx

import (
	"context"
	"crypto/elliptic"
	"testing"
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
