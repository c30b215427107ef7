package steward_test

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"testing"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/attestation/kvm"
	"github.com/enarx-go/enarx/steward"
)

// FuzzHandleCSR runs hostile bytes through the whole issuance path of a
// debug-mode Steward (CSR parsing, extension policy, KVM verification,
// signing). It must never panic; every failure is a rejection with a code;
// anything issued chains to the CA and records what was attested. Seeds are
// in testdata/fuzz/FuzzHandleCSR and below.
func FuzzHandleCSR(f *testing.F) {
	ca := debugCA(f)
	s, err := steward.New(steward.Config{CA: ca, Verifiers: []attest.Verifier{kvm.New(kvm.Options{})}})
	if err != nil {
		f.Fatal(err)
	}
	key := p256(f)
	wext, _ := workloadExt(f)
	f.Add(goCSR(f, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), wext}}))
	f.Add(rawCSR(f, key, 0, extensionRequest(kvmExt())))
	f.Add(vectors.MilanCSR)
	f.Add([]byte{0x30, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		leaf, err := s.Issue(context.Background(), b)
		if err != nil {
			r, ok := attest.AsRejection(err)
			if !ok || r.Code == "" {
				t.Fatalf("error without a rejection code: %v", err)
			}
			if steward.StatusCode(r.Code) == http.StatusInternalServerError {
				t.Fatalf("internal error on hostile input: %v", err)
			}
			return
		}
		c, err := x509.ParseCertificate(leaf)
		if err != nil {
			t.Fatalf("issued an unparsable certificate: %v", err)
		}
		if err := c.CheckSignatureFrom(ca.Chain[0]); err != nil {
			t.Fatal(err)
		}
		if _, a, err := certext.FromCertificate(c); err != nil || a == nil || a.Claims.Kind != attest.KindNone {
			t.Fatalf("attested-as: %+v, %v", a, err)
		}
	})
}
