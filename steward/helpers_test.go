package steward_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/kvm"
	"github.com/enarx-go/enarx/steward"
)

// debugCA is a self-issued CA (upstream's debug mode).
func debugCA(t testing.TB) *steward.CA {
	t.Helper()
	ca, err := steward.GenerateCA("steward.test", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func newServer(t testing.TB, cfg steward.Config) (*steward.Server, *httptest.Server) {
	t.Helper()
	if cfg.Verifiers == nil {
		cfg.Verifiers = []attest.Verifier{kvm.New(kvm.Options{})}
	}
	s, err := steward.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s) // listens on 127.0.0.1
	t.Cleanup(hs.Close)
	return s, hs
}

type reply struct {
	status int
	body   []byte
	header http.Header
}

func post(t testing.TB, url, contentType string, body io.Reader) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, body: b, header: resp.Header}
}

func kvmExt() pkix.Extension { return pkix.Extension{Id: attest.OIDEvidenceKVM, Value: []byte{}} }

func workloadExt(t testing.TB) (pkix.Extension, *certext.Workload) {
	t.Helper()
	h := sha256.Sum256([]byte("wasm module"))
	c := sha256.Sum256([]byte("Enarx.toml"))
	w := &certext.Workload{WasmSHA256: h[:], ConfigSHA256: c[:], Package: "sha-256=:abc:"}
	e, err := w.Extension()
	if err != nil {
		t.Fatal(err)
	}
	return e, w
}

// goCSR builds a CSR with crypto/x509 (like the Keep does).
func goCSR(t testing.TB, key crypto.Signer, tmpl *x509.CertificateRequest) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func p256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rawCSR builds a CSR by hand so tests can produce what crypto/x509 will
// not: another version, arbitrary attributes. attrs is the content of the
// [0] attributes field. The signature is ES256 with key (a P-256 key).
func rawCSR(t testing.TB, key *ecdsa.PrivateKey, version int64, attrs func(*cryptobyte.Builder)) []byte {
	t.Helper()
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version)
		b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {}) // empty subject
		b.AddBytes(spki)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), attrs)
	})
	tbs := tb.BytesOrPanic()
	h := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
		})
		b.AddASN1BitString(sig)
	})
	return b.BytesOrPanic()
}

// extensionRequest adds one extensionRequest attribute holding exts.
func extensionRequest(exts ...pkix.Extension) func(*cryptobyte.Builder) {
	return func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(attest.OIDExtensionRequest)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					for _, e := range exts {
						der, err := asn1.Marshal(e)
						if err != nil {
							b.SetError(err)
							return
						}
						b.AddBytes(der)
					}
				})
			})
		})
	}
}

// parseChain decodes a SEQUENCE OF Certificate.
func parseChain(t testing.TB, der []byte) []*x509.Certificate {
	t.Helper()
	var raws []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &raws)
	if err != nil || len(rest) != 0 {
		t.Fatalf("reply is not a DER SEQUENCE OF Certificate: %v (%d trailing bytes)", err, len(rest))
	}
	var certs []*x509.Certificate
	for _, r := range raws {
		c, err := x509.ParseCertificate(r.FullBytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	return certs
}

// wantRejection checks status, text/plain body "code: …" and the request id.
func wantRejection(t testing.TB, r reply, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %q", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Fatalf("Content-Type = %q", ct)
	}
	if !bytes.HasPrefix(r.body, []byte(code+": ")) || !bytes.HasSuffix(r.body, []byte("\n")) || bytes.Count(r.body, []byte("\n")) != 1 {
		t.Fatalf("body = %q, want one line %q", r.body, code+": …")
	}
	if r.header.Get(steward.RequestIDHeader) == "" {
		t.Fatal("no request id header")
	}
}

// syncWriter serialises writes from the server's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
