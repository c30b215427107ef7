package steward_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/kvm"
	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

func TestHealth(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	for _, path := range []string{"/", "/health"} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(m, hs.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || len(b) != 0 {
				t.Fatalf("%s %s: %d %q", m, path, resp.StatusCode, b)
			}
			if _, err := uuid.Parse(resp.Header.Get(steward.RequestIDHeader)); err != nil {
				t.Fatalf("request id: %v", err)
			}
		}
	}
	// /health takes no certificate requests.
	resp, err := http.Post(hs.URL+"/health", steward.ContentTypePKCS10, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantRejection(t, reply{resp.StatusCode, b, resp.Header}, http.StatusMethodNotAllowed, steward.CodeMethod)
}

func TestRouting(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	req, _ := http.NewRequest(http.MethodPut, hs.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantRejection(t, reply{resp.StatusCode, b, resp.Header}, http.StatusMethodNotAllowed, steward.CodeMethod)

	resp, err = http.Get(hs.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	wantRejection(t, reply{resp.StatusCode, b, resp.Header}, http.StatusNotFound, steward.CodeNotFound)
}

// TestIssueKVMDebug is the whole no-hardware path: a Keep-like CSR with the
// KVM marker and a workload identity, a debug-mode Steward, and a chain
// that verifies and records what was attested.
func TestIssueKVMDebug(t *testing.T) {
	ca := debugCA(t)
	fixed := time.Now().UTC().Truncate(time.Second) // the CA is valid from an hour ago
	s, hs := newServer(t, steward.Config{CA: ca, SANs: []string{"keep.example", "127.0.0.1"},
		Now: func() time.Time { return fixed }})
	if !s.Debug() {
		t.Fatal("self-issued CA is not debug mode")
	}
	key := p256(t)
	wext, w := workloadExt(t)
	der := goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), wext}})

	r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	chain := parseChain(t, r.body)
	if len(chain) != 2 || !chain[0].Equal(ca.Chain[0]) {
		t.Fatalf("chain: got %d certificates, want [CA, leaf]", len(chain))
	}
	leaf := chain[1]
	checkProfile(t, leaf, ca, key, fixed)
	if !slicesEq(leaf.DNSNames, []string{"keep.example"}) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("SANs: %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	gotW, gotA, err := certext.FromCertificate(leaf)
	if err != nil {
		t.Fatal(err)
	}
	if gotW == nil || !bytes.Equal(gotW.WasmSHA256, w.WasmSHA256) || !bytes.Equal(gotW.ConfigSHA256, w.ConfigSHA256) || gotW.Package != w.Package {
		t.Fatalf("workload identity not copied: %+v", gotW)
	}
	if gotA == nil || gotA.Claims.Kind != attest.KindNone || gotA.Claims.HardwareBacked || !gotA.StewardDebug {
		t.Fatalf("attested-as: %+v", gotA)
	}
	var kvmCopied bool
	for _, e := range leaf.Extensions {
		if e.Id.Equal(attest.OIDEvidenceKVM) {
			kvmCopied = len(e.Value) == 0 && !e.Critical
		}
	}
	if !kvmCopied {
		t.Fatal("KVM extension not copied into the leaf (upstream does)")
	}
	// A TLS-style verification with the Steward CA as the only root.
	roots := x509.NewCertPool()
	roots.AddCert(ca.Chain[0])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "keep.example", CurrentTime: fixed.Add(time.Hour),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify: %v", err)
	}
}

