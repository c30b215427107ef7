package snp

import (
	"bytes"
	"context"
	"testing"
)

// FuzzVerify feeds hostile evidence values to the verifier: it must return
// an error, never panic, and accept only the original evidence.
func FuzzVerify(f *testing.F) {
	base := milanRequest(f)
	f.Add(base.Extension.Value)
	f.Add([]byte{0x30, 0x00})
	v := newVerifier(f, stewardPolicy(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		req := *base
		req.Extension.Value = b
		_, err := v.Verify(context.Background(), &req)
		if err == nil && !bytes.Equal(b, base.Extension.Value) {
			t.Fatalf("accepted modified evidence")
		}
	})
}
