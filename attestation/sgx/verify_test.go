package sgx

import (
	"bytes"
	"context"
	"crypto/x509"
	"reflect"
	"testing"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/envelope"
)

// refTime is when all recorded evidence is valid.
var refTime = vectors.Time

// The recorded evidence (attestation/conformance/vectors).
var recorded = map[string][]byte{i5: vectors.SGXi5CSR, xeon: vectors.SGXXeonCSR}

var names = []string{i5, xeon}

func loadCSR(t testing.TB, name string) *x509.CertificateRequest {
	t.Helper()
	csr, err := x509.ParseCertificateRequest(recorded[name])
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func evidenceExt(t testing.TB, csr *x509.CertificateRequest) int {
	t.Helper()
	for i, e := range csr.Extensions {
		if e.Id.Equal(attest.OIDEvidenceSGX) {
			return i
		}
	}
	t.Fatal("CSR has no SGX evidence extension")
	return -1
}

// testPolicy is the [sgx] table of upstream's steward.toml.
func testPolicy(t testing.TB) *Policy {
	t.Helper()
	var f struct {
		SGX *Policy `toml:"sgx"`
	}
	if err := toml.Unmarshal(vectors.StewardTOML, &f); err != nil {
		t.Fatal(err)
	}
	if err := f.SGX.Validate(); err != nil {
		t.Fatal(err)
	}
	return f.SGX
}

func request(t testing.TB, name string) *attest.VerifyRequest {
	csr := loadCSR(t, name)
	return &attest.VerifyRequest{CSR: csr, Extension: csr.Extensions[evidenceExt(t, csr)], Now: refTime}
}

func TestRealEvidence(t *testing.T) {
	v, err := New(Options{Policy: testPolicy(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			for range 2 { // second round is served from the caches
				c, err := v.Verify(context.Background(), request(t, name))
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%+v", c)
			}
		})
	}
}

// FuzzVerify feeds arbitrary SgxEvidence values through the whole verifier
// (seeds: the two real evidence values in testdata/fuzz/FuzzVerify). It
// must return a Rejection, never panic, and accept nothing that does not
// carry the i5's own (Intel-signed) quote, nor anything that makes it claim
// other than what the original evidence established. (The collateral
// around the quote may differ and still be valid: other CRLs or TCB
// bundles Intel signed.)
func FuzzVerify(f *testing.F) {
	req := request(f, i5)
	v := NewVerifier(Options{Policy: testPolicy(f)})
	orig, err := envelope.DecodeSgxEvidence(req.Extension.Value)
	if err != nil {
		f.Fatal(err)
	}
	want, err := v.Verify(context.Background(), req)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		r := *req
		r.Extension.Value = value
		got, err := v.Verify(context.Background(), &r)
		if err == nil {
			ev, derr := envelope.DecodeSgxEvidence(value)
			if derr != nil || !bytes.Equal(ev.Quote, orig.Quote) {
				t.Fatalf("accepted evidence that does not carry the i5's quote (%v)", derr)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("accepted evidence with other claims: %+v, want %+v", got, want)
			}
			return
		}
		if _, ok := attest.AsRejection(err); !ok {
			t.Fatalf("error is not a Rejection: %v", err)
		}
	})
}