// checkProfile pins the issued-certificate profile.
func checkProfile(t *testing.T, leaf *x509.Certificate, ca *steward.CA, key *ecdsa.PrivateKey, now time.Time) {
	t.Helper()
	// Serial: the 16 bytes of a random (version 4, RFC 4122 variant) UUID.
	b := leaf.SerialNumber.FillBytes(make([]byte, 16))
	id, err := uuid.FromBytes(b)
	if err != nil || id.Version() != 4 || id.Variant() != uuid.RFC4122 {
		t.Fatalf("serial %x is not a UUIDv4 (%v)", b, err)
	}
	wantBefore := now.Add(-time.Minute)
	if wantBefore.Before(ca.Chain[0].NotBefore) {
		wantBefore = ca.Chain[0].NotBefore
	}
	if !leaf.NotBefore.Equal(wantBefore) || !leaf.NotAfter.Equal(now.Add(28*24*time.Hour)) {
		t.Fatalf("validity %v – %v, want %v (a minute early, not before the CA) – %v + 28 days", leaf.NotBefore, leaf.NotAfter, wantBefore, now)
	}
	if !slicesEq(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("EKU %v", leaf.ExtKeyUsage)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature || leaf.IsCA {
		t.Fatalf("key usage %v, CA %v", leaf.KeyUsage, leaf.IsCA)
	}
	if !bytes.Equal(leaf.RawIssuer, ca.Chain[0].RawSubject) {
		t.Fatal("issuer is not the CA subject")
	}
	if !leaf.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Fatal("leaf key is not the CSR key")
	}
	if err := leaf.CheckSignatureFrom(ca.Chain[0]); err != nil {
		t.Fatal(err)
	}
	want := x509.ECDSAWithSHA256
	if ca.Key.Curve == elliptic.P384() {
		want = x509.ECDSAWithSHA384
	}
	if leaf.SignatureAlgorithm != want {
		t.Fatalf("signature algorithm %v, want %v", leaf.SignatureAlgorithm, want)
	}
}

func slicesEq[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestProductionCARefusesKVM: a CA issued by another CA is not debug mode,
// so no-hardware evidence is refused, unless the explicit switch is on.
func TestProductionCARefusesKVM(t *testing.T) {
	ca, root := stewardtest.ProductionCA(t, elliptic.P384())
	s, hs := newServer(t, steward.Config{CA: ca})
	if s.Debug() {
		t.Fatal("intermediate CA taken for debug mode")
	}
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)), http.StatusBadRequest, kvm.CodeNotAllowed)

	// With the policy switch the same request is issued, marked
	// non-hardware and not steward-debug, and chains to the root.
	_, hs2 := newServer(t, steward.Config{CA: ca, Verifiers: []attest.Verifier{kvm.New(kvm.Options{AllowWithoutDebug: true})}})
	r := post(t, hs2.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	chain := parseChain(t, r.body)
	if len(chain) != 3 || !chain[0].Equal(root) || !chain[1].Equal(ca.Chain[0]) {
		t.Fatalf("chain is not [root, intermediate, leaf]: %d certificates", len(chain))
	}
	leaf := chain[2]
	if leaf.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Fatalf("P-384 CA signed with %v", leaf.SignatureAlgorithm)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inter.AddCert(chain[1])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatal(err)
	}
	_, a, err := certext.FromCertificate(leaf)
	if err != nil || a == nil || a.StewardDebug || a.Claims.HardwareBacked || a.Claims.Kind != attest.KindNone {
		t.Fatalf("attested-as %+v, %v", a, err)
	}
}

