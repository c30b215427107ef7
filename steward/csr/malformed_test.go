package csr

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/attest"
)

func goodCSR(t testing.TB) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestMalformedReasons: a body that is not a CSR is refused with one line
// that says what is wrong, not encoding/asn1's dump of field parameters.
func TestMalformedReasons(t *testing.T) {
	good := goodCSR(t)
	// A CSR whose public key is garbage but whose outline is right.
	badKey := append([]byte(nil), good...)
	if i := strings.Index(string(badKey), "\x03\x42\x00\x04"); i > 0 {
		badKey[i+4] ^= 0xff // the point is no longer on the curve
	} else {
		t.Fatal("no P-256 point in the test CSR")
	}
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, "the body is empty"},
		{"text", []byte("garbage"), "does not start with a DER SEQUENCE (first byte 0x67)"},
		{"PEM instead of DER", []byte("-----BEGIN CERTIFICATE REQUEST-----\n"), "first byte 0x2d"},
		{"truncated", good[:100], "the body is truncated"},
		{"trailing data", append(append([]byte(nil), good...), 0, 0), "2 bytes of trailing data follow the request"},
		{"sequence of an integer", []byte{0x30, 0x03, 0x02, 0x01, 0x00}, "the request info is missing, truncated or not a SEQUENCE"},
		{"bad key", badKey, "a field is malformed: "},
	} {
		_, err := Parse(tc.body)
		rej, ok := attest.AsRejection(err)
		if !ok || rej.Code != CodeMalformed {
			t.Errorf("%s: %v, want a %s rejection", tc.name, err, CodeMalformed)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || strings.ContainsAny(msg, "{}\n") {
			t.Errorf("%s: %q, want one line containing %q", tc.name, msg, tc.want)
		}
	}
}

// FuzzMalformedReason: whatever the bytes, a csr.malformed rejection is
// one short line without encoding/asn1's parameter dump.
func FuzzMalformedReason(f *testing.F) {
	good := goodCSR(f)
	f.Add(good)
	f.Add(good[:50])
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := Parse(b)
		rej, ok := attest.AsRejection(err)
		if !ok || rej.Code != CodeMalformed {
			return
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "{}\n") || len(msg) > 200 {
			t.Fatalf("malformed-request message is not one short line: %q", msg)
		}
	})
}
