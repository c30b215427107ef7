package identity

import (
	"bytes"
	"crypto"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/enarx-go/enarx/internal/testutil"
)

// fuzzTime is the "now" of the fuzz seeds' certificates.
var fuzzTime = time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)

// fixedCA is newTestCA's certificate with a fixed key and time: the key
// signs deterministically, so the certificate (and the seeds built on it,
// the committed corpus) is the same bytes every run.
func fixedCA(t testing.TB, cn string) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := testutil.FixedECDSAKey(t, elliptic.P256(), "identity fuzz CA "+cn)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             fuzzTime.Add(-time.Hour),
		NotAfter:              fuzzTime.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	return createCert(t, tmpl, tmpl, key.Public(), key), key
}

// fixedLeaf is testCA.issue's leaf (no extra extension) for a fixed
// P-256 key (the curve of a "none" Keep key), at fuzzTime.
func fixedLeaf(t testing.TB, ca *x509.Certificate, caKey crypto.Signer, dns []string) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(fuzzTime.UnixNano()),
		NotBefore:    fuzzTime.Add(-time.Minute),
		NotAfter:     fuzzTime.Add(28 * 24 * time.Hour),
		DNSNames:     dns,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	pub := testutil.FixedECDSAKey(t, elliptic.P256(), "identity fuzz leaf").Public()
	return createCert(t, tmpl, ca, pub, caKey)
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub any, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func parseChainSeeds(t testing.TB) [][]byte {
	ca, caKey := fixedCA(t, "Fuzz CA")
	leaf := fixedLeaf(t, ca, caKey, []string{"foo.bar.hub.profian.com"})
	good := pkiPath(t, ca, leaf)
	amd, err := os.ReadFile("testdata/upstream/milan.pkipath")
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{
		good,
		pkiPath(t, ca),
		good[:len(good)-1],
		append(append([]byte{}, good...), 0),
		amd,
		{0x30, 0x00},
		{0x30, 0x80, 0x00, 0x00},
		{0x30, 0x03, 0x30, 0x01, 0x00},
	}
}

// FuzzParseChain feeds arbitrary bytes to the parser of the Steward's reply.
// It must never panic, and whatever it accepts must re-encode to the input
// (each certificate is kept with its exact bytes, nothing is skipped).
func FuzzParseChain(f *testing.F) {
	seeds := parseChainSeeds(f)
	testutil.CheckSeedCorpus(f, "FuzzParseChain", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseChain(b)
		if err != nil {
			return
		}
		if len(certs) == 0 || len(certs) > maxChainCerts {
			t.Fatalf("accepted %d certificates", len(certs))
		}
		var inner []byte
		for _, c := range certs {
			inner = append(inner, c.Raw...)
		}
		// The accepted input is exactly SEQUENCE { the certificates }.
		if !bytes.HasSuffix(b, inner) || len(b)-len(inner) > 6 || b[0] != 0x30 {
			t.Fatalf("parsed certificates do not cover the input")
		}
	})
}

func sanitizeReasonSeeds() [][]byte {
	return [][]byte{
		[]byte("unsupported evidence"),
		[]byte("line one\nline two\r\n\x1b[31mred\x1b[0m"),
		[]byte("\xff\xfe invalid \xc3"),
		bytes.Repeat([]byte("é"), maxReasonSize),
		[]byte("\u202eevil\u2066"),
	}
}

// FuzzSanitizeReason feeds arbitrary error bodies, as a hostile Steward (or
// whatever answers at its URL) could send them, to the function that quotes
// them in the Keep's error message: the result must be one line of valid,
// printable UTF-8 of bounded length.
func FuzzSanitizeReason(f *testing.F) {
	seeds := sanitizeReasonSeeds()
	testutil.CheckSeedCorpus(f, "FuzzSanitizeReason", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := sanitizeReason(b)
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8: %q", s)
		}
		if len(s) > maxReasonSize+len("…") {
			t.Fatalf("%d bytes, more than %d", len(s), maxReasonSize+len("…"))
		}
		for _, r := range s {
			if !unicode.IsPrint(r) {
				t.Fatalf("unprintable %U in %q", r, s)
			}
		}
	})
}

func pemPoolSeeds(t testing.TB) []string {
	ca, _ := fixedCA(t, "Fuzz PEM CA")
	p := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	return []string{
		p,
		p + p,
		p + "trailing",
		p[:len(p)/2],
		"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n",
		"",
	}
}

// FuzzParsePEMPool feeds arbitrary text as the inline PEM trust anchors of
// Enarx.toml (ca, client_ca, steward_ca): only text made wholly of PEM
// CERTIFICATE blocks is accepted, and an error never echoes the text.
func FuzzParsePEMPool(f *testing.F) {
	seeds := pemPoolSeeds(f)
	testutil.CheckStringSeedCorpus(f, "FuzzParsePEMPool", seeds)
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pool, err := parsePEMPool(s)
		if err != nil {
			if len(s) >= 8 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q echoes the input", err)
			}
			return
		}
		if pool == nil {
			t.Fatal("no pool and no error")
		}
		rest := []byte(s)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			t.Fatal("accepted text that is not PEM")
		}
	})
}
