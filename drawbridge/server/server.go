// Package server is the Drawbridge registry's HTTP API (reference
// docs/drawbridge.md and /api/v0.1.0/… of upstream Drawbridge 0.4.x): route
// dispatch, authentication (OIDC bearer tokens, trusted client
// certificates), the authorization matrix, and the mapping of store results
// to status codes.
//
// It trusts its TokenVerifier (signature, issuer, audience, expiry are
// checked there), the TLS stack for client-certificate verification, and
// the store for what it returns. Everything in a request is hostile: names,
// headers and bodies are parsed by drawbridge/types and verified by
// drawbridge/store before anything is stored.
package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/enarx-go/enarx/drawbridge/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// APIVersion is the upstream API level this server implements. Requests
// for /api/vX are served if X is not newer than this, or is newer only in
// a way semver calls compatible (same major ≥ 1; for major 0, same minor).
var APIVersion = semver.MustParse("0.4.3")

// DefaultMaxUploadSize bounds a tree node upload unless configured.
const DefaultMaxUploadSize = 1 << 30

// Config configures a Handler.
type Config struct {
	Registry *store.Registry
	// Tokens verifies bearer tokens. Required.
	Tokens TokenVerifier
	// Logger receives one line per request (nil: slog.Default()).
	Logger *slog.Logger
	// MaxUploadSize bounds tree node uploads (0: DefaultMaxUploadSize).
	MaxUploadSize int64
	// IdleTimeout overrides DefaultIdleTimeout.
	IdleTimeout time.Duration
	// DevSubject, if set, is the token subject for which users and public
	// repositories are created on first publish (dev mode only).
	DevSubject string
}

// Handler serves the API, /health and /metrics.
type Handler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Registry == nil || cfg.Tokens == nil {
		return nil, errors.New("server: a registry and a token verifier are required")
	}
	if cfg.MaxUploadSize <= 0 {
		cfg.MaxUploadSize = DefaultMaxUploadSize
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Handler{cfg: cfg, log: l, metrics: newMetrics()}, nil
}

// httpError is an HTTP status with a plain-text body (upstream's texts,
// which clients and users match on).
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// route names for logs and metrics.
const (
	routeHealth  = "health"
	routeMetrics = "metrics"
	routeUser    = "user"
	routeRepo    = "repo"
	routeTagList = "tags"
	routeTag     = "tag"
	routeTree    = "tree"
	routeOther   = "other"
)

// DefaultIdleTimeout is how long a request body or response may make no
// progress before the connection is cut (a stalled client must not hold an
// upload or a file open forever; there is no overall limit, as large
// packages on slow links take long).
const DefaultIdleTimeout = 2 * time.Minute

