package steward_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/attestation/kvm"
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
// declaring a body of n bytes, and sent of them: a client that stalls.
func stalledPost(t *testing.T, addr string, n, sent int) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: steward\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s",
		steward.ContentTypePKCS10, n, strings.Repeat("x", sent))
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

// TestBodyMemoryBounded: bodies are admitted against MaxBodyMemory as
// they are read. Two clients that send all but the last byte of 64 KiB
// bodies and stall hold the whole 128 KiB, so a third request is answered
// 503 request.busy (before any bound, every stalled body was buffered: 300
// stalled 1 MiB bodies held 660 MiB); once they leave, requests are served
// again.
func TestBodyMemoryBounded(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t), MaxBodyBytes: 64 << 10, MaxBodyMemory: 128 << 10, BusyWait: 20 * time.Millisecond})
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	addr := strings.TrimPrefix(hs.URL, "http://")
	a, b := stalledPost(t, addr, 64<<10, 64<<10-1), stalledPost(t, addr, 64<<10, 64<<10-1)
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

// stalledChunkedPost is stalledPost with a chunked body: no declared
// length, one 100-byte chunk, then nothing.
func stalledChunkedPost(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: steward\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n%s\r\n",
		steward.ContentTypePKCS10, strings.Repeat("x", 100))
	return c
}

// TestStalledBodiesHoldLittle: a client that declares a large body (or
// sends a chunked one) and then stalls holds memory only for what it sent.
// Before, each reserved --max-body (1 MiB) of MaxBodyMemory (64 MiB) up
// front, so 64 idle connections, a few hundred bytes each, got every
// other certificate request 503 request.busy for as long as the server's
// read timeout (30 s) let them stall.
func TestStalledBodiesHoldLittle(t *testing.T) {
	s, err := steward.New(steward.Config{CA: debugCA(t), BusyWait: 50 * time.Millisecond,
		Verifiers: []attest.Verifier{kvm.New(kvm.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveLoopback(t, s) // stopped after the stalled clients close (cleanups run last first)
	for i := range steward.DefaultMaxBodyMemory / steward.DefaultMaxBodyBytes {
		if i%2 == 0 {
			stalledPost(t, addr, steward.DefaultMaxBodyBytes, 100)
		} else {
			stalledChunkedPost(t, addr)
		}
	}
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	// The stalled requests reach the Steward in their own time; a client
	// cannot observe when, so ask repeatedly: every answer must be 200.
	for range 40 {
		r := post(t, "http://"+addr+"/", steward.ContentTypePKCS10, bytes.NewReader(der))
		if r.status != http.StatusOK {
			t.Fatalf("with stalled clients: %d %s", r.status, r.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hugeOIDRequest is a request signed with a fresh key, within the default
// body limit, that asks for an extension whose OID has a million arcs
// (one DER byte each, "127." when printed), then for KVM evidence.
func hugeOIDRequest(t *testing.T) []byte {
	t.Helper()
	oid := make(asn1.ObjectIdentifier, 1_000_000)
	oid[0], oid[1] = 1, 2
	for i := 2; i < len(oid); i++ {
		oid[i] = 127
	}
	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{{Id: oid, Value: []byte{}}, kvmExt()}})
	if len(der) > steward.DefaultMaxBodyBytes {
		t.Fatalf("request of %d bytes is over the body limit", len(der))
	}
	return der
}

// TestRejectionReasonBounded: a reason that quotes the request is cut, in
// the reply and in the log. Before, the OID of hugeOIDRequest (a 1 MB
// request) came back as a 4 MB reply and was logged as a 4 MB line.
func TestRejectionReasonBounded(t *testing.T) {
	var logs bytes.Buffer
	_, hs := newServer(t, steward.Config{CA: debugCA(t), Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))})
	r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(hugeOIDRequest(t)))
	wantRejection(t, r, http.StatusBadRequest, steward.CodeExtensionUnknown)
	if len(r.body) > 2048 || !strings.Contains(string(r.body), "more bytes)") {
		t.Fatalf("reply of %d bytes: %.200q…", len(r.body), r.body)
	}
	hs.Close() // the handler has logged
	for line := range strings.Lines(logs.String()) {
		if len(line) > 4096 {
			t.Fatalf("log line of %d bytes: %.200q…", len(line), line)
		}
	}
}

// TestUnreadReplyHoldsNoSlot: a client that does not read its reply holds
// no processing slot. Its request (in debug mode, where KVM evidence is
// enough) has an 8 MB subject, which the leaf copies; with the client's
// receive buffer small, writing the reply blocks until the client reads
// or WriteTimeout (60 s) passes. Before, the slot was released only after
// the reply was written, so a few such clients (4×GOMAXPROCS) got every
// other certificate request 503 request.busy for a minute. (A rejection
// could do the same while its reason was not cut: see
// TestRejectionReasonBounded.)
func TestUnreadReplyHoldsNoSlot(t *testing.T) {
	// A request waits up to BusyWait for the slot: long enough for the
	// work on the large request (a hang guard), short against the 60 s
	// that its unread reply held the slot.
	s, err := steward.New(steward.Config{CA: debugCA(t), MaxConcurrent: 1, BusyWait: 10 * time.Second,
		MaxBodyBytes: 16 << 20, Verifiers: []attest.Verifier{kvm.New(kvm.Options{})}})
	if err != nil {
		t.Fatal(err)
	}
	addr := serveLoopback(t, s) // stopped after the client below closes

	big := goCSR(t, p256(t), &x509.CertificateRequest{Subject: pkix.Name{CommonName: strings.Repeat("a", 8<<20)},
		ExtraExtensions: []pkix.Extension{kvmExt()}})
	// A small receive buffer, never read from.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: steward\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", steward.ContentTypePKCS10, len(big))
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}

	der := goCSR(t, p256(t), &x509.CertificateRequest{ExtraExtensions: []pkix.Extension{kvmExt()}})
	// When the Steward gets to the first request is not observable; ask
	// repeatedly: every answer must be 200.
	for range 50 {
		r := post(t, "http://"+addr+"/", steward.ContentTypePKCS10, bytes.NewReader(der))
		if r.status != http.StatusOK {
			t.Fatalf("with a client not reading its reply: %d %s", r.status, r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSubjectBounded: the subject, which the steward copies into the
// certificate unchecked (as upstream), is bounded; before, a CSR's subject
// of any size came back signed. A subject of ordinary size still does.
func TestSubjectBounded(t *testing.T) {
	_, hs := newServer(t, steward.Config{CA: debugCA(t)})
	csrWith := func(cn string) []byte {
		return goCSR(t, p256(t), &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{strings.Repeat("o", 900)}},
			ExtraExtensions: []pkix.Extension{kvmExt()}})
	}
	if r := post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(csrWith("keep.example"))); r.status != http.StatusOK {
		t.Fatalf("a subject of %d bytes: status %d: %s", 900, r.status, r.body)
	}
	big := csrWith(strings.Repeat("x", 200))
	wantRejection(t, post(t, hs.URL, steward.ContentTypePKCS10, bytes.NewReader(big)), http.StatusBadRequest, steward.CodeSubject)
}

// serveLoopback runs s.Serve on a listener on 127.0.0.1 and returns its
// address; a cleanup stops it and waits for Serve (cleanups run last
// first, so after those the test registers later).
func serveLoopback(t *testing.T, s *steward.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}
