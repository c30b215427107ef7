package identity

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attest/certext"
)

func TestStewardIssuesChain(t *testing.T) {
	st, ts := startFakeSteward(t, true)
	w := testWorkload()
	id, err := Establish(t.Context(), Request{Steward: ts.URL, Workload: w, HTTPClient: ts.Client()})
	if err != nil {
		t.Fatal(err)
	}
	chain := id.Chain()
	if len(chain) != 2 || !chain[1].Equal(st.ca.cert) || !id.StewardCA().Equal(st.ca.cert) {
		t.Fatal("chain is not [leaf, steward CA]")
	}
	if !bytes.Equal(chain[0].RawSubjectPublicKeyInfo, id.signer.spki) {
		t.Fatal("leaf is not for the keep key")
	}
	got, _, err := certext.FromCertificate(chain[0])
	if err != nil || got == nil || !bytes.Equal(got.WasmSHA256, w.WasmSHA256) {
		t.Fatalf("workload extension not in leaf: %v %v", got, err)
	}
	if !bytes.Equal(*st.lastCSR.Load(), id.CSR()) {
		t.Fatal("CSR() is not what was sent")
	}
	tc := id.Certificate()
	if len(tc.Certificate) != 2 || !bytes.Equal(tc.Certificate[0], chain[0].Raw) {
		t.Fatal("tls.Certificate is not leaf-first")
	}
}

func TestStewardPlainHTTP(t *testing.T) {
	st, ts := startFakeSteward(t, false)
	_, err := Establish(t.Context(), Request{Steward: ts.URL, Workload: testWorkload()})
	// The message names an option that exists.
	if err == nil || !strings.Contains(err.Error(), "plain http") || !strings.Contains(err.Error(), "identity.Request.AllowInsecureSteward") {
		t.Fatalf("plain http steward: %v", err)
	}
	if st.requests.Load() != 0 {
		t.Fatal("a request was sent to a plain http steward")
	}
	if _, err := Establish(t.Context(), Request{Steward: ts.URL, AllowInsecureSteward: true, Workload: testWorkload()}); err != nil {
		t.Fatalf("insecure steward explicitly allowed: %v", err)
	}
}

func TestStewardDefaultClientDoesNotTrustHostRoots(t *testing.T) {
	// The test server's certificate is not under a Mozilla root; the default
	// client must refuse it, and not retry a verification failure.
	st, ts := startFakeSteward(t, true)
	_, err := Establish(t.Context(), Request{Steward: ts.URL, Workload: testWorkload()})
	if err == nil {
		t.Fatal("steward with an untrusted certificate accepted")
	}
	if n := st.requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the handler", n)
	}
	if strings.Contains(err.Error(), "attempts") {
		t.Fatalf("certificate error was retried: %v", err)
	}
}

