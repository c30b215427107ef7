package steward_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/steward"
)

// TestBodyAtLimit: a body of exactly MaxBodyBytes is served, and one a
// byte longer is 413, also when MaxBodyMemory is no larger than
// MaxBodyBytes (it is raised to fit one body). The body is read into a
// buffer one byte longer than the body, for the read that finds its end,
// and the memory pool held only MaxBodyBytes: such a body, alone on the
// server, waited BusyWait and was refused 503 request.busy (with
// --max-body at 64 MiB or more, the CLI's MaxBodyMemory).
func TestBodyAtLimit(t *testing.T) {
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	n := int64(len(der))
	_, hs := newServer(t, steward.Config{CA: debugCA(t), MaxBodyBytes: n, MaxBodyMemory: n, BusyWait: 20 * time.Millisecond})
	// struct{ io.Reader } hides the length: the client sends it chunked.
	for name, body := range map[string]func([]byte) io.Reader{
		"Content-Length": func(b []byte) io.Reader { return bytes.NewReader(b) },
		"chunked":        func(b []byte) io.Reader { return struct{ io.Reader }{bytes.NewReader(b)} },
	} {
		if r := post(t, hs.URL, steward.ContentTypePKCS10, body(der)); r.status != http.StatusOK {
			t.Fatalf("%s: a body of exactly MaxBodyBytes: %d %s", name, r.status, r.body)
		}
		if name == "chunked" {
			wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, body(append(bytes.Clone(der), 0))),
				http.StatusRequestEntityTooLarge, steward.CodeTooLarge)
		}
	}
}

// TestWorkloadPackageBounded: the workload identity is copied into the
// certificate and its audit log line, so its package digest is bounded
// like the subject. Before, a request whose package digest was half a
// megabyte got a certificate (and a log line) of that size.
func TestWorkloadPackageBounded(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	wasm := sha256.Sum256([]byte("wasm module"))
	for _, tc := range []struct {
		n      int
		status int
	}{
		{len("sha-256=:") + 44 + 1, http.StatusOK},
		{steward.MaxWorkloadPackage, http.StatusOK},
		{steward.MaxWorkloadPackage + 1, http.StatusBadRequest},
		{512 << 10, http.StatusBadRequest},
	} {
		w := &certext.Workload{WasmSHA256: wasm[:], Package: strings.Repeat("a", tc.n)}
		e, err := w.Extension()
		if err != nil {
			t.Fatal(err)
		}
		der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt(), e}})
		r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
		if tc.status == http.StatusOK {
			if r.status != http.StatusOK {
				t.Fatalf("package of %d bytes: %d %s", tc.n, r.status, r.body)
			}
			continue
		}
		wantRejection(t, r, tc.status, steward.CodeWorkload)
		if !strings.Contains(string(r.body), "limit") {
			t.Errorf("package of %d bytes: reason %q does not name the limit", tc.n, r.body)
		}
	}
}
