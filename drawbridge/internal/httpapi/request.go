package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/bulkconn"
)

// Request parsing and response helpers.

type userRecord struct {
	Subject string `json:"subject"`
}

type repoConfig struct {
	Public *bool `json:"public"`
}

// record is a JSON document a client PUTs: a user record or a repository
// config.
type record interface {
	// fieldNames are its JSON field names, which must match exactly.
	fieldNames() []string
}

func (*userRecord) fieldNames() []string { return []string{"subject"} }
func (*repoConfig) fieldNames() []string { return []string{"public"} }

// claimedMeta reads Content-Length, Content-Type and Content-Digest.
func claimedMeta(r *http.Request, requireDigest bool) (types.Meta, error) {
	var m types.Meta
	if r.ContentLength < 0 || r.Header.Get("Content-Length") == "" {
		return m, errorf(http.StatusBadRequest, "Header of type `content-length` was missing")
	}
	m.Length = r.ContentLength
	m.Type = r.Header.Get("Content-Type")
	if m.Type == "" {
		return m, errorf(http.StatusBadRequest, "Header of type `content-type` was missing")
	}
	if err := types.ValidateMediaType(m.Type); err != nil {
		return m, errorf(http.StatusBadRequest, "Invalid content type: %v", err)
	}
	d, err := types.ParseContentDigest(r.Header.Values("Content-Digest")...)
	if err != nil {
		return m, errorf(http.StatusBadRequest, "invalid HTTP header (content-digest): %v", err)
	}
	if requireDigest && len(d) == 0 {
		return m, errorf(http.StatusBadRequest, "At least one content digest value must be specified")
	}
	m.Digest = d
	return m, nil
}

// readBody reads a small body of exactly m.Length bytes.
func readBody(r *http.Request, m types.Meta, limit int64) ([]byte, error) {
	if m.Length > limit {
		return nil, errorf(http.StatusRequestEntityTooLarge, "Body larger than %d bytes", limit)
	}
	b := make([]byte, m.Length)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		return nil, errorf(http.StatusBadRequest, "Content length mismatch, expected: %d: %v", m.Length, err)
	}
	return b, nil
}

// decodeStrict decodes a JSON record with upstream's rules: 415 for a
// non-JSON type, 400 for a syntax error, 422 for a data error (unknown
// fields, wrong types). Field names must match exactly, as serde's do:
// encoding/json would also take "SUBJECT" for "subject", the last of two
// spellings winning, while the record is stored with its keys sorted (see
// canonicalRecord), so the record checked here and the one read back from
// the store would differ.
func decodeStrict(m types.Meta, body []byte, v record) error {
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(m.Type, ";", 2)[0]))
	if mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return errorf(http.StatusUnsupportedMediaType, "Expected request with `Content-Type: application/json`")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return errorf(http.StatusBadRequest, "Failed to parse the request body as JSON: %v", err)
		}
		return errorf(http.StatusUnprocessableEntity, "Failed to deserialize the JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF { // not dec.More: false before a stray '}' or ']'
		return errorf(http.StatusBadRequest, "Failed to parse the request body as JSON: trailing data")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return errorf(http.StatusUnprocessableEntity, "Failed to deserialize the JSON body: %v", err)
	}
	for k := range fields {
		if !slices.Contains(v.fieldNames(), k) {
			return errorf(http.StatusUnprocessableEntity, "Failed to deserialize the JSON body: unknown field %q (field names are case-sensitive; allowed: %s)",
				k, strings.Join(v.fieldNames(), ", "))
		}
	}
	return nil
}

// readRecord reads and strictly decodes a user record or repository
// config body into v.
func readRecord(r *http.Request, v record) (types.Meta, []byte, error) {
	m, err := claimedMeta(r, false)
	if err != nil {
		return m, nil, err
	}
	body, err := readBody(r, m, store.MaxRecordSize)
	if err != nil {
		return m, nil, err
	}
	if err := decodeStrict(m, body, v); err != nil {
		return m, nil, err
	}
	return canonicalRecord(m, body)
}

// canonicalRecord does what upstream does with a record: it re-serialises
// the JSON (compact, as serde_json writes it) and checks the request's
// Content-Digest, then its Content-Length, against those bytes, which are
// what is stored. So a record sent with whitespace is refused with 400
// "Content digest mismatch" (or, without a digest, "Content length
// mismatch"), as upstream refuses it.
func canonicalRecord(m types.Meta, body []byte) (types.Meta, []byte, error) {
	c, err := types.Canonical(body)
	if err != nil {
		return m, nil, errorf(http.StatusBadRequest, "Failed to parse the request body as JSON: %v", err)
	}
	if len(m.Digest) > 0 {
		sum, _ := types.Compute(c)
		for a, v := range m.Digest {
			if !bytes.Equal(sum[a], v) {
				return m, nil, errorf(http.StatusBadRequest, "Content digest mismatch")
			}
		}
	}
	if int64(len(c)) != m.Length {
		return m, nil, errorf(http.StatusBadRequest, "Content length mismatch, expected: %d, got %d", m.Length, len(c))
	}
	return m, c, nil
}

