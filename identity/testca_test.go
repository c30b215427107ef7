package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
)

// testCA is a small certificate authority for tests.
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{key: key, cert: cert}
}

// issue signs a leaf for pub with the extensions given (and the profile of
// upstream Steward: SAN, EKU serverAuth+clientAuth).
func (ca *testCA) issue(t testing.TB, pub any, dns []string, exts []pkix.Extension) *x509.Certificate {
	t.Helper()
	return ca.issueTemplate(t, pub, &x509.Certificate{
		NotBefore:       time.Now().Add(-time.Minute),
		NotAfter:        time.Now().Add(28 * 24 * time.Hour),
		DNSNames:        dns,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: exts,
	})
}

// issueProfile signs a leaf for pub with the key usage and extended key
// usages given (and nothing else), valid from a minute ago for 28 days.
func (ca *testCA) issueProfile(t testing.TB, pub any, ku x509.KeyUsage, eku ...x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	return ca.issueTemplate(t, pub, &x509.Certificate{
		NotBefore:   time.Now().Add(-time.Minute),
		NotAfter:    time.Now().Add(28 * 24 * time.Hour),
		KeyUsage:    ku,
		ExtKeyUsage: eku,
	})
}

// issueTemplate signs tmpl (given a serial here) for pub.
func (ca *testCA) issueTemplate(t testing.TB, pub any, tmpl *x509.Certificate) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pkiPath encodes certs as a DER SEQUENCE OF Certificate.
func pkiPath(t testing.TB, certs ...*x509.Certificate) []byte {
	t.Helper()
	raws := make([]asn1.RawValue, len(certs))
	for i, c := range certs {
		raws[i] = asn1.RawValue{FullBytes: c.Raw}
	}
	der, err := asn1.Marshal(raws)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// fakeSteward is an HTTP handler that behaves like upstream Steward for the
// parts the client sees: exact content type, CSR signature check, only known
// extensions, issuing [CA, leaf] root-first with the workload extension
// copied. tamper, when set, may change the reply.
type fakeSteward struct {
	t        testing.TB
	ca       *testCA
	requests atomic.Int32
	// lastCSR is the last request body.
	lastCSR atomic.Pointer[[]byte]
	// upstream makes refusals like upstream Steward's: 400 with no body,
	// and the workload identity extension is unknown.
	upstream bool
	// tamper may replace the response: return true when it wrote one.
	tamper func(w http.ResponseWriter, csr *x509.CertificateRequest, n int32) bool
}

func (s *fakeSteward) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if r.Method != http.MethodPost {
		http.Error(w, "method", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/pkcs10" {
		http.Error(w, "unsupported content type "+ct, http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	s.lastCSR.Store(&body)
	csr, err := x509.ParseCertificateRequest(body)
	if err != nil {
		http.Error(w, "csr.decode: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := csr.CheckSignature(); err != nil {
		http.Error(w, "csr.signature: "+err.Error(), http.StatusBadRequest)
		return
	}
	if s.tamper != nil && s.tamper(w, csr, n) {
		return
	}
	var copyExts []pkix.Extension
	attested := false
	for _, e := range csr.Extensions {
		switch {
		case e.Id.Equal(attest.OIDEvidenceKVM):
			if len(e.Value) != 0 || e.Critical {
				http.Error(w, "kvm.value: must be empty and non-critical", http.StatusBadRequest)
				return
			}
			attested = true
			copyExts = append(copyExts, e)
		case e.Id.Equal(attest.OIDWorkload) && !s.upstream:
			copyExts = append(copyExts, e)
		case s.upstream:
			w.WriteHeader(http.StatusBadRequest)
			return
		default:
			http.Error(w, "csr.extension: unknown "+e.Id.String(), http.StatusBadRequest)
			return
		}
	}
	if !attested {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	leaf := s.ca.issue(s.t, csr.PublicKey, []string{"foo.bar.hub.profian.com", "localhost"}, copyExts)
	w.Write(pkiPath(s.t, s.ca.cert, leaf))
}

func startFakeSteward(t testing.TB, tlsServer bool) (*fakeSteward, *httptest.Server) {
	t.Helper()
	s := &fakeSteward{t: t, ca: newTestCA(t, "Test Steward CA")}
	ts := httptest.NewUnstartedServer(s)
	// Handshake failures are expected in some tests; keep them off stderr.
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsServer {
		ts.StartTLS()
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return s, ts
}
