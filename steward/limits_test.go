package steward_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/csr"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// TestOversizedRSAKey: a request whose RSA modulus is far above 4096 bits
// (2,000,000 bits: a 500 KB body that burned 70 s of CPU when its
// signature was checked) is refused with 400 csr.algorithm and a reason
// naming the limit, alone or in a bundle, by a Steward on 127.0.0.1.
func TestOversizedRSAKey(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	for _, bits := range []int{8192, 2_000_000} {
		der := stewardtest.CraftedRSARequest(bits)
		r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der))
		wantRejection(t, r, http.StatusBadRequest, csr.CodeAlgorithm)
		if !strings.Contains(string(r.body), "at most 4096") {
			t.Fatalf("%d bits: reason %q does not name the limit", bits, r.body)
		}
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(stewardtest.CraftedRSARequest(100_000)) })
	bundle := b.BytesOrPanic()
	wantRejection(t, post(t, hs.URL, steward.ContentTypeBundle, bytes.NewReader(bundle)), http.StatusBadRequest, csr.CodeAlgorithm)
}

// stalledPost opens a connection to addr and sends the headers of a POST
// declaring a body of n bytes, and 100 of them: a client that stalls.
func stalledPost(t *testing.T, addr string, n int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: steward\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		steward.ContentTypePKCS10, n, strings.Repeat("x", 100))
	return c
}

// untilStatus posts der until the Steward answers status (it changes as
// the server's handlers of other connections progress, which a client
// cannot observe otherwise), failing after many tries.
func untilStatus(t *testing.T, url string, der []byte, status int) reply {
	t.Helper()
	var r reply
	for range 1000 {
		if r = post(t, url, steward.ContentTypePKCS10, bytes.NewReader(der)); r.status == status {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("never answered %d; last %d %s", status, r.status, r.body)
	return r
}

// TestBodyMemoryBounded: bodies are admitted against MaxBodyMemory before
// they are read. Two clients that declare 64 KiB bodies and stall hold
// the whole 128 KiB, so a third request is answered 503 request.busy
// (before, every stalled body was buffered: 300 stalled 1 MiB bodies held
// 660 MiB); once they leave, requests are served again.
func TestBodyMemoryBounded(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t), MaxBodyBytes: 64 << 10, MaxBodyMemory: 128 << 10, BusyWait: 20 * time.Millisecond})
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	addr := strings.TrimPrefix(hs.URL, "http://")
	a, b := stalledPost(t, addr, 64<<10), stalledPost(t, addr, 64<<10)
	r := untilStatus(t, hs.URL, der, http.StatusServiceUnavailable)
	wantRejection(t, r, http.StatusServiceUnavailable, steward.CodeBusy)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	a.Close()
	b.Close()
	untilStatus(t, hs.URL, der, http.StatusOK)
}

// lateVerifier waits for its context to end, then accepts: a verifier
// that does not honour the request deadline.
type lateVerifier struct{}

func (lateVerifier) OID() asn1.ObjectIdentifier { return attest.OIDEvidenceSGX }
func (lateVerifier) Verify(ctx context.Context, _ *attest.VerifyRequest) (*attest.Claims, error) {
	<-ctx.Done()
	return &attest.Claims{Kind: attest.KindSGX, HardwareBacked: true}, nil
}

// TestRequestTimeout: work on a request ends at RequestTimeout; what a
// verifier decides after that is not certified, and the answer is 503
// request.timeout, for POST / and for Issue.
func TestRequestTimeout(t *testing.T) {
	s, hs := newServer(t, steward.Config{CA: debugCA(t), Verifiers: []attest.Verifier{lateVerifier{}}, RequestTimeout: 50 * time.Millisecond})
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: attest.OIDEvidenceSGX, Value: []byte{1}}}})
	wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(der)), http.StatusServiceUnavailable, steward.CodeTimeout)
	_, err := s.Issue(context.Background(), der)
	if r, ok := attest.AsRejection(err); !ok || r.Code != steward.CodeTimeout {
		t.Fatalf("Issue: %v", err)
	}
}
