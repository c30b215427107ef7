package bundle

import (
	"bytes"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// TestPackageDigestIsVerified: every digest the Keep reports as the
// package's identity is a digest of the root's bytes. A tag entry without
// a SHA-256 is verified by one other algorithm; the values it names for
// the others are the registry's word only, and must not reach the
// certificate (here: good's SHA-224 beside evil's SHA-512, over evil).
func TestPackageDigestIsVerified(t *testing.T) {
	good, evil := []byte("the real wasm"), []byte("evil wasm")
	goodSum, _ := types.Compute(good)
	evilSum, _ := types.Compute(evil)
	for _, c := range []struct {
		name   string
		digest types.Digests
	}{
		{"honest, no sha-256", types.Digests{types.SHA224: evilSum[types.SHA224], types.SHA384: evilSum[types.SHA384], types.SHA512: evilSum[types.SHA512]}},
		{"forged sha-224", types.Digests{types.SHA224: goodSum[types.SHA224], types.SHA512: evilSum[types.SHA512]}},
		{"forged sha-384", types.Digests{types.SHA384: goodSum[types.SHA384], types.SHA224: evilSum[types.SHA224]}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := types.Entry{Meta: types.Meta{Digest: c.digest, Length: int64(len(evil)), Type: types.WasmType}}
			tag, err := e.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			b := &Bundle{Records: []Record{
				rec(TagPath, types.EntryType, tag),
				{Path: RootPath, Type: types.WasmType, Digest: c.digest.String(), Body: evil},
			}}
			pkg, err := Verify(mustMarshal(t, b))
			if err != nil {
				return // refusing is safe too
			}
			reported, err := types.ParseContentDigest(pkg.Digest)
			if err != nil || len(reported) == 0 {
				t.Fatalf("package digest %q: %v", pkg.Digest, err)
			}
			for a, v := range reported {
				if !bytes.Equal(v, evilSum[a]) {
					t.Fatalf("package digest %q names a %s value that is not the digest of the root that was verified", pkg.Digest, a)
				}
			}
		})
	}
}