// storeErr maps store errors on writes.
func storeErr(err error) error {
	var inv *store.InvalidError
	var rej *store.RejectedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return errorf(http.StatusBadRequest, "%s", inv.Msg)
	case errors.As(err, &rej):
		// A stored node (or tag) that this registry did not write fails
		// its hash; the message says which and what to do.
		return errorf(http.StatusConflict, "%s", rej.Error())
	case errors.Is(err, store.ErrExists):
		return errorf(http.StatusConflict, "Already exists")
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "%s", notFoundText(err))
	case errors.Is(err, errBody):
		return errorf(http.StatusBadRequest, "Request body incomplete: %v", err)
	case errors.Is(err, store.ErrBusy):
		// The server's memory for directory bodies is taken: nothing was
		// read or stored, and the same request can be sent again.
		he := errorf(http.StatusServiceUnavailable, "%v", err)
		he.retryAfter = busyRetryAfter
		return he
	}
	return err
}

// busyRetryAfter is the Retry-After, in seconds, of a 503 for a busy
// server.
const busyRetryAfter = 10

func notFoundText(err error) string {
	var nf *store.NotFoundError
	if errors.As(err, &nf) {
		return nf.Msg
	}
	return "Not found"
}

// created answers a successful PUT: 201, or 200 if it was already there.
func created(w http.ResponseWriter, existed bool) {
	w.Header().Set("Content-Length", "0")
	if existed {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusCreated)
	}
}

// sendMeta writes the three entity headers. Content-Length is always set
// explicitly, so responses are never chunked.
func sendMeta(w http.ResponseWriter, m types.Meta) {
	w.Header().Set("Content-Digest", m.Digest.String())
	w.Header().Set("Content-Type", m.Type)
	w.Header().Set("Content-Length", strconv.FormatInt(m.Length, 10))
}

// sendSmall answers GET/HEAD of a small stored entity.
func sendSmall(w http.ResponseWriter, r *http.Request, m types.Meta, body []byte) error {
	sendMeta(w, m)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		w.Write(body)
	}
	return nil
}

// sendObject streams an object for GET, or just its headers for HEAD.
func sendObject(w http.ResponseWriter, r *http.Request, o store.Object) error {
	defer o.Content.Close()
	sendMeta(w, o.Meta)
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		// Headers are out: an error now can only cut the connection, which
		// the client detects through Content-Length and Content-Digest.
		// A large body leaves in batches of TLS records rather than one
		// write(2) per 16 KiB record.
		bc := bulkconn.FromContext(r.Context())
		if o.Meta.Length < bulkMin || r.ProtoMajor != 1 {
			bc = nil
		}
		if bc != nil {
			bc.Hold()
		}
		buf := sendBufs.Get().(*[]byte)
		_, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{o.Content}, *buf)
		sendBufs.Put(buf)
		if bc != nil {
			// The rest of the batch leaves under the write window.
			finish := func() error {
				var ferr error
				if err == nil {
					ferr = http.NewResponseController(w).Flush()
				}
				if rerr := bc.Release(); ferr == nil {
					ferr = rerr
				}
				return ferr
			}
			var ferr error
			if sw, ok := w.(*statusWriter); ok {
				ferr = sw.paced(finish)
			} else {
				ferr = finish()
			}
			if err == nil {
				err = ferr
			}
		}
		if err != nil {
			return fmt.Errorf("sending %d bytes: %w", o.Meta.Length, err)
		}
	}
	return nil
}

// bulkMin is the body size from which sendObject batches TLS records.
const bulkMin = 256 << 10

// sendBufs are download copy buffers.
var sendBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// getErr maps store errors on reads: a missing entity is upstream's 404.
func getErr(r *http.Request, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		if r.Method == http.MethodHead {
			return errorf(http.StatusNotFound, "Not found")
		}
		return errorf(http.StatusNotFound, "Repository does not exist")
	}
	return err
}

// errBody marks errors reading the request body (the client's fault or
// its connection's), as opposed to storage errors.
var errBody = errors.New("reading request body")

type bodyReader struct{ r io.Reader }

func (b bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %w", errBody, err)
	}
	return n, err
}