func TestRejections(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	key := p256(t)
	wext, _ := workloadExt(t)
	good := goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})

	badSig := bytes.Clone(good)
	badSig[len(badSig)-3] ^= 0x01 // inside the ECDSA signature's s

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)

	otherAttr := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 7}) // challengePassword
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte("pw")) })
			})
		})
		extensionRequest(kvmExt())(b)
	}
	twoValues := func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(attest.OIDExtensionRequest)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(mustMarshal(t, kvmExt())) })
				b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
			})
		})
	}
	critical := func(e pkix.Extension) pkix.Extension { e.Critical = true; return e }
	attested, _ := (&certext.AttestedAs{Claims: attest.Claims{Kind: attest.KindSNP, HardwareBacked: true}}).Extension()

	for _, tc := range []struct {
		name   string
		ct     string
		body   []byte
		status int
		code   string
	}{
		{"garbage bytes", steward.ContentTypePKCS10, []byte("this is not DER"), 400, "csr.malformed"},
		{"empty body", steward.ContentTypePKCS10, nil, 400, "csr.malformed"},
		{"trailing data", steward.ContentTypePKCS10, append(bytes.Clone(good), 0), 400, "csr.malformed"},
		{"bad signature", steward.ContentTypePKCS10, badSig, 400, "csr.signature"},
		{"version 1", steward.ContentTypePKCS10, rawCSR(t, key, 1, extensionRequest(kvmExt())), 400, "csr.version"},
		{"RSA PKCS#1 v1.5", steward.ContentTypePKCS10, goCSR(t, rsaKey, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}}), 400, "csr.algorithm"},
		{"P-521", steward.ContentTypePKCS10, goCSR(t, p521, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}}), 400, "csr.algorithm"},
		{"P-384 with SHA-256", steward.ContentTypePKCS10, goCSR(t, p384, &x509.CertificateRequest{SignatureAlgorithm: x509.ECDSAWithSHA256, ExtraExtensions: []pkix.Extension{kvmExt()}}), 400, "csr.algorithm"},
		{"other attribute", steward.ContentTypePKCS10, rawCSR(t, key, 0, otherAttr), 400, "csr.attribute"},
		{"two extensionRequest values", steward.ContentTypePKCS10, rawCSR(t, key, 0, twoValues), 400, "csr.attribute"},
		{"unknown OID", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), {Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5}}}}), 400, "csr.extension.unknown"},
		{"key usage requested", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), {Id: asn1.ObjectIdentifier{2, 5, 29, 15}, Value: []byte{3, 2, 7, 128}}}}), 400, "csr.extension.unknown"},
		{"critical evidence", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{critical(kvmExt())}}), 400, "csr.extension.critical"},
		{"critical workload", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), critical(wext)}}), 400, "csr.extension.critical"},
		{"SAN requested", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{DNSNames: []string{"evil.example"}, ExtraExtensions: []pkix.Extension{kvmExt()}}), 400, "csr.extension.san"},
		{"attested-as requested", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), attested}}), 400, "csr.extension.attested-as"},
		{"malformed workload", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), {Id: attest.OIDWorkload, Value: []byte{0x30, 0}}}}), 400, "csr.workload"},
		{"no evidence", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{wext}}), 401, "evidence.missing"},
		{"no extensions at all", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{}), 401, "evidence.missing"},
		{"non-empty KVM evidence", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: attest.OIDEvidenceKVM, Value: []byte{1}}}}), 400, "kvm.value"},
		{"empty SNP evidence, no verifier", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: attest.OIDEvidenceSNP, Value: []byte{}}}}), 400, "evidence.unsupported"},
		{"two evidence extensions", steward.ContentTypePKCS10, goCSR(t, key, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), {Id: attest.OIDEvidenceSGX, Value: []byte{}}}}), 400, "evidence.multiple"},
		{"duplicate extension", steward.ContentTypePKCS10, rawCSR(t, key, 0, extensionRequest(kvmExt(), kvmExt())), 400, "csr.extension.duplicate"},
		// Upstream answers 400 to a missing or unknown Content-Type
		// (err_no_content_type, err_empty_body, err_bad_body).
		{"no content type", "", good, 400, "request.content-type"},
		{"no content type, empty body", "", nil, 400, "request.content-type"},
		{"no content type, bad body", "", []byte("not a csr"), 400, "request.content-type"},
		{"charset parameter", steward.ContentTypePKCS10 + "; charset=utf-8", good, 400, "request.content-type"},
		{"other content type", "application/octet-stream", good, 400, "request.content-type"},
		{"bundle: not a sequence", steward.ContentTypeBundle, []byte{4, 0}, 400, "csr.bundle"},
		{"bundle: empty", steward.ContentTypeBundle, []byte{0x30, 0}, 400, "csr.bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantRejection(t, post(t, hs.URL, tc.ct, bytes.NewReader(tc.body)), tc.status, tc.code)
		})
	}
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRSAPSS: RSASSA-PSS requests are accepted (upstream accepts them too).
func TestRSAPSS(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der := goCSR(t, k, &x509.CertificateRequest{SignatureAlgorithm: x509.SHA256WithRSAPSS, ExtraExtensions: []pkix.Extension{kvmExt()}})
	if r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
}

