package csr

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/conformance/vectors"
	"github.com/enarx-go/enarx/internal/testutil"
)

// TestUpstreamVectors: the CSRs captured on SGX and SNP hardware (made by
// upstream Enarx) parse, their self-signatures verify, and each carries
// exactly one non-critical evidence extension.
func TestUpstreamVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		der  []byte
		oid  asn1.ObjectIdentifier
	}{
		{"SGX i5", vectors.SGXi5CSR, attest.OIDEvidenceSGX},
		{"SGX Xeon", vectors.SGXXeonCSR, attest.OIDEvidenceSGX},
		{"SNP Milan", vectors.MilanCSR, attest.OIDEvidenceSNP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			oid := tc.oid
			r, err := Parse(tc.der)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Extensions) != 1 || !r.Extensions[0].Id.Equal(oid) || r.Extensions[0].Critical || len(r.Extensions[0].Value) == 0 {
				t.Fatalf("extensions: %+v", r.Extensions)
			}
		})
	}
}

func TestParseKeepsCriticality(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
		{Id: attest.OIDEvidenceKVM, Value: []byte{}},
		{Id: attest.OIDWorkload, Critical: true, Value: []byte{1}},
	}}, k)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Extensions) != 2 || r.Extensions[0].Critical || !r.Extensions[1].Critical || string(r.Extensions[1].Value) != "\x01" {
		t.Fatalf("extensions: %+v", r.Extensions)
	}
}

func TestSplitBundle(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		n    int // -1: rejected
	}{
		{"one", []byte{0x30, 2, 0x30, 0}, 1},
		{"two", []byte{0x30, 4, 0x30, 0, 0x30, 0}, 2},
		{"empty", []byte{0x30, 0}, -1},
		{"trailing", []byte{0x30, 2, 0x30, 0, 0}, -1},
		{"element not a sequence", []byte{0x30, 2, 0x04, 0}, -1},
		{"truncated", []byte{0x30, 5, 0x30, 0}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitBundle(tc.in)
			if tc.n < 0 {
				if r, ok := attest.AsRejection(err); !ok || r.Code != CodeBundle {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || len(got) != tc.n {
				t.Fatalf("got %d, %v", len(got), err)
			}
		})
	}
	many := []byte{0x30, 0x81, 2 * (MaxBundle + 1)}
	for range MaxBundle + 1 {
		many = append(many, 0x30, 0)
	}
	if _, err := SplitBundle(many); err == nil {
		t.Fatal("oversized bundle accepted")
	}
}

// FuzzParse: hostile bytes give a rejection with a known code, never a
// panic; anything accepted has a verified self-signature.
func FuzzParse(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	good, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{
		{Id: attest.OIDEvidenceKVM, Value: []byte{}}}}, k)
	f.Add(good)
	f.Add([]byte{0x30, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			rej, ok := attest.AsRejection(err)
			if !ok {
				t.Fatalf("error is not a rejection: %v", err)
			}
			switch rej.Code {
			case CodeMalformed, CodeVersion, CodeAlgorithm, CodeSignature, CodeAttribute, CodeExtensionDuplicate:
			default:
				t.Fatalf("unexpected code %q", rej.Code)
			}
			return
		}
		if err := r.CSR.CheckSignature(); err != nil {
			t.Fatalf("accepted a request whose signature does not verify: %v", err)
		}
	})
}

// bundleOf wraps DER elements into a bundle request's SEQUENCE.
func bundleOf(elems ...[]byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, e := range elems {
			b.AddBytes(e)
		}
	})
	return b.BytesOrPanic()
}

// splitBundleSeeds are FuzzSplitBundle's seeds (committed in
// testdata/fuzz/FuzzSplitBundle): one request, two, none, a request
// without its bundle, an indefinite length. The request is signed with a
// fixed key (RFC 6979), so the seeds are the same every run.
func splitBundleSeeds(t testing.TB) [][]byte {
	k := testutil.FixedECDSAKey(t, elliptic.P256(), "steward/csr FuzzSplitBundle")
	one, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{bundleOf(one), bundleOf(one, one), bundleOf(), one, {0x30, 0x80, 0x00, 0x00}}
}

// FuzzSplitBundle: hostile bodies of bundle requests give a CodeBundle
// rejection, never a panic; what is accepted is at most MaxBundle DER
// elements that, re-wrapped, are exactly the input.
func FuzzSplitBundle(f *testing.F) {
	seeds := splitBundleSeeds(f)
	testutil.CheckSeedCorpus(f, "FuzzSplitBundle", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	bundle := bundleOf
	f.Fuzz(func(t *testing.T, b []byte) {
		elems, err := SplitBundle(b)
		if err != nil {
			if rej, ok := attest.AsRejection(err); !ok || rej.Code != CodeBundle {
				t.Fatalf("error is not a %s rejection: %v", CodeBundle, err)
			}
			return
		}
		if len(elems) == 0 || len(elems) > MaxBundle {
			t.Fatalf("accepted %d requests", len(elems))
		}
		if !bytes.Equal(bundle(elems...), b) {
			t.Fatal("the requests do not cover the body exactly")
		}
	})
}

func TestReadExtensionCriticalEncodings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		der      []byte
		critical bool
		ok       bool
	}{
		// SEQUENCE { OID 1.2.3, OCTET STRING 01 }
		{"absent", []byte{0x30, 0x07, 0x06, 0x02, 0x2a, 0x03, 0x04, 0x01, 0x01}, false, true},
		{"explicit false", []byte{0x30, 0x0a, 0x06, 0x02, 0x2a, 0x03, 0x01, 0x01, 0x00, 0x04, 0x01, 0x01}, false, true},
		{"true", []byte{0x30, 0x0a, 0x06, 0x02, 0x2a, 0x03, 0x01, 0x01, 0xff, 0x04, 0x01, 0x01}, true, true},
		{"non-DER true", []byte{0x30, 0x0a, 0x06, 0x02, 0x2a, 0x03, 0x01, 0x01, 0x01, 0x04, 0x01, 0x01}, false, false},
		{"no value", []byte{0x30, 0x04, 0x06, 0x02, 0x2a, 0x03}, false, false},
		{"trailing element", []byte{0x30, 0x09, 0x06, 0x02, 0x2a, 0x03, 0x04, 0x01, 0x01, 0x05, 0x00}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := cryptobyte.String(tc.der)
			e, err := readExtension(&s)
			if !tc.ok {
				if err == nil {
					t.Fatal("accepted")
				}
				return
			}
			if err != nil || e.Critical != tc.critical || string(e.Value) != "\x01" {
				t.Fatalf("got %+v, %v", e, err)
			}
		})
	}
}
