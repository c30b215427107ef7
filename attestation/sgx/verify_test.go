package sgx

import (
	"context"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/enarx-go/enarx/attest"
)

// refTime is when all recorded evidence in testdata is valid.
var refTime = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

var vectors = []string{"icelake.signed.tcb.crl.single.i5.csr", "icelake.signed.tcb.crl.multi.xeon.csr"}

func loadCSR(t testing.TB, name string) *x509.CertificateRequest {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(b)
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

// testPolicy is the [sgx] table of upstream's testdata/steward.toml.
func testPolicy(t testing.TB) *Policy {
	t.Helper()
	b, err := os.ReadFile("testdata/steward.toml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		SGX *Policy `toml:"sgx"`
	}
	if err := toml.Unmarshal(b, &f); err != nil {
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
	for _, name := range vectors {
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
