package steward

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/steward/csr"
)

// Media types of POST / (compared exactly, as upstream does: parameters
// such as "; charset=" are not accepted).
const (
	// ContentTypePKCS10 is one DER CertificationRequest; the reply is a DER
	// SEQUENCE OF Certificate, root first: [CA chain…, leaf].
	ContentTypePKCS10 = "application/pkcs10"
	// ContentTypeBundle is a DER SEQUENCE OF CertificationRequest; the reply
	// is DER Output ::= SEQUENCE { chain SEQUENCE OF Certificate,
	// issued SEQUENCE OF Certificate }.
	ContentTypeBundle = "application/vnd.steward.pkcs10-bundle.v1"
)

// RequestIDHeader carries the request id that the Steward's logs use.
const RequestIDHeader = "X-Request-Id"

// StatusCode maps a rejection code to its HTTP status.
func StatusCode(code string) int {
	switch code {
	case CodeEvidenceMissing:
		return http.StatusUnauthorized
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeMethod:
		return http.StatusMethodNotAllowed
	case CodeNotFound:
		return http.StatusNotFound
	case CodeBusy, CodeTimeout:
		return http.StatusServiceUnavailable
	case CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// ServeHTTP routes:
//
//	GET, HEAD /         health: 200, empty body (upstream's)
//	GET, HEAD /health   the same, under the name probes and Drawbridge use (ours)
//	POST /              certificate requests (see ContentTypePKCS10, ContentTypeBundle)
//	GET, HEAD /metrics  Prometheus exposition (text format unless the client asks for another)
//
// Every response carries an X-Request-Id; every rejection has a text/plain
// body "code: message".
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := uuid.NewString()
	w.Header().Set(RequestIDHeader, id)
	rw := &statusWriter{ResponseWriter: w}
	log := s.log.With("request_id", id)
	start := time.Now()

	switch r.URL.Path {
	case "/":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			rw.WriteHeader(http.StatusOK)
		case http.MethodPost:
			s.attest(rw, r, log)
			s.metrics.observe(time.Since(start))
		default:
			rw.Header().Set("Allow", "GET, HEAD, POST")
			s.reject(rw, log, attest.Reject(CodeMethod, "method %s is not allowed on /", r.Method))
		}
	case "/health":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			rw.WriteHeader(http.StatusOK)
		default:
			rw.Header().Set("Allow", "GET, HEAD")
			s.reject(rw, log, attest.Reject(CodeMethod, "method %s is not allowed on /health", r.Method))
		}
	case "/metrics":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			s.metrics.handler.ServeHTTP(rw, r)
		default:
			rw.Header().Set("Allow", "GET, HEAD")
			s.reject(rw, log, attest.Reject(CodeMethod, "method %s is not allowed on /metrics", r.Method))
		}
	default:
		s.reject(rw, log, attest.Reject(CodeNotFound, "no such path"))
	}
	s.metrics.request(rw.status())
}

