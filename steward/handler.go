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
	// Room for the body first (cheap, and bounds the memory held by slow
	// senders), then the body, then a processing slot.
	reserve := r.ContentLength
	if reserve < 0 {
		reserve = s.maxBody
	}
	if !s.admit(r.Context(), reserve) {
		w.Header().Set("Retry-After", "1")
		s.reject(w, log, attest.Reject(CodeBusy, "too many certificate requests are being received; retry shortly"))
		return
	}
	defer s.bodies.Release(reserve)
	body, err := s.readBody(w, r)
	if err != nil {
		s.reject(w, log, err)
		return
	}

	if !s.acquire(r.Context()) {
		w.Header().Set("Retry-After", "1")
		s.reject(w, log, attest.Reject(CodeBusy, "too many certificate requests in progress; retry shortly"))
		return
	}
	defer func() { <-s.slots }()
	ctx, cancel := s.deadline(r.Context())
	defer cancel()

	var out []byte
	var certs []*issued
	switch ct[0] {
	case ContentTypePKCS10:
		c, err := s.issue(ctx, body)
		if err != nil {
			s.reject(w, log, err)
			return
		}
		out, err = s.marshalChain(c.der)
		if err != nil {
			s.reject(w, log, attest.RejectErr(CodeInternal, err, "could not encode the reply"))
			return
		}
		certs = []*issued{c}
	case ContentTypeBundle:
		reqs, err := csr.SplitBundle(body)
		if err != nil {
			s.reject(w, log, err)
			return
		}
		leaves := make([][]byte, 0, len(reqs))
		for i, der := range reqs {
			c, err := s.issue(ctx, der)
			if err != nil {
				// All or nothing: the first failure fails the bundle.
				s.reject(w, log, bundleRejection(i, err))
				return
			}
			leaves = append(leaves, c.der)
			certs = append(certs, c)
		}
		out, err = s.marshalOutput(leaves)
		if err != nil {
			s.reject(w, log, attest.RejectErr(CodeInternal, err, "could not encode the reply"))
			return
		}
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

// admit reserves n bytes of body memory (Config.MaxBodyMemory), waiting at
// most s.busyWait.
func (s *Server) admit(ctx context.Context, n int64) bool {
	if s.bodies.TryAcquire(n) {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.busyWait)
	defer cancel()
	return s.bodies.Acquire(ctx, n) == nil
}

// readBody reads the body of r, at most s.maxBody bytes, into a buffer of
// its declared length when it declares one.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	// MaxBytesReader tells the server to close the connection on overflow
	// when it sees the server's own ResponseWriter.
	if sw, ok := w.(*statusWriter); ok {
		w = sw.ResponseWriter
	}
	in := http.MaxBytesReader(w, r.Body, s.maxBody)
	var body []byte
	var err error
	if r.ContentLength >= 0 {
		// net/http ends the body at its Content-Length.
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(in, body)
	} else {
		body, err = io.ReadAll(in)
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, attest.Reject(CodeTooLarge, "the body exceeds the limit of %d bytes", s.maxBody)
	case err != nil:
		return nil, attest.RejectErr(CodeBody, err, "could not read the request body")
	}
	return body, nil
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

// reject answers with the rejection's status and a one-line text/plain
// "code: message" body, counts it and logs it with its cause.
func (s *Server) reject(w http.ResponseWriter, log *slog.Logger, err error) {
	r, ok := attest.AsRejection(err)
	if !ok {
		r = attest.RejectErr(CodeInternal, err, "internal error")
	}
	status := StatusCode(r.Code)
	s.metrics.reject(r.Code)
	attrs := []any{"status", status, "code", r.Code, "reason", r.Msg}
	if r.Err != nil {
		attrs = append(attrs, "err", r.Err)
	}
	if status >= 500 {
		log.Error("request failed", attrs...)
	} else {
		log.Info("request rejected", attrs...)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, r.Code+": "+oneLine(r.Msg)+"\n")
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
