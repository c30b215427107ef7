package steward_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/csr"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// TestOversizedRSAKey: a request whose RSA modulus is far above 4096 bits
// (2,000,000 bits: a 500 KB body that burned 70 s of CPU when its
// signature was checked) is refused with 400 csr.algorithm and a reason
// naming the limit, alone or in a bundle, by a Steward on 127.0.0.1.
func TestOversizedRSAKey(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	for _, bits := range []int{8192, 2_000_000} {
		der := stewardtest.CraftedRSARequest(bits)
		r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
		wantRejection(t, r, http.StatusBadRequest, csr.CodeAlgorithm)
		if !strings.Contains(string(r.body), "at most 4096") {
			t.Fatalf("%d bits: reason %q does not name the limit", bits, r.body)
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(stewardtest.CraftedRSARequest(100_000)) })
	bundle := b.BytesOrPanic()
	wantRejection(t, post(t, hs.URL, steward.ContentTypeBundle, bytes.NewReader(bundle)), http.StatusBadRequest, csr.CodeAlgorithm)
}
