// Package httpapi is the Drawbridge registry's HTTP API (reference
// docs/drawbridge.md and /api/v0.1.0/… of upstream Drawbridge 0.4.x): route
// dispatch, authentication (OIDC bearer tokens, trusted client
// certificates), the authorization matrix, and the mapping of store results
// to status codes.
//
// It trusts its TokenVerifier (signature, issuer, audience, expiry are
// checked there), the TLS stack for client-certificate verification, and
// the store for what it returns. Everything in a request is hostile: names,
// headers and bodies are parsed by drawbridge/types and verified by
// drawbridge/internal/store before anything is stored. A private
// repository's names are not disclosed: a caller who may not read it gets
// the answer a missing repository gets on every route (see readable).
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/enarx-go/enarx/internal/bulkconn"

	"github.com/Masterminds/semver/v3"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// APIVersion is the upstream API level this server implements. Requests
// for /api/vX are served if X is not newer than this, or is newer only in
// a way semver calls compatible (same major ≥ 1; for major 0, same minor).
const APIVersion = "0.4.3"

var apiVersion = semver.MustParse(APIVersion)

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
	// DevSubject, if set, is the token subject for which users and public
	// repositories are created on first publish (dev mode only).
	DevSubject string
	// RequireAttestedHardware restricts reading private trees with a client
	// certificate (one that chains to the trusted CAs) to certificates whose
	// attested-as extension (attest/certext, written by the Steward) records
	// hardware-backed evidence, a TEE not in debug mode, and a Steward not
	// in debug mode. Without it any such certificate reads them, including
	// one a debug-mode Steward issued for no-hardware evidence.
	RequireAttestedHardware bool
}

// Handler serves the API, /health and /metrics.
//
// drawbridge/server.Run serves it over TLS with large nodes sent in batches
// of TLS records; an http.Server of one's own gets the same by serving TLS
// on Listener(ln) with ConnContext as its ConnContext (without them every
// 16 KiB record is its own write(2), and nothing else changes).
type Handler struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	// StallTimeout and StallMinBytes as they were at New.
	stallTimeout  time.Duration
	stallMinBytes int64
}

// New returns a Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Registry == nil || cfg.Tokens == nil {
		return nil, errors.New("httpapi: a registry and a token verifier are required")
	}
	if cfg.MaxUploadSize <= 0 {
		cfg.MaxUploadSize = DefaultMaxUploadSize
	}
	l := cfg.Logger
	if l == nil {
		l = slog.Default()
	}
	return &Handler{cfg: cfg, log: l, metrics: newMetrics(cfg.Registry), stallTimeout: StallTimeout, stallMinBytes: max(1, StallMinBytes)}, nil
}

// httpError is an HTTP status with a plain-text body (upstream's texts,
// which clients and users match on).
type httpError struct {
	code int
	msg  string
	// retryAfter, if not 0, is sent as Retry-After (seconds).
	retryAfter int
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

// StallTimeout and StallMinBytes bound how slowly a client may send a
// request body or read a response: the connection is cut once fewer than
// StallMinBytes moved in a window of StallTimeout (a client that stops, or
// trickles a byte now and then, would otherwise hold a goroutine, buffers,
// an open file and the connection for as long as it likes). There is no
// overall limit: large packages on slow links take long, and any working
// network moves far more (16 KiB in 2 min is 137 bytes/s). Only the time
// spent waiting for the client counts: not the handler's own work
// (authorization, hashing, storage) before, between or after reads and
// writes. A body smaller than StallMinBytes must move within one window.
// A response is paced by the handler's writes, which take up to 256 KiB at
// once (sendObject's copy buffer; batches, see Listener): each must leave
// within one window. The drawbridge client applies the same rule to the
// registry. Variables for tests: New reads them.
var (
	StallTimeout  = 2 * time.Minute
	StallMinBytes = int64(16 << 10)
)

// pace applies StallTimeout and StallMinBytes to one direction of one
// request: before each read (or write) it sets the connection's deadline
// to what is left of the window, and after it counts the bytes moved and
// the time the call took; StallMinBytes moved start a new window. A call
// still blocked when the window runs out fails with a timeout, which
// breaks the connection. Used by one goroutine at a time.
type pace struct {
	setDeadline func(time.Time) error
	window      time.Duration
	min         int64
	left        time.Duration // of the window, counted inside calls only
	moved       int64         // in this window
}

func newPace(set func(time.Time) error, window time.Duration, min int64) *pace {
	return &pace{setDeadline: set, window: window, min: min, left: window}
}

// call runs f, an I/O call on the connection, under the window, and
// returns what f returns.
func (p *pace) call(f func() (int, error)) (int, error) {
	start := time.Now()
	p.setDeadline(start.Add(p.left)) // unsupported on recorders: ignored
	n, err := f()
	p.left -= time.Since(start)
	if p.moved += int64(n); p.moved >= p.min {
		p.moved, p.left = 0, p.window
	}
	return n, err
}

// statusWriter records the status and bytes written, paces writes, and
// closes the connection after a response to a request whose body was not
// read to its end.
type statusWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	pace  *pace
	code  int
	bytes int64
	body  *countingReader // the request body
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
		w.closeIfUnread()
	}
	w.pace.call(func() (int, error) { w.ResponseWriter.WriteHeader(code); return 0, nil })
}