// attest handles POST /.
func (s *Server) attest(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	ct := r.Header.Values("Content-Type")
	if len(ct) != 1 || (ct[0] != ContentTypePKCS10 && ct[0] != ContentTypeBundle) {
		s.reject(w, log, attest.Reject(CodeContentType, "Content-Type must be exactly %q or %q, without parameters",
			ContentTypePKCS10, ContentTypeBundle))
		return
	}
	if r.ContentLength > s.maxBody {
		s.reject(w, log, attest.Reject(CodeTooLarge, "the body is %d bytes; the limit is %d", r.ContentLength, s.maxBody))
		return
	}
	// The body, with room for it reserved as it arrives (this bounds the
	// memory held by slow senders to what they sent), then a processing
	// slot.
	body, reserved, err := s.readBody(w, r)
	defer s.bodies.Release(reserved)
	if err != nil {
		s.reject(w, log, err)
		return
	}

	out, certs, err := s.process(r.Context(), ct[0], body)
	if err != nil {
		s.reject(w, log, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(out); err != nil {
		log.Info("writing reply failed", "err", err)
		return
	}
	kinds := make([]string, len(certs))
	for i, c := range certs {
		kinds[i] = string(c.claims.Kind)
		// The audit trail: what was certified, under which serial.
		attrs := []any{"serial", fmt.Sprintf("%x", c.serial), "tee", c.claims.Kind,
			"hardware", c.claims.HardwareBacked, "tee_debug", c.claims.Debug, "steward_debug", s.debug,
			"measurement", hex.EncodeToString(c.claims.Measurement), "tcb_status", c.claims.TCBStatus}
		if c.workload != nil {
			attrs = append(attrs, "wasm_sha256", hex.EncodeToString(c.workload.WasmSHA256), "package", c.workload.Package)
		}
		log.Info("issued certificate", attrs...)
	}
	s.metrics.issue(kinds)
}

// process answers a certificate request body of media type ct: the DER
// reply and the certificates in it. It holds a processing slot
// (Config.MaxConcurrent) while it works, and only then: the reply is
// written after the slot is released, so a client that does not read it
// holds no slot (only its connection, until WriteTimeout).
func (s *Server) process(ctx context.Context, ct string, body []byte) ([]byte, []*issued, error) {
	if !s.acquire(ctx) {
		return nil, nil, attest.Reject(CodeBusy, "too many certificate requests in progress; retry shortly")
	}
	defer func() { <-s.slots }()
	ctx, cancel := s.deadline(ctx)
	defer cancel()

	if ct == ContentTypePKCS10 {
		c, err := s.issue(ctx, body)
		if err != nil {
			return nil, nil, err
		}
		out, err := s.marshalChain(c.der)
		if err != nil {
			return nil, nil, attest.RejectErr(CodeInternal, err, "could not encode the reply")
		}
		return out, []*issued{c}, nil
	}
	reqs, err := csr.SplitBundle(body)
	if err != nil {
		return nil, nil, err
	}
	leaves := make([][]byte, 0, len(reqs))
	certs := make([]*issued, 0, len(reqs))
	for i, der := range reqs {
		c, err := s.issue(ctx, der)
		if err != nil {
			// All or nothing: the first failure fails the bundle.
			return nil, nil, bundleRejection(i, err)
		}
		leaves = append(leaves, c.der)
		certs = append(certs, c)
	}
	out, err := s.marshalOutput(leaves)
	if err != nil {
		return nil, nil, attest.RejectErr(CodeInternal, err, "could not encode the reply")
	}
	return out, certs, nil
}

// admit reserves n more bytes of body memory (Config.MaxBodyMemory),
// waiting at most s.busyWait.
func (s *Server) admit(ctx context.Context, n int64) bool {
	if s.bodies.TryAcquire(n) {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.busyWait)
	defer cancel()
	return s.bodies.Acquire(ctx, n) == nil
}

// bodyChunk is the body memory (Config.MaxBodyMemory) a request reserves
// before its first byte arrives. The rest is reserved as the body arrives,
// doubling the buffer each time, so a request holds at most about twice
// what its client has sent, whatever length it declares.
const bodyChunk = 4 << 10

// readBody reads the body of r, at most s.maxBody bytes, reserving its
// buffer against Config.MaxBodyMemory as it grows. It returns the bytes
// reserved, which the caller releases, also when it returns an error
// (CodeBusy when no room is freed within s.busyWait).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, reserved int64, err error) {
	// MaxBytesReader tells the server to close the connection on overflow
	// when it sees the server's own ResponseWriter.
	if sw, ok := w.(*statusWriter); ok {
		w = sw.ResponseWriter
	}
	in := http.MaxBytesReader(w, r.Body, s.maxBody)
	limit := s.maxBody
	if r.ContentLength >= 0 {
		limit = r.ContentLength // net/http ends the body there; attest checked it against s.maxBody
	}
	limit++ // room for the read that finds the end, or the excess over s.maxBody
	for {
		if len(body) == cap(body) {
			grow := min(max(int64(cap(body)), bodyChunk), limit-int64(cap(body)))
			if grow <= 0 {
				return nil, reserved, attest.Reject(CodeTooLarge, "the body exceeds the limit of %d bytes", s.maxBody)
			}
			if !s.admit(r.Context(), grow) {
				return nil, reserved, attest.Reject(CodeBusy, "too many certificate requests are being received; retry shortly")
			}
			reserved += grow
			next := make([]byte, len(body), int64(cap(body))+grow)
			copy(next, body)
			body = next
		}
		n, rerr := in.Read(body[len(body):cap(body)])
		body = body[:len(body)+n]
		var tooLarge *http.MaxBytesError
		switch {
		case rerr == io.EOF:
			return body, reserved, nil
		case errors.As(rerr, &tooLarge):
			return nil, reserved, attest.Reject(CodeTooLarge, "the body exceeds the limit of %d bytes", s.maxBody)
		case rerr != nil:
			return nil, reserved, attest.RejectErr(CodeBody, rerr, "could not read the request body")
		}
	}
}

// acquire takes a processing slot, waiting at most s.busyWait.
func (s *Server) acquire(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(s.busyWait)
	defer t.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func bundleRejection(i int, err error) error {
	if r, ok := attest.AsRejection(err); ok {
		return &attest.Rejection{Code: r.Code, Msg: fmt.Sprintf("bundle request %d: %s", i, r.Msg), Err: r.Err}
	}
	return fmt.Errorf("bundle request %d: %w", i, err)
}

// marshalChain encodes SEQUENCE OF Certificate: the CA chain root first,
// then the leaf.
func (s *Server) marshalChain(leaf []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, c := range s.chainDER {
			b.AddBytes(c)
		}
		b.AddBytes(leaf)
	})
	return b.Bytes()
}

// marshalOutput encodes Output ::= SEQUENCE { chain SEQUENCE OF
// Certificate, issued SEQUENCE OF Certificate }. Upstream puts only its own
// CA certificate in chain; we put the whole chain, root first.
func (s *Server) marshalOutput(leaves [][]byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, c := range s.chainDER {
				b.AddBytes(c)
			}
		})
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, l := range leaves {
				b.AddBytes(l)
			}
		})
	})
	return b.Bytes()
}

// reject answers with the rejection's status (and Retry-After for
// CodeBusy) and a one-line text/plain "code: message" body, counts it and
// logs it with its cause.
func (s *Server) reject(w http.ResponseWriter, log *slog.Logger, err error) {
	r, ok := attest.AsRejection(err)
	if !ok {
		r = attest.RejectErr(CodeInternal, err, "internal error")
	}
	status := StatusCode(r.Code)
	s.metrics.reject(r.Code)
	reason := clip(r.Msg)
	attrs := []any{"status", status, "code", r.Code, "reason", reason}
	if r.Err != nil {
		attrs = append(attrs, "err", clip(r.Err.Error()))
	}
	if status >= 500 {
		log.Error("request failed", attrs...)
	} else {
		log.Info("request rejected", attrs...)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Code == CodeBusy {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, r.Code+": "+oneLine(reason)+"\n")
}

// maxReason bounds a rejection's reason, and its cause, in the reply and
// the log. Reasons may quote the request: an extension OID of a million
// arcs, in a 1 MB request, made a 4 MB reply and log line.
const maxReason = 1024

// clip cuts s to maxReason bytes, at a character boundary, and says how
// much it cut.
func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", s[:cut], len(s)-cut)
}

// oneLine keeps a message printable and on one line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case !unicode.IsPrint(r):
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// statusWriter remembers the status code for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