// quickClient returns a steward client against url with a fast retry policy.
func quickClient(t *testing.T, url string, hc *http.Client) *stewardClient {
	t.Helper()
	ep, err := parseStewardURL(url, true)
	if err != nil {
		t.Fatal(err)
	}
	c := newStewardClient(ep, hc, nil, mozillaRoots(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.retry = retryPolicy{maxAttempts: 3, attemptTimeout: 5 * time.Second, baseDelay: time.Millisecond, maxDelay: 5 * time.Millisecond}
	return c
}

func testCSR(t *testing.T) ([]byte, *keySigner) {
	t.Helper()
	s, err := newKeySigner(attest.KindNone)
	if err != nil {
		t.Fatal(err)
	}
	w := testWorkload()
	der, err := createCSR(s, attest.KindNone, []byte{}, &w)
	if err != nil {
		t.Fatal(err)
	}
	return der, s
}

func TestStewardRetries(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		failures  int32 // how many requests fail before success
		wantErr   string
		wantCalls int32
	}{
		{"503 then ok", http.StatusServiceUnavailable, 2, "", 3},
		{"429 then ok", http.StatusTooManyRequests, 1, "", 2},
		{"always 500", http.StatusInternalServerError, 100, "after 3 attempts", 3},
		{"400 not retried", http.StatusBadRequest, 100, `"kvm.debug: steward not in debug mode"`, 1},
		{"403 not retried", http.StatusForbidden, 100, "403", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ts := startFakeSteward(t, false)
			st.tamper = func(w http.ResponseWriter, _ *x509.CertificateRequest, n int32) bool {
				if n > tc.failures {
					return false
				}
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(tc.status)
				io.WriteString(w, "kvm.debug: steward not in debug mode\n")
				return true
			}
			csr, _ := testCSR(t)
			chain, err := quickClient(t, ts.URL, nil).issue(t.Context(), csr)
			if tc.wantErr == "" {
				if err != nil || len(chain) != 2 {
					t.Fatalf("chain %d, err %v", len(chain), err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			if n := st.requests.Load(); n != tc.wantCalls {
				t.Fatalf("%d requests, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestStewardNetworkErrorRetried(t *testing.T) {
	_, ts := startFakeSteward(t, false)
	url := ts.URL
	ts.Close() // nothing listens there any more
	csr, _ := testCSR(t)
	_, err := quickClient(t, url, nil).issue(t.Context(), csr)
	if err == nil || !strings.Contains(err.Error(), "after 3 attempts") {
		t.Fatalf("error %v", err)
	}
}

func TestStewardContextCancelStopsRetries(t *testing.T) {
	st, ts := startFakeSteward(t, false)
	ctx, cancel := context.WithCancel(t.Context())
	st.tamper = func(w http.ResponseWriter, _ *x509.CertificateRequest, _ int32) bool {
		cancel()
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	}
	csr, _ := testCSR(t)
	c := quickClient(t, ts.URL, nil)
	c.retry.baseDelay, c.retry.maxDelay = time.Hour, time.Hour
	_, err := c.issue(ctx, csr)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

func TestStewardReasonIsSanitized(t *testing.T) {
	st, ts := startFakeSteward(t, false)
	st.tamper = func(w http.ResponseWriter, _ *x509.CertificateRequest, _ int32) bool {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("bad\x1b[31m\nthing " + strings.Repeat("x", 4000)))
		return true
	}
	csr, _ := testCSR(t)
	_, err := quickClient(t, ts.URL, nil).issue(t.Context(), csr)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\x1b\n") || len(msg) > 1000 || !strings.Contains(msg, "bad[31m thing") {
		t.Fatalf("reason not sanitized: %q", msg)
	}
}

func TestStewardRedirectNotFollowed(t *testing.T) {
	st, ts := startFakeSteward(t, false)
	st.tamper = func(w http.ResponseWriter, _ *x509.CertificateRequest, _ int32) bool {
		w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
		w.WriteHeader(http.StatusFound)
		return true
	}
	csr, _ := testCSR(t)
	_, err := quickClient(t, ts.URL, nil).issue(t.Context(), csr)
	if err == nil || !strings.Contains(err.Error(), "redirect") || st.requests.Load() != 1 {
		t.Fatalf("error %v after %d requests", err, st.requests.Load())
	}
}

func TestStewardBadReplies(t *testing.T) {
	other := newTestCA(t, "Other CA")
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	wrongW := certext.Workload{WasmSHA256: make([]byte, 32)}
	wrongExt, _ := wrongW.Extension()
	for _, tc := range []struct {
		name    string
		reply   func(st *fakeSteward, csr *x509.CertificateRequest) []byte
		wantErr string
	}{
		{"garbage", func(*fakeSteward, *x509.CertificateRequest) []byte { return []byte("<html>hello</html>") }, "not a DER SEQUENCE"},
		{"too large", func(*fakeSteward, *x509.CertificateRequest) []byte { return make([]byte, maxReplySize+10) }, "larger than"},
		{"leaf only", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.issue(t, csr.PublicKey, nil, nil))
		}, "got one certificate"},
		{"someone else's key", func(st *fakeSteward, _ *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.cert, st.ca.issue(t, &otherKey.PublicKey, nil, nil))
		}, "not for this keep's key"},
		{"chain does not verify", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, other.cert, st.ca.issue(t, csr.PublicKey, nil, nil))
		}, "does not verify"},
		{"root is not a CA", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "not a CA"},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
				BasicConstraintsValid: true, IsCA: false}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &otherKey.PublicKey, otherKey)
			if err != nil {
				t.Fatal(err)
			}
			notCA, _ := x509.ParseCertificate(der)
			leaf := (&testCA{key: otherKey, cert: notCA}).issue(t, csr.PublicKey, nil, nil)
			return pkiPath(t, notCA, leaf)
		}, "is not a CA"},
		// The leaf sent as its own root: x509 trusts a leaf that is in the
		// root pool without checking any signature, so nothing vouches
		// for it, and the "Steward CA" would be the Keep's own leaf.
		{"leaf is its own root", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			leaf := st.ca.issue(t, csr.PublicKey, nil, nil)
			return pkiPath(t, leaf, leaf)
		}, "is not a CA"},
		// Not issued by the Steward CA in the reply at all.
		{"another CA's leaf is its own root", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			leaf := other.issue(t, csr.PublicKey, nil, nil)
			return pkiPath(t, leaf, st.ca.cert, leaf)
		}, "is not a CA"},
		{"leaf first order", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.issue(t, csr.PublicKey, nil, nil), st.ca.cert)
		}, "not for this keep's key"},
		{"other workload", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.cert, st.ca.issue(t, csr.PublicKey, nil, []pkix.Extension{wrongExt}))
		}, "different workload"},
		// The Keep presents its leaf as a TLS server and as a TLS client;
		// a leaf its peers refuse for either is not an identity.
		{"leaf not for TLS servers", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.cert, st.ca.issueProfile(t, csr.PublicKey, 0, x509.ExtKeyUsageClientAuth))
		}, "not valid for TLS server authentication"},
		{"leaf not for TLS clients", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.cert, st.ca.issueProfile(t, csr.PublicKey, 0, x509.ExtKeyUsageServerAuth))
		}, "not valid for TLS client authentication"},
		{"leaf for code signing", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.cert, st.ca.issueProfile(t, csr.PublicKey, 0, x509.ExtKeyUsageCodeSigning))
		}, "not valid for TLS server authentication"},
		{"leaf may not sign", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			return pkiPath(t, st.ca.cert, st.ca.issueProfile(t, csr.PublicKey, x509.KeyUsageKeyEncipherment,
				x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth))
		}, "key usage does not allow digital signatures"},
		{"expired leaf", func(st *fakeSteward, csr *x509.CertificateRequest) []byte {
			leaf := st.ca.issueTemplate(t, csr.PublicKey, &x509.Certificate{
				NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
			return pkiPath(t, st.ca.cert, leaf)
		}, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ts := startFakeSteward(t, false)
			st.tamper = func(w http.ResponseWriter, csr *x509.CertificateRequest, _ int32) bool {
				w.Write(tc.reply(st, csr))
				return true
			}
			_, err := Establish(t.Context(), Request{Steward: ts.URL, AllowInsecureSteward: true, Workload: testWorkload()})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestStewardWithoutWorkloadCopyIsAccepted(t *testing.T) {
	// An upstream Steward does not copy the workload extension; the Keep
	// still works (with a warning).
	st, ts := startFakeSteward(t, false)
	st.tamper = func(w http.ResponseWriter, csr *x509.CertificateRequest, _ int32) bool {
		w.Write(pkiPath(t, st.ca.cert, st.ca.issue(t, csr.PublicKey, nil, nil)))
		return true
	}
	var logs bytes.Buffer
	_, err := Establish(t.Context(), Request{Steward: ts.URL, AllowInsecureSteward: true, Workload: testWorkload(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "did not copy the workload identity") {
		t.Fatalf("no warning logged: %s", logs.String())
	}
}

func TestStewardUnauthorized(t *testing.T) {
	st, ts := startFakeSteward(t, false)
	st.tamper = func(w http.ResponseWriter, _ *x509.CertificateRequest, _ int32) bool {
		w.WriteHeader(http.StatusUnauthorized)
		return true
	}
	_, err := Establish(t.Context(), Request{Steward: ts.URL, AllowInsecureSteward: true, Workload: testWorkload()})
	if err == nil || !strings.Contains(err.Error(), "no evidence") {
		t.Fatalf("error %v", err)
	}
}

func TestSanitizeReason(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"  ok \n":            "ok",
		"a\tb\rc":            "a b c",
		"\xff\xfe":           "?",
		"snp.policy: debug!": "snp.policy: debug!",
	} {
		if got := sanitizeReason([]byte(in)); got != want {
			t.Errorf("sanitizeReason(%q) = %q, want %q", in, got, want)
		}
	}
	long := sanitizeReason(bytes.Repeat([]byte("é"), maxReasonSize))
	if !strings.HasSuffix(long, "…") || len(long) > maxReasonSize+len("…") {
		t.Errorf("long reason: %d bytes", len(long))
	}
}

func TestUpstreamStewardFallback(t *testing.T) {
	st, ts := startFakeSteward(t, false)
	st.upstream = true
	var logs bytes.Buffer
	id, err := Establish(t.Context(), Request{Steward: ts.URL, AllowInsecureSteward: true, Workload: testWorkload(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	csr, err := x509.ParseCertificateRequest(id.CSR())
	if err != nil {
		t.Fatal(err)
	}
	if len(csr.Extensions) != 1 || !csr.Extensions[0].Id.Equal(attest.OIDEvidenceKVM) {
		t.Fatalf("fallback CSR extensions %v, want only the KVM evidence", csr.Extensions)
	}
	if w, _, _ := certext.FromCertificate(id.Chain()[0]); w != nil {
		t.Fatal("workload identity in a certificate from an upstream steward")
	}
	if !strings.Contains(logs.String(), "retrying without the workload identity") {
		t.Fatalf("no warning: %s", logs.String())
	}

	// A refusal with a reason is final: no second request.
	st2, ts2 := startFakeSteward(t, false)
	st2.tamper = func(w http.ResponseWriter, _ *x509.CertificateRequest, _ int32) bool {
		http.Error(w, "evidence.rejected: no", http.StatusBadRequest)
		return true
	}
	if _, err := Establish(t.Context(), Request{Steward: ts2.URL, AllowInsecureSteward: true, Workload: testWorkload()}); err == nil || st2.requests.Load() != 1 {
		t.Fatalf("err %v after %d requests", err, st2.requests.Load())
	}
}

func TestStewardCA(t *testing.T) {
	_, ts := startFakeSteward(t, true)
	ca := pemOf(ts.Certificate())
	if _, err := Establish(t.Context(), Request{Steward: ts.URL, StewardCA: ca, Workload: testWorkload()}); err != nil {
		t.Fatalf("steward under the given CA: %v", err)
	}
	other := pemOf(newTestCA(t, "Other").cert)
	if _, err := Establish(t.Context(), Request{Steward: ts.URL, StewardCA: other, Workload: testWorkload()}); err == nil {
		t.Fatal("steward under another CA accepted")
	}
	if _, err := Establish(t.Context(), Request{Steward: ts.URL, StewardCA: "junk", Workload: testWorkload()}); err == nil {
		t.Fatal("bad steward CA accepted")
	}
	if _, err := Establish(t.Context(), Request{Steward: ts.URL, StewardCA: ca, HTTPClient: ts.Client(), Workload: testWorkload()}); err == nil {
		t.Fatal("steward CA and HTTP client both accepted")
	}
}

// A 101 Switching Protocols reply hands the connection to the caller: the
// transport no longer applies the attempt's deadline to reading it. A
// Steward (or, for http, anyone on the path) that answered 101 and then
// said nothing held the Keep forever, whatever the attempt timeout and the
// caller's context.
func TestStewardSwitchingProtocolsDoesNotHang(t *testing.T) {
	st, ts := startFakeSteward(t, true)
	release := make(chan struct{})
	defer close(release)
	st.tamper = func(w http.ResponseWriter, _ *x509.CertificateRequest, _ int32) bool {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return true
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		<-release // keep the connection open, send nothing more
		return true
	}
	ep, err := parseStewardURL(ts.URL, false)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	// The Keep's own transport (no HTTPClient), as in production.
	c := newStewardClient(ep, nil, nil, roots, slog.New(slog.NewTextHandler(io.Discard, nil)))
	c.retry = retryPolicy{maxAttempts: 1, attemptTimeout: 100 * time.Millisecond, baseDelay: time.Millisecond, maxDelay: time.Millisecond}
	csr, _ := testCSR(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.issue(t.Context(), csr)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "101") {
			t.Fatalf("error %v, want a refusal naming 101", err)
		}
	case <-time.After(time.Minute): // a hang, not a slow reply: the attempt timeout is 100 ms
		t.Fatal("the steward client hangs on a 101 reply")
	}
}