// statusWriter records the status and bytes written, and extends the
// write deadline before each write.
type statusWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	idle  time.Duration
	code  int
	bytes int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.rc.SetWriteDeadline(time.Now().Add(w.idle))
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.rc.SetWriteDeadline(time.Now().Add(w.idle)) // unsupported on recorders: ignored
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// request carries the parsed route.
type request struct {
	route string
	user  types.UserName
	repo  types.RepoName
	tag   types.TagName
	path  types.TreePath
	// bodyIn counts request body bytes.
	bodyIn *countingReader
	// subject is the verified token subject, for the log line.
	subject string
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: h.cfg.IdleTimeout}
	req := &request{route: routeOther, bodyIn: &countingReader{r: r.Body, rc: sw.rc, idle: h.cfg.IdleTimeout}}
	r.Body = struct {
		io.Reader
		io.Closer
	}{req.bodyIn, r.Body}
	// A deadline left by an earlier request on this connection must not
	// cut this one's response after a long upload.
	sw.rc.SetWriteDeadline(time.Time{})
	h.metrics.inFlight.Add(1)
	err := h.serve(sw, r, req)
	h.metrics.inFlight.Add(-1)
	if err != nil && sw.code != 0 {
		// The status is out; all that is left is to log.
		h.log.Warn("request failed after the response started", "method", r.Method, "route", req.route, "err", err)
	} else if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			h.log.Error("request failed", "method", r.Method, "route", req.route, "err", err)
			he = errorf(http.StatusInternalServerError, "Storage backend failure")
		}
		if he.code == http.StatusUnauthorized {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="drawbridge"`)
		}
		sw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		sw.Header().Set("Content-Length", strconv.Itoa(len(he.msg)))
		sw.WriteHeader(he.code)
		if r.Method != http.MethodHead {
			io.WriteString(sw, he.msg)
		}
	}
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	sw.rc.SetWriteDeadline(time.Now().Add(sw.idle)) // the final flush
	h.metrics.observe(req.route, r.Method, sw.code, req.bodyIn.n, sw.bytes)
	// Never log headers: Authorization carries a bearer token.
	h.log.Info("request", "method", r.Method, "path", r.URL.EscapedPath(), "route", req.route,
		"status", sw.code, "in", req.bodyIn.n, "out", sw.bytes, "subject", req.subject,
		"duration", time.Since(start).Round(time.Microsecond))
}

// countingReader counts request body bytes and extends the read deadline
// before each read.
type countingReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
	n    int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.rc.SetReadDeadline(time.Now().Add(c.idle)) // unsupported on recorders: ignored
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, req *request) error {
	p := r.URL.EscapedPath()
	switch {
	case p == "/health":
		req.route = routeHealth
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	case p == "/metrics":
		req.route = routeMetrics
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return errorf(http.StatusMethodNotAllowed, "Method not allowed for metrics endpoint")
		}
		return h.metrics.serve(w, r)
	case strings.HasPrefix(p, "/api/v"):
		return h.api(w, r, req, strings.TrimPrefix(p, "/api/v"))
	}
	return errorf(http.StatusNotFound, "Route `%s` not found", p)
}

// api dispatches /api/v{version}/{user}[/{repo}[/_tag[/{tag}[/tree[/{path}]]]]]
// exactly as upstream: the path is not percent-decoded, and it is split at
// the first "/_" into a user/repo head and a tail.
func (h *Handler) api(w http.ResponseWriter, r *http.Request, req *request, rest string) error {
	ver, rest, _ := strings.Cut(rest, "/")
	v, err := semver.StrictNewVersion(ver)
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse SemVer version from %s", ver)
	}
	if v.GreaterThan(APIVersion) && (v.Major() > APIVersion.Major() || (v.Major() == 0 && v.Minor() > APIVersion.Minor())) {
		return errorf(http.StatusNotImplemented, "Unsupported API version `%s`", ver)
	}
	head, tail, hasTail := strings.Cut(rest, "/_")
	userPart, repoPart, hasRepo := strings.Cut(head, "/")
	u, err := types.ParseUserName(userPart)
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse user name: %v", err)
	}
	req.user = u
	if !hasRepo {
		if hasTail {
			return errorf(http.StatusNotFound, "Route not found on user")
		}
		req.route = routeUser
		return h.user(w, r, req)
	}
	repo, err := types.ParseRepoName(repoPart)
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse repository name: %v", err)
	}
	req.repo = repo
	if !hasTail {
		req.route = routeRepo
		return h.repository(w, r, req)
	}
	parts := strings.SplitN(tail, "/", 4)
	if parts[0] != "tag" {
		return errorf(http.StatusNotFound, "Route not found on repository")
	}
	if len(parts) == 1 {
		req.route = routeTagList
		return h.tagList(w, r, req)
	}
	tag, err := types.ParseTagName(parts[1])
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse tag name: %v", err)
	}
	req.tag = tag
	if len(parts) == 2 {
		req.route = routeTag
		return h.tagEntry(w, r, req)
	}
	if parts[2] != "tree" {
		return errorf(http.StatusNotFound, "Route not found on tag")
	}
	var treePath string
	if len(parts) == 4 {
		treePath = parts[3]
	}
	tp, err := types.ParseTreePath(treePath)
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse tree path: %v", err)
	}
	req.path = tp
	req.route = routeTree
	return h.tree(w, r, req)
}

// --- authentication and authorization -------------------------------------

// token verifies the bearer token of r.
func (h *Handler) token(r *http.Request, req *request) (*Claims, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, errorf(http.StatusUnauthorized, "Bearer token header missing")
	}
	scheme, raw, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" || strings.ContainsAny(raw, " \t") {
		return nil, errorf(http.StatusBadRequest, "Invalid Authorization header: want `Bearer <token>`")
	}
	c, err := h.cfg.Tokens.Verify(r.Context(), raw)
	if err != nil {
		h.log.Debug("token rejected", "err", err)
		return nil, errorf(http.StatusUnauthorized, "Invalid token provided")
	}
	req.subject = c.Subject
	return c, nil
}

func requireScope(c *Claims, level, context string) error {
	if !c.HasScope(level, context) {
		return errorf(http.StatusUnauthorized, "Token is missing a scope for level %s, context %s", level, context)
	}
	return nil
}

// owner checks the token is the owner of req.user and has the scope:
// user exists, subject matches, scope present (upstream's order).
func (h *Handler) owner(r *http.Request, req *request, level, context string) error {
	c, err := h.token(r, req)
	if err != nil {
		return err
	}
	_, body, err := h.cfg.Registry.User(r.Context(), req.user)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusUnauthorized, "User `%s` not found", req.user)
	} else if err != nil {
		return err
	}
	var rec userRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return fmt.Errorf("stored user record of %s is corrupt: %w", req.user, err)
	}
	if rec.Subject != c.Subject {
		return errorf(http.StatusUnauthorized, "You are logged in as `%s`, and not authorized for user `%s`", c.Subject, req.user)
	}
	return requireScope(c, level, context)
}

// readable allows reads of a repository's tags (and, with a trusted
// client certificate, trees): public repos for everyone, private ones for
// the owner with repositories:read.
func (h *Handler) readable(r *http.Request, req *request, certOK bool) error {
	_, body, err := h.cfg.Registry.Repo(r.Context(), req.user, req.repo)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "Not found")
	} else if err != nil {
		return err
	}
	var cfg repoConfig
	if err := json.Unmarshal(body, &cfg); err != nil || cfg.Public == nil {
		return fmt.Errorf("stored repository config of %s/%s is corrupt", req.user, req.repo)
	}
	if *cfg.Public {
		return nil
	}
	if certOK && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return nil
	}
	return h.owner(r, req, levelRead, ctxRepos)
}

// --- request parsing -------------------------------------------------------

type userRecord struct {
	Subject string `json:"subject"`
}

type repoConfig struct {
	Public *bool `json:"public"`
}

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
// fields, wrong types).
func decodeStrict(m types.Meta, body []byte, v any) error {
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
	if dec.More() {
		return errorf(http.StatusBadRequest, "Failed to parse the request body as JSON: trailing data")
	}
	return nil
}

// readRecord reads and strictly decodes a user record or repository
// config body into v.
func readRecord(r *http.Request, v any) (types.Meta, []byte, error) {
	m, err := claimedMeta(r, false)
	if err != nil {
		return m, nil, err
	}
	body, err := readBody(r, m, store.MaxRecordSize)
	if err != nil {
		return m, nil, err
	}
	return m, body, decodeStrict(m, body, v)
}

// storeErr maps store errors on writes.
func storeErr(err error) error {
	var inv *store.InvalidError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return errorf(http.StatusBadRequest, "%s", inv.Msg)
	case errors.Is(err, store.ErrExists):
		return errorf(http.StatusConflict, "Already exists")
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "%s", notFoundText(err))
	case errors.Is(err, errBody):
		return errorf(http.StatusBadRequest, "Request body incomplete: %v", err)
	}
	return err
}

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
		buf := sendBufs.Get().(*[]byte)
		_, err := io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{o.Content}, *buf)
		sendBufs.Put(buf)
		if err != nil {
			return fmt.Errorf("sending %d bytes: %w", o.Meta.Length, err)
		}
	}
	return nil
}

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

// --- handlers --------------------------------------------------------------

func (h *Handler) user(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.owner(r, req, levelRead, ctxUsers); err != nil {
			return err
		}
		m, body, err := h.cfg.Registry.User(ctx, req.user)
		if err != nil {
			return getErr(r, err)
		}
		return sendSmall(w, r, m, body)
	case http.MethodPut:
		c, err := h.token(r, req)
		if err != nil {
			return err
		}
		if err := requireScope(c, levelWrite, ctxUsers); err != nil {
			return err
		}
		var rec userRecord
		m, body, err := readRecord(r, &rec)
		if err != nil {
			return err
		}
		if rec.Subject != c.Subject {
			return errorf(http.StatusUnauthorized, "OpenID Connect subject mismatch")
		}
		if err := storeErr(h.cfg.Registry.CreateUser(ctx, req.user, m, body)); err != nil {
			return err
		}
		created(w, false)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for user endpoint")
}

func (h *Handler) repository(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.owner(r, req, levelRead, ctxRepos); err != nil {
			return err
		}
		m, body, err := h.cfg.Registry.Repo(ctx, req.user, req.repo)
		if err != nil {
			return getErr(r, err)
		}
		return sendSmall(w, r, m, body)
	case http.MethodPut:
		if err := h.owner(r, req, levelWrite, ctxRepos); err != nil {
			return err
		}
		var cfg repoConfig
		m, body, err := readRecord(r, &cfg)
		if err != nil {
			return err
		}
		if cfg.Public == nil {
			return errorf(http.StatusUnprocessableEntity, "Failed to deserialize the JSON body: missing field `public`")
		}
		if err := storeErr(h.cfg.Registry.CreateRepo(ctx, req.user, req.repo, m, body)); err != nil {
			return err
		}
		created(w, false)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for repository endpoint")
}

func (h *Handler) tagList(w http.ResponseWriter, r *http.Request, req *request) error {
	if r.Method != http.MethodGet {
		return errorf(http.StatusMethodNotAllowed, "Method not allowed for tag query endpoint")
	}
	if err := h.readable(r, req, false); err != nil {
		return err
	}
	tags, err := h.cfg.Registry.Tags(r.Context(), req.user, req.repo)
	if err != nil {
		return getErr(r, err)
	}
	if tags == nil {
		tags = []types.TagName{}
	}
	body, _ := json.Marshal(tags)
	d, n := types.Compute(body)
	return sendSmall(w, r, types.Meta{Digest: d, Length: n, Type: "application/json"}, body)
}

func (h *Handler) tagEntry(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	ref := store.TagRef{User: req.user, Repo: req.repo, Tag: req.tag}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.readable(r, req, false); err != nil {
			return err
		}
		o, err := h.cfg.Registry.Tag(ctx, ref)
		if err != nil {
			return getErr(r, err)
		}
		return sendObject(w, r, o)
	case http.MethodPut:
		if err := h.devCreate(r, req); err != nil {
			return err
		}
		if err := h.owner(r, req, levelWrite, ctxTags); err != nil {
			return err
		}
		m, err := claimedMeta(r, true)
		if err != nil {
			return err
		}
		if m.Type != types.EntryType && m.Type != types.JWSType {
			return errorf(http.StatusBadRequest, "Invalid content type")
		}
		body, err := readBody(r, m, store.MaxRecordSize)
		if err != nil {
			return err
		}
		resumed, err := h.cfg.Registry.CreateTag(ctx, ref, m, body)
		if err := storeErr(err); err != nil {
			return err
		}
		created(w, resumed)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for tag endpoint")
}

// devCreate, in dev mode, creates the user and a public repository named
// by a tag PUT if they are missing and the token is the dev token's
// subject, so a newcomer can publish with one command.
func (h *Handler) devCreate(r *http.Request, req *request) error {
	if h.cfg.DevSubject == "" {
		return nil
	}
	c, err := h.token(r, req)
	if err != nil || c.Subject != h.cfg.DevSubject {
		return nil // the normal checks report it
	}
	ctx := r.Context()
	if _, _, err := h.cfg.Registry.User(ctx, req.user); errors.Is(err, store.ErrNotFound) {
		body, _ := json.Marshal(userRecord{Subject: c.Subject})
		d, n := types.Compute(body)
		err := h.cfg.Registry.CreateUser(ctx, req.user, types.Meta{Digest: d, Length: n, Type: "application/json"}, body)
		if err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		h.log.Warn("DEV MODE: created user on first publish", "user", string(req.user))
	}
	if _, _, err := h.cfg.Registry.Repo(ctx, req.user, req.repo); !errors.Is(err, store.ErrNotFound) {
		return nil
	}
	body := []byte(`{"public":true}`)
	d, n := types.Compute(body)
	err = h.cfg.Registry.CreateRepo(ctx, req.user, req.repo, types.Meta{Digest: d, Length: n, Type: "application/json"}, body)
	if err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	h.log.Warn("DEV MODE: created public repository on first publish", "repo", string(req.user)+"/"+string(req.repo))
	return nil
}

func (h *Handler) tree(w http.ResponseWriter, r *http.Request, req *request) error {
	ctx := r.Context()
	ref := store.TagRef{User: req.user, Repo: req.repo, Tag: req.tag}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if err := h.readable(r, req, true); err != nil {
			return err
		}
		if r.Method == http.MethodHead {
			m, err := h.cfg.Registry.StatNode(ctx, ref, req.path)
			if err != nil {
				return getErr(r, err)
			}
			sendMeta(w, m)
			w.WriteHeader(http.StatusOK)
			return nil
		}
		o, err := h.cfg.Registry.Node(ctx, ref, req.path)
		if err != nil {
			return getErr(r, err)
		}
		return sendObject(w, r, o)
	case http.MethodPut:
		if err := h.owner(r, req, levelWrite, ctxTags); err != nil {
			return err
		}
		m, err := claimedMeta(r, true)
		if err != nil {
			return err
		}
		if m.Length > h.cfg.MaxUploadSize {
			return errorf(http.StatusRequestEntityTooLarge, "Upload larger than %d bytes", h.cfg.MaxUploadSize)
		}
		existed, err := h.cfg.Registry.CreateNode(ctx, ref, req.path, m, bodyReader{r.Body})
		if err := storeErr(err); err != nil {
			return err
		}
		created(w, existed)
		return nil
	}
	return errorf(http.StatusMethodNotAllowed, "Method not allowed for tree endpoint")
}