// closeIfUnread asks net/http to close the connection after the response
// when the request body has not been read to its end (a request refused
// before its body is needed, or a body on a route that takes none).
// Otherwise net/http reads up to 256 KiB of the rest before it sends the
// response headers, to keep the connection: a client that declares a body
// and never sends it then waits forever, and so does the server. (A client
// that did send the body gets the response; the unread bytes go with the
// connection.)
func (w *statusWriter) closeIfUnread() {
	if w.body != nil && !w.body.done() {
		w.Header().Set("Connection", "close")
	}
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
		w.closeIfUnread()
	}
	n, err := w.pace.call(func() (int, error) { return w.ResponseWriter.Write(p) })
	w.bytes += int64(n)
	return n, err
}

// paced runs f, which writes to the connection what earlier writes left
// buffered (a flush), under the write window.
func (w *statusWriter) paced(f func() error) error {
	_, err := w.pace.call(func() (int, error) { return 0, f() })
	return err
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
	rc := http.NewResponseController(w)
	sw := &statusWriter{ResponseWriter: w, rc: rc, pace: newPace(rc.SetWriteDeadline, h.stallTimeout, h.stallMinBytes)}
	req := &request{route: routeOther, bodyIn: &countingReader{r: r.Body, rc: rc, pace: newPace(rc.SetReadDeadline, h.stallTimeout, h.stallMinBytes), length: r.ContentLength}}
	sw.body = req.bodyIn
	r.Body = struct {
		io.Reader
		io.Closer
	}{req.bodyIn, r.Body}
	// A deadline left by an earlier request on this connection must not
	// cut this one's response after a long upload.
	sw.rc.SetWriteDeadline(time.Time{})
	h.metrics.inFlight.Inc()
	err := h.serve(sw, r, req)
	h.metrics.inFlight.Dec()
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
		if he.retryAfter > 0 {
			sw.Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
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
		sw.closeIfUnread() // net/http writes the headers after we return
	}
	if !req.bodyIn.done() {
		// After the handler, net/http reads up to 256 KiB of an unread
		// body even when it closes the connection; a client that never
		// sends it must not hold the connection: end that read at once.
		sw.rc.SetReadDeadline(time.Now())
	}
	// The final flush, after we return, gets what is left of the window.
	sw.rc.SetWriteDeadline(time.Now().Add(max(sw.pace.left, 0)))
	h.metrics.observe(req.route, r.Method, sw.code, req.bodyIn.n, sw.bytes)
	// Never log headers: Authorization carries a bearer token.
	h.log.Info("request", "method", r.Method, "path", r.URL.EscapedPath(), "route", req.route,
		"status", sw.code, "in", req.bodyIn.n, "out", sw.bytes, "subject", req.subject,
		"duration", time.Since(start).Round(time.Microsecond))
}

// countingReader counts request body bytes and paces reads.
type countingReader struct {
	r      io.Reader
	rc     *http.ResponseController
	pace   *pace
	n      int64
	length int64 // the declared Content-Length; -1: unknown
	eof    bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.done() {
		// Nothing more from the client. Once the body is read, net/http
		// clears the read deadline and reads the connection in the
		// background (to notice a client that goes away): a deadline set
		// now would cancel the request while the handler works.
		return c.r.Read(p)
	}
	n, err := c.pace.call(func() (int, error) { return c.r.Read(p) })
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// done reports whether the body has been read to its end.
func (c *countingReader) done() bool {
	return c.eof || c.length == 0 || c.length > 0 && c.n >= c.length
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
	ver, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return errorf(http.StatusNotFound, "Route `%s` not found", r.URL.EscapedPath())
	}
	v, err := semver.StrictNewVersion(ver)
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse SemVer version from %s", ver)
	}
	if v.GreaterThan(apiVersion) && (v.Major() > apiVersion.Major() || (v.Major() == 0 && v.Minor() > apiVersion.Minor())) {
		return errorf(http.StatusNotImplemented, "Unsupported API version `%s`", ver)
	}
	if rest == "" {
		return errorf(http.StatusNotFound, "Route `/` not found")
	}
	head, tail, hasTail := strings.Cut(rest, "/_")
	userPart, repoPart, hasRepo := strings.Cut(head, "/")
	u, err := types.ParseUserName(userPart)
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse user name: %s", nameReason(err))
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
		return errorf(http.StatusBadRequest, "Failed to parse repository name: %s", nameReason(err))
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
		return errorf(http.StatusNotFound, "Route not found on repository")
	}
	var treePath string
	if len(parts) == 4 {
		treePath = parts[3]
	}
	tp, err := types.ParseTreePath(treePath)
	if err != nil {
		return errorf(http.StatusBadRequest, "Failed to parse tree path: %s", nameReason(err))
	}
	req.path = tp
	req.route = routeTree
	return h.tree(w, r, req)
}

// nameReason is upstream's text for a name error ("invalid characters in
// user name"), so 400 bodies match upstream's byte for byte; other errors
// (our length and depth limits) are given as they are.
func nameReason(err error) string {
	var ne *types.NameError
	if errors.As(err, &ne) {
		return ne.Reason
	}
	return err.Error()
}

// Listener wraps a TCP listener so that Handler can send large nodes in
// batches of TLS records; put TLS on top of it (http.Server.ServeTLS) and
// set http.Server.ConnContext to ConnContext.
func Listener(ln net.Listener) net.Listener { return bulkconn.Listen(ln) }

// ConnContext is the http.Server.ConnContext that goes with Listener.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return bulkconn.ConnContext(ctx, c)
}