// zeros is an endless reader of zero bytes, so the test does not need
// 100 MB of memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestBodyLimit(t *testing.T) {
	s, hs := newServer(t, steward.Config{CA: debugCA(t)})
	_ = s
	const hundredMB = 100 << 20
	t.Run("declared length", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, hs.URL, io.LimitReader(zeros{}, hundredMB))
		req.ContentLength = hundredMB
		req.Header.Set("Content-Type", steward.ContentTypePKCS10)
		r := do(t, req)
		wantRejection(t, r, http.StatusRequestEntityTooLarge, steward.CodeTooLarge)
	})
	t.Run("chunked", func(t *testing.T) {
		// No Content-Length: the limit is enforced while reading.
		req, _ := http.NewRequest(http.MethodPost, hs.URL, io.NopCloser(io.LimitReader(zeros{}, hundredMB)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", steward.ContentTypeBundle)
		r := do(t, req)
		wantRejection(t, r, http.StatusRequestEntityTooLarge, steward.CodeTooLarge)
	})
}

func do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b, resp.Header}
}

func TestBundle(t *testing.T) {
	ca := debugCA(t)
	_, hs := newServer(t, steward.Config{CA: ca})
	k1, k2 := p256(t), p256(t)
	wext, _ := workloadExt(t)
	c1 := goCSR(t, k1, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	c2 := goCSR(t, k2, &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), wext}})
	bad := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{wext}})

	bundle := func(csrs ...[]byte) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, c := range csrs {
				b.AddBytes(c)
			}
		})
		return b.BytesOrPanic()
	}

	r := post(t, hs.URL, steward.ContentTypeBundle, bytes.NewReader(bundle(c1, c2)))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var out struct{ Chain, Issued []asn1.RawValue }
	if rest, err := asn1.Unmarshal(r.body, &out); err != nil || len(rest) != 0 {
		t.Fatalf("Output: %v", err)
	}
	if len(out.Chain) != 1 || !bytes.Equal(out.Chain[0].FullBytes, ca.Chain[0].Raw) || len(out.Issued) != 2 {
		t.Fatalf("Output: chain %d, issued %d", len(out.Chain), len(out.Issued))
	}
	for i, k := range []*ecdsa.PrivateKey{k1, k2} { // request order
		c, err := x509.ParseCertificate(out.Issued[i].FullBytes)
		if err != nil {
			t.Fatal(err)
		}
		if !c.PublicKey.(*ecdsa.PublicKey).Equal(&k.PublicKey) {
			t.Fatalf("issued[%d] is not for request %d", i, i)
		}
	}

	// All or nothing: one bad request fails the whole bundle, with its index.
	r = post(t, hs.URL, steward.ContentTypeBundle, bytes.NewReader(bundle(c1, c2, bad)))
	wantRejection(t, r, http.StatusUnauthorized, steward.CodeEvidenceMissing)
	if !bytes.Contains(r.body, []byte("bundle request 2")) {
		t.Fatalf("body does not name the failing request: %q", r.body)
	}
	// Bundles are not accepted under the single-request type, nor vice versa.
	wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(bundle(c1))), 400, "csr.malformed")
	wantRejection(t, post(t, hs.URL, steward.ContentTypeBundle, bytes.NewReader(c1)), 400, "csr.bundle")
}

func TestMetrics(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	good := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	noEvidence := goCSR(t, p256(t), &x509.CertificateRequest{})
	post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(good))
	post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(noEvidence))
	post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(noEvidence))
	post(t, hs.URL, steward.ContentTypePKCS10, strings.NewReader("junk"))
	post(t, hs.URL, "text/plain", strings.NewReader("junk"))

	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	text := string(b)
	for _, line := range []string{
		`steward_rejections_total{code="evidence.missing"} 2`,
		`steward_rejections_total{code="csr.malformed"} 1`,
		`steward_rejections_total{code="request.content-type"} 1`,
		`steward_certificates_issued_total{tee="none"} 1`,
		`steward_http_requests_total{code="200"} 1`,
		`steward_http_requests_total{code="401"} 2`,
		`steward_http_requests_total{code="400"} 2`,
		`steward_request_duration_seconds_count 5`,
		`steward_request_duration_seconds_bucket{le="+Inf"} 5`,
		`steward_debug_mode 1`,
		`# TYPE steward_request_duration_seconds histogram`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, text)
		}
	}
}

// TestVerificationClock: verifiers see the pinned verification clock while
// issuance uses the wall clock.
func TestVerificationClock(t *testing.T) {
	pinned := time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	rec := &recordingVerifier{}
	_, hs := newServer(t, steward.Config{CA: debugCA(t), Verifiers: []attest.Verifier{rec},
		VerifyTime: func() time.Time { return pinned }})
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: attest.OIDEvidenceSNP, Value: []byte{1, 2}}}})
	before := time.Now().Truncate(time.Second)
	r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if !rec.got.Now.Equal(pinned) || !rec.got.Debug || !bytes.Equal(rec.got.Extension.Value, []byte{1, 2}) {
		t.Fatalf("verifier saw %+v", rec.got)
	}
	leaf := parseChain(t, r.body)[1]
	if leaf.NotBefore.Before(before.Add(-steward.Backdate)) {
		t.Fatalf("notBefore %v follows the verification clock, not the wall clock", leaf.NotBefore)
	}
	_, a, err := certext.FromCertificate(leaf)
	if err != nil || a.Claims.Kind != attest.KindSNP || !bytes.Equal(a.Claims.Measurement, []byte("measure")) || a.Claims.TCBStatus != "UpToDate" {
		t.Fatalf("claims not recorded: %+v %v", a, err)
	}
	// A verifier's rejection code reaches the client.
	rec.reject = attest.Reject("snp.report.signature", "bad signature")
	wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)), 400, "snp.report.signature")
	// A verifier error without a code is reported generically.
	rec.reject = io.ErrUnexpectedEOF
	wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)), 400, steward.CodeEvidenceRejected)
}

type recordingVerifier struct {
	got    attest.VerifyRequest
	reject error
}

func (v *recordingVerifier) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceSNP }
func (v *recordingVerifier) Verify(_ context.Context, req *attest.VerifyRequest) (*attest.Claims, error) {
	v.got = *req
	if v.reject != nil {
		return nil, v.reject
	}
	return &attest.Claims{Kind: attest.KindSNP, HardwareBacked: true, Measurement: []byte("measure"), TCBStatus: "UpToDate"}, nil
}

func TestGracefulShutdown(t *testing.T) {
	var logs bytes.Buffer
	s, err := steward.New(steward.Config{CA: debugCA(t), Verifiers: []attest.Verifier{kvm.New(kvm.Options{})},
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, nil) }()
	url := "http://" + ln.Addr().String() + "/"
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	if r := post(t, url, steward.ContentTypePKCS10, bytes.NewReader(der)); r.status != http.StatusOK {
		t.Fatalf("status %d", r.status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("still listening after shutdown")
	}
	if !strings.Contains(logs.String(), "DEBUG MODE") {
		t.Fatalf("debug mode not logged loudly:\n%s", logs.String())
	}
}

func TestConfigErrors(t *testing.T) {
	ca := debugCA(t)
	other := debugCA(t)
	for _, tc := range []struct {
		name string
		cfg  steward.Config
	}{
		{"no CA", steward.Config{}},
		{"key does not match", steward.Config{CA: &steward.CA{Key: other.Key, Chain: ca.Chain}}},
		{"bad SAN", steward.Config{CA: ca, SANs: []string{"not a name"}}},
		{"duplicate verifier", steward.Config{CA: ca, Verifiers: []attest.Verifier{kvm.New(kvm.Options{}), kvm.New(kvm.Options{})}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := steward.New(tc.cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestBusy: with every processing slot taken, a request is answered 503
// with Retry-After instead of queueing without bound.
func TestBusy(t *testing.T) {
	block := &blockingVerifier{entered: make(chan struct{}), release: make(chan struct{})}
	_, hs := newServer(t, steward.Config{CA: debugCA(t), Verifiers: []attest.Verifier{block},
		MaxConcurrent: 1, BusyWait: 50 * time.Millisecond})
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: attest.OIDEvidenceSGX, Value: []byte{1}}}})
	first := make(chan reply, 1)
	go func() { first <- post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)) }()
	<-block.entered
	r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
	wantRejection(t, r, http.StatusServiceUnavailable, steward.CodeBusy)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	close(block.release)
	if r := <-first; r.status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.status, r.body)
	}
}

type blockingVerifier struct{ entered, release chan struct{} }

func (v *blockingVerifier) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceSGX }
func (v *blockingVerifier) Verify(ctx context.Context, _ *attest.VerifyRequest) (*attest.Claims, error) {
	v.entered <- struct{}{}
	<-v.release
	return &attest.Claims{Kind: attest.KindSGX, HardwareBacked: true}, nil
}

// TestInconsistentClaims: a verifier that claims another TEE than its
// evidence OID is a bug; the Steward refuses to certify it.
func TestInconsistentClaims(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t), Verifiers: []attest.Verifier{wrongKind{}}})
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: attest.OIDEvidenceTDX, Value: []byte{1}}}})
	wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)), http.StatusInternalServerError, steward.CodeInternal)
}

type wrongKind struct{}

func (wrongKind) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceTDX }
func (wrongKind) Verify(context.Context, *attest.VerifyRequest) (*attest.Claims, error) {
	return &attest.Claims{Kind: attest.KindSNP, HardwareBacked: true}, nil
}

// TestExpiredCARefuses: once the Steward's CA certificate has expired, a
// certificate capped at the CA's notAfter would end before it starts.
// The Steward must refuse (500, saying the CA expired) instead of
// answering 200 with a certificate that no relying party accepts, and
// must keep issuing normally while the CA is valid, up to its last second.
func TestExpiredCARefuses(t *testing.T) {
	ca := debugCA(t) // valid from an hour ago for 365 days
	notAfter := ca.Chain[0].NotAfter
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})

	for _, tc := range []struct {
		name string
		now  time.Time
		ok   bool
	}{
		{"valid", notAfter.Add(-steward.Validity), true},
		{"last second", notAfter.Add(-time.Second), true},
		{"at notAfter", notAfter, false},
		{"expired", notAfter.Add(24 * time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			s, hs := newServer(t, steward.Config{CA: ca, Now: func() time.Time { return now }})
			leafDER, err := s.Issue(context.Background(), der)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := x509.ParseCertificate(leafDER)
				if err != nil {
					t.Fatal(err)
				}
				if !leaf.NotAfter.After(leaf.NotBefore) || leaf.NotAfter.After(notAfter) {
					t.Fatalf("validity %v – %v (CA until %v)", leaf.NotBefore, leaf.NotAfter, notAfter)
				}
				return
			}
			r, ok := attest.AsRejection(err)
			if !ok || r.Code != steward.CodeInternal || !strings.Contains(r.Msg, "expired") {
				t.Fatalf("Issue with an expired CA: %v (certificate of %d bytes)", err, len(leafDER))
			}
			wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)), http.StatusInternalServerError, steward.CodeInternal)
		})
	}

	// A CA valid only from beyond the 28 days: the same, the other way round.
	future, err := steward.GenerateCA("steward.test", time.Now().Add(2*steward.Validity))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newServer(t, steward.Config{CA: future})
	if leafDER, err := s.Issue(context.Background(), der); err == nil || !strings.Contains(err.Error(), "not valid before") {
		t.Fatalf("Issue with a CA not yet valid: %v (certificate of %d bytes)", err, len(leafDER))
	}
}
