// Package client is a typed HTTP client for the Drawbridge v0.1.0 API
// (users, repositories, tags, trees) and the tree builder used to publish a
// directory.
//
// Trust: the registry and the network are untrusted for integrity. Every
// response body is read through a verifying reader against the response's
// Content-Digest and Content-Length (both required) and against a size limit
// checked before reading; a body is only returned after its digest checked.
// Tree reads additionally compare each node's metadata with the entry its
// parent (or the tag) names, so a fetched tree is verified from the tag down.
// TLS server certificates are checked against the system roots or the CA
// bundle given in Options. A request that moves fewer than StallMinBytes in
// StallTimeout (a registry that stops, or trickles, sending or reading a
// body) fails with ErrStalled.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enarx-go/enarx/drawbridge/bundle"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/bulkconn"
	"github.com/enarx-go/enarx/internal/version"
)

// APIPrefix is the path prefix of every API call.
const APIPrefix = "api/v0.1.0"

// Size limits for bodies the client reads.
const (
	MaxJSONSize      = 1 << 20   // user records, repo configs, tag lists, tag entries
	MaxDirectorySize = 1_000_000 // a directory node (upstream limit)
	MaxFileSize      = 1 << 30   // a file node fetched by `package fetch`
	MaxErrorBodySize = 4096      // how much of an error body is shown
)

// Options configures a Client.
type Options struct {
	// HTTPClient, if set, is used as is (CABundle is then ignored).
	HTTPClient *http.Client
	// CABundle is PEM; if non-empty it replaces the system roots.
	CABundle []byte
	// Token is the OIDC access token sent as a bearer token ("" ⇒ anonymous).
	Token string
	// Progress, if set, is called for each body transferred and returns a
	// wrapper that counts bytes (terminal progress bars), or nil for none.
	Progress func(label string, total int64) func(io.Reader) io.Reader
}

// Client talks to one registry host.
type Client struct {
	host  string
	base  url.URL
	hc    *http.Client
	token string
	prog  func(string, int64) func(io.Reader) io.Reader
}

// NewHTTPClient returns an HTTP client whose TLS roots are caBundle (PEM) if
// given, else the system roots.
func NewHTTPClient(caBundle []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.DisableCompression = true
	if len(caBundle) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caBundle) {
			return nil, errors.New("CA bundle contains no PEM certificates")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	tr.ResponseHeaderTimeout = ResponseHeaderTimeout
	// Large bodies: read the socket in large chunks, not one TLS record
	// per read(2).
	tr.DialTLSContext = bulkconn.DialTLS(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}, &tr.TLSClientConfig)
	return &http.Client{Transport: tr, CheckRedirect: noRedirects}, nil
}

// ResponseHeaderTimeout bounds the wait for a response's headers (bodies
// may take as long as they need while they make progress: see
// StallTimeout; cancel the context to stop them).
const ResponseHeaderTimeout = time.Minute

// StallTimeout and StallMinBytes bound how slowly a request may move: a
// request body the registry stops reading, a response body it stops
// sending, or trickles (a byte now and then would otherwise hold the
// command forever), fails once fewer than StallMinBytes moved in a window
// of StallTimeout. Any working network moves far more (16 KiB in 2 min is
// 137 bytes/s). StallTimeout is longer than ResponseHeaderTimeout plus the
// dial and TLS handshake timeouts, which bound the wait before a response
// starts. Variables for tests.
var (
	StallTimeout  = 2 * time.Minute
	StallMinBytes = int64(16 << 10)
)

// ErrStalled is returned (wrapped) when a transfer moved fewer than
// StallMinBytes in StallTimeout.
var ErrStalled = errors.New("the registry stopped (or all but stopped) sending or receiving data")

// watch cancels a request's context when its transfer moved fewer than
// StallMinBytes in a window of StallTimeout (a registry that sends headers
// and then nothing, or a byte a minute, would otherwise hold the command
// forever). A watch runs only while the registry owes bytes: from the
// start of a request body (or from the response headers of a request
// without one) to the body's end, and again from the response headers to
// the response body's close.
type watch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	moved  atomic.Int64 // bytes moved in this window

	mu    sync.Mutex
	timer *time.Timer
	armed bool // a window is running
}

// startWatch watches a request made under the returned context. A watch
// of a request without a body (armed false) starts when the response's
// headers arrive (do): until then the dial, TLS handshake and response
// header timeouts bound the wait. One with a body starts at once, since a
// registry that reads none of it sends no response; it pauses when the
// body has been sent (the response header timeout bounds the wait for the
// answer) and starts again with the response.
func startWatch(ctx context.Context, armed bool) (context.Context, *watch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watch{ctx: ctx, cancel: cancel, armed: armed}
	d := StallTimeout
	if !armed {
		// Never, until arm: a timer made running and then stopped could
		// already have fired.
		d = math.MaxInt64
	}
	w.mu.Lock()
	w.timer = time.AfterFunc(d, w.check)
	w.mu.Unlock()
	return ctx, w
}

// check ends a window: too few bytes cancel the request, enough start the
// next window.
func (w *watch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed || w.ctx.Err() != nil {
		return
	}
	if w.moved.Swap(0) < StallMinBytes {
		w.cancel(ErrStalled)
		return
	}
	w.timer.Reset(StallTimeout)
}

// arm starts a fresh window (the response's headers arrived).
func (w *watch) arm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.moved.Store(0)
	w.armed = true
	w.timer.Reset(StallTimeout)
}

// pause stops the windows until arm (the request body was sent).
func (w *watch) pause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.timer.Stop()
}

func (w *watch) stop() {
	w.pause()
	w.cancel(nil)
}

// explain replaces the transport's "context canceled" by what happened.
func (w *watch) explain(err error) error {
	if err != nil && err != io.EOF && context.Cause(w.ctx) == ErrStalled {
		return fmt.Errorf("%w (less than %d KiB in %v: %v); check the registry and the network, then try again",
			ErrStalled, StallMinBytes>>10, StallTimeout, err)
	}
	return err
}

// reader returns request body r, counting the bytes read from it and
// pausing the watch at its end.
func (w *watch) reader(r io.Reader) io.Reader { return &watchedReader{r: r, w: w, request: true} }

type watchedReader struct {
	r       io.Reader
	w       *watch
	request bool // a request body: its end pauses the watch
}

func (r *watchedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.w.moved.Add(int64(n))
	}
	if err == io.EOF && r.request {
		r.w.pause()
	}
	return n, r.w.explain(err)
}

// watchedBody is a response body read under a watch, which ends when the
// body is closed.
type watchedBody struct {
	watchedReader
	c io.Closer
}

func (b *watchedBody) Close() error {
	err := b.c.Close()
	b.w.stop()
	return err
}

// noRedirects refuses redirects: the API has none, and following one could
// send the bearer token elsewhere (or over plain http to the same host).
func noRedirects(req *http.Request, via []*http.Request) error {
	return fmt.Errorf("registry redirected to %s: redirects are not followed", req.URL.Redacted())
}

// New returns a client for host ("name[:port]"), always over https.
func New(host string, o Options) (*Client, error) {
	if err := validateHost(host); err != nil {
		return nil, err
	}
	hc := o.HTTPClient
	if hc == nil {
		var err error
		if hc, err = NewHTTPClient(o.CABundle); err != nil {
			return nil, err
		}
	}
	return &Client{
		host:  host,
		base:  url.URL{Scheme: "https", Host: host, Path: "/" + APIPrefix},
		hc:    hc,
		token: o.Token,
		prog:  o.Progress,
	}, nil
}

// Host returns the registry host.
func (c *Client) Host() string { return c.host }

// StatusError is a non-success HTTP answer. Body is the server's message.
type StatusError struct {
	Method, URL string
	Code        int
	Body        string
}

func (e *StatusError) Error() string {
	msg := strings.TrimSpace(e.Body)
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Code, msg)
}

// IsStatus reports whether err is a StatusError with the given code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

func (c *Client) url(segments ...string) string {
	u := c.base
	u.Path = u.Path + "/" + strings.Join(segments, "/")
	return u.String()
}

func userPath(u types.UserName) []string { return []string{string(u)} }
func repoPath(r RepoSpec) []string       { return []string{string(r.User), string(r.Repo)} }
func tagPath(p PackageSpec) []string {
	return []string{string(p.User), string(p.Repo), "_tag", string(p.Tag)}
}
func treePath(p PackageSpec, path types.TreePath) []string {
	s := append(tagPath(p), "tree")
	for _, n := range path {
		s = append(s, string(n))
	}
	return s
}

func (c *Client) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "enarx-go/"+version.Version)
	// The registry never compresses; asking for identity keeps
	// Content-Length and Content-Digest about the bytes we read.
	req.Header.Set("Accept-Encoding", "identity")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends req, whose context w watches (startWatch): the response body
// is read under the watch, and closing it ends the watch.
func (c *Client) do(req *http.Request, w *watch) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		w.stop()
		// The HTTP client names the request already (Get "URL": ...);
		// name it once, and keep a *url.Error for callers that look for
		// the URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &url.Error{Op: req.Method, URL: req.URL.String(), Err: w.explain(err)}
	}
	w.arm() // the response started: its body is watched from here
	resp.Body = &watchedBody{watchedReader{r: resp.Body, w: w}, resp.Body}
	return resp, nil
}

func statusError(req *http.Request, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBodySize))
	return &StatusError{Method: req.Method, URL: req.URL.String(), Code: resp.StatusCode, Body: sanitize(string(b))}
}

// sanitize keeps server text printable so it cannot drive the terminal.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f && !(r >= 0x80 && r < 0xa0) {
			return r
		}
		return '?'
	}, s)
}

// Response is a verified body with the metadata the server sent for it.
type Response struct {
	Meta types.Meta
	Body []byte
}

// get fetches u into memory, verifying the body against its Content-Digest
// (and pin, see getTo) and rejecting bodies longer than limit before
// reading them.
func (c *Client) get(ctx context.Context, u, label string, limit int64, pin types.Digests) (*Response, error) {
	var buf bytes.Buffer
	meta, err := c.getTo(ctx, u, label, limit, pin, func(m types.Meta) (io.Writer, error) {
		buf.Grow(int(m.Length))
		return &buf, nil
	})
	if err != nil {
		return nil, err
	}
	return &Response{Meta: meta, Body: buf.Bytes()}, nil
}

// getTo streams a verified body of u into the writer open returns (called
// after the headers were checked). The writer's content must be treated as
// unverified unless getTo returns nil. pin, if set, is a pin that applies to
// the body (nodePin): the body is hashed with its algorithm too, and the
// Content-Digest must contain it.
func (c *Client) getTo(ctx context.Context, u, label string, limit int64, pin types.Digests, open func(types.Meta) (io.Writer, error)) (types.Meta, error) {
	ctx, wd := startWatch(ctx, false)
	req, err := c.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		wd.stop()
		return types.Meta{}, err
	}
	resp, err := c.do(req, wd)
	if err != nil {
		return types.Meta{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return types.Meta{}, statusError(req, resp)
	}
	meta, err := responseMeta(resp)
	if err != nil {
		return types.Meta{}, fmt.Errorf("GET %s: %w", u, err)
	}
	if meta.Length > limit {
		return types.Meta{}, fmt.Errorf("GET %s: body of %d bytes exceeds the limit of %d bytes", u, meta.Length, limit)
	}
	w, err := open(meta)
	if err != nil {
		return types.Meta{}, err
	}
	want, err := bundle.PinnedVerificationSet(meta.Digest, pin)
	if err != nil {
		return types.Meta{}, fmt.Errorf("GET %s: %w", u, err)
	}
	if sw, ok := w.(*sliceWriter); ok && sw.n == 0 && int64(len(sw.b)) == meta.Length {
		// Straight into memory; the cache file (if any) is written on
		// another core while the rest arrives.
		var tee io.Writer
		if sw.tee != nil {
			tee = sw.tee
		}
		if err := types.ReadVerifiedTee(c.wrap(label, meta.Length, resp.Body), sw.b, want, tee); err != nil {
			return types.Meta{}, fmt.Errorf("GET %s: %w", u, pinnedMismatch(err, pin))
		}
		sw.n = len(sw.b)
		return meta, nil
	}
	vr, err := types.NewPipelinedVerifyingReader(resp.Body, want, meta.Length)
	if err != nil {
		return types.Meta{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer vr.Close()
	var r io.Reader = vr
	r = c.wrap(label, meta.Length, r)
	if _, err := io.Copy(w, r); err != nil {
		return types.Meta{}, fmt.Errorf("GET %s: %w", u, pinnedMismatch(err, pin))
	}
	return meta, nil
}

// pinnedMismatch adds to a digest mismatch of a body a pin applies to that
// the pin was checked too: the verifying readers check the whole set at
// once and cannot say which digest failed.
func pinnedMismatch(err error, pin types.Digests) error {
	if len(pin) == 0 || !errors.Is(err, types.ErrDigestMismatch) {
		return err
	}
	return fmt.Errorf("%w: the body does not match both its Content-Digest and the pinned %s", err, pin)
}

// wrap adds progress reporting to r if configured.
func (c *Client) wrap(label string, total int64, r io.Reader) io.Reader {
	if c.prog == nil || label == "" {
		return r
	}
	if f := c.prog(label, total); f != nil {
		return f(r)
	}
	return r
}

// responseMeta reads Content-Digest, Content-Length and Content-Type, all of
// which the registry must send.
func responseMeta(resp *http.Response) (types.Meta, error) {
	cd := resp.Header.Values("Content-Digest")
	if len(cd) == 0 {
		return types.Meta{}, errors.New("response has no Content-Digest header")
	}
	d, err := types.ParseContentDigest(cd...)
	if err != nil {
		return types.Meta{}, fmt.Errorf("response Content-Digest: %w", err)
	}
	if len(d) == 0 {
		return types.Meta{}, errors.New("response Content-Digest names no digest")
	}
	cl := resp.Header.Get("Content-Length")
	if cl == "" {
		return types.Meta{}, errors.New("response has no Content-Length header")
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	if err != nil || n < 0 {
		return types.Meta{}, fmt.Errorf("response Content-Length %q is invalid", cl)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		return types.Meta{}, errors.New("response has no Content-Type header")
	}
	m := types.Meta{Digest: d, Length: n, Type: ct}
	if err := m.Validate(); err != nil {
		return types.Meta{}, fmt.Errorf("response metadata: %w", err)
	}
	return m, nil
}

// put uploads body with its metadata; 201 (created) and 200 (already there)
// are success.
func (c *Client) put(ctx context.Context, u, label string, meta types.Meta, body io.Reader) error {
	ctx, w := startWatch(ctx, true)
	body = c.wrap(label, meta.Length, body)
	var getBody func() (io.ReadCloser, error)
	if br, ok := body.(*bytes.Reader); ok && meta.Length < batchMin {
		// What NewRequest does for a *bytes.Reader, through the watch:
		// the transport may then resend the body on a kept-alive
		// connection the registry closed before it was written.
		snap := *br
		getBody = func() (io.ReadCloser, error) { r := snap; return io.NopCloser(w.reader(&r)), nil }
	}
	body = w.reader(body)
	var batch *batchedBody
	if meta.Length >= batchMin {
		// A large body leaves in batches of TLS records rather than one
		// write(2) per 16 KiB record: the connection is held from the
		// moment the request has one until the body ends.
		batch = &batchedBody{r: body}
		body = batch
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: batch.gotConn})
	}
	req, err := c.newRequest(ctx, http.MethodPut, u, body)
	if err != nil {
		w.stop()
		return err
	}
	if batch != nil {
		defer batch.release()
	}
	req.ContentLength = meta.Length
	req.GetBody = getBody
	if meta.Length == 0 {
		req.Body, req.GetBody = http.NoBody, nil
	}
	req.Header.Set("Content-Type", meta.Type)
	req.Header.Set("Content-Digest", meta.Digest.String())
	resp, err := c.do(req, w)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return statusError(req, resp)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxErrorBodySize))
	return nil
}

// batchMin is the body size from which put batches TLS records.
const batchMin = 256 << 10

// batchedBody is a request body that holds the connection it is sent on
// (see bulkconn) and releases it when the body ends or is closed.
type batchedBody struct {
	r    io.Reader
	mu   sync.Mutex
	conn *bulkconn.Conn
	done bool
}

func (b *batchedBody) gotConn(info httptrace.GotConnInfo) {
	tc, ok := info.Conn.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol == "h2" {
		// Only HTTP/1.x: an HTTP/2 connection carries other streams and
		// flow control, and a held batch could keep back the bytes the
		// peer waits for before it opens the window.
		return
	}
	bc, ok := tc.NetConn().(*bulkconn.Conn)
	if !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done || b.conn == bc {
		return
	}
	if b.conn != nil {
		// The transport moved the request to another connection.
		b.conn.Release()
	}
	bc.Hold()
	b.conn = bc
}

// release ends the hold (once); the transport writes what follows the
// body straight through.
func (b *batchedBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	if b.conn != nil {
		b.conn.Release()
		b.conn = nil
	}
}

func (b *batchedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil {
		b.release()
	}
	return n, err
}

// Close is called by the transport when it is done with the body.
func (b *batchedBody) Close() error {
	b.release()
	if c, ok := b.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

func (c *Client) putJSON(ctx context.Context, u string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// The registry hashes the record as serde_json writes it (upstream
	// re-serialises; encoding/json escapes <, > and & differently).
	if b, err = types.Canonical(b); err != nil {
		return err
	}
	sum, n := types.Compute(b)
	return c.put(ctx, u, "", types.Meta{Digest: sum, Length: n, Type: "application/json"}, bytes.NewReader(b))
}

func (c *Client) getJSON(ctx context.Context, u string, v any) error {
	r, err := c.get(ctx, u, "", MaxJSONSize, nil)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("GET %s: invalid JSON body: %w", u, err)
	}
	return nil
}

// UserRecord is the registry's record of a user.
type UserRecord struct {
	Subject string `json:"subject"`
}

// RepoConfig is a repository's configuration.
type RepoConfig struct {
	Public bool `json:"public"`
}

// PutUser registers user with the OIDC subject of the token.
func (c *Client) PutUser(ctx context.Context, user types.UserName, rec UserRecord) error {
	return c.putJSON(ctx, c.url(userPath(user)...), rec)
}

// GetUser returns the user's record (only its owner may read it).
func (c *Client) GetUser(ctx context.Context, user types.UserName) (UserRecord, error) {
	var r UserRecord
	err := c.getJSON(ctx, c.url(userPath(user)...), &r)
	return r, err
}

// PutRepo creates a repository.
func (c *Client) PutRepo(ctx context.Context, repo RepoSpec, cfg RepoConfig) error {
	return c.putJSON(ctx, c.url(repoPath(repo)...), cfg)
}

// GetRepo returns a repository's configuration (owner only).
func (c *Client) GetRepo(ctx context.Context, repo RepoSpec) (RepoConfig, error) {
	var r RepoConfig
	err := c.getJSON(ctx, c.url(repoPath(repo)...), &r)
	return r, err
}

// Tags lists a repository's tags.
func (c *Client) Tags(ctx context.Context, repo RepoSpec) ([]string, error) {
	var tags []string
	if err := c.getJSON(ctx, c.url(append(repoPath(repo), "_tag")...), &tags); err != nil {
		return nil, err
	}
	if tags == nil {
		tags = []string{}
	}
	return tags, nil
}

// Tag is a fetched, unsigned tag: its raw body and the root entry it names.
type Tag struct {
	Response
	Entry types.Entry
}

// GetTag fetches and parses a tag entry. If the spec is pinned, the entry
// must name the pinned root digest (the root node's body is checked against
// the pin when it is fetched: GetNode, GetNodeTo).
func (c *Client) GetTag(ctx context.Context, p PackageSpec) (*Tag, error) {
	r, err := c.get(ctx, c.url(tagPath(p)...), "", MaxJSONSize, nil)
	if err != nil {
		return nil, c.explainMissing(p, err)
	}
	if r.Meta.Type == types.JWSType {
		return nil, fmt.Errorf("tag %s is signed; signed tags are not currently supported", p)
	}
	e, err := types.ParseEntry(r.Body)
	if err != nil {
		return nil, fmt.Errorf("tag %s: %w", p, err)
	}
	if err := CheckPin(p.Pin, e.Digest); err != nil {
		return nil, fmt.Errorf("tag %s: %w", p, err)
	}
	return &Tag{Response: *r, Entry: e}, nil
}

// ErrNoRepository is returned (wrapped, with the registry's StatusError)
// when the registry answers a read of a tag as it answers for a missing
// repository (404 "Not found"): the repository does not exist, or it is
// private and the request's token, or its lack of one, may not read it.
// The registry does not say which (this one answers both the same on
// purpose, so that private names cannot be probed).
var ErrNoRepository = errors.New("no such repository, or it is private")

// notVisibleError is an ErrNoRepository with a message for the user.
type notVisibleError struct {
	msg string
	err error // the StatusError
}

func (e *notVisibleError) Error() string   { return e.msg }
func (e *notVisibleError) Unwrap() []error { return []error{ErrNoRepository, e.err} }

// explainMissing says what a 404 on a tag means. Drawbridge (upstream
// and ours, whose texts match upstream's) answers "Not found" when the
// repository is missing (ours also when it is private and the caller may
// not read it) and "Repository does not exist" when the repository exists
// and may be read but the tag does not; the server's text is kept.
func (c *Client) explainMissing(p PackageSpec, err error) error {
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		return err
	}
	switch strings.TrimSpace(se.Body) {
	case "Repository does not exist":
		return fmt.Errorf("no tag %s in repository %s (the registry's wording for a missing tag is %q): %w", p.Tag, p.RepoSpec, se.Body, err)
	case "Not found":
		why := "it is private and the token sent may not read it (only its owner's, with the repositories:read scope, may)"
		if c.token == "" {
			why = "it is private and no token was sent (a private package is visible only to its owner: log in to see it)"
		}
		return &notVisibleError{msg: fmt.Sprintf("no repository %s on the registry, or %s: %v", p.RepoSpec, why, err), err: err}
	}
	return err
}

// CheckPin checks that the digest set d contains the pinned digest (no-op
// for an empty pin).
func CheckPin(pin, d types.Digests) error { return bundle.CheckPin(pin, d) }

// nodePin returns the pin that applies to the node at path of p: the spec's
// pin for the root (the node the tag entry names), nil below it. The tag
// entry naming the pinned value proves nothing about the bytes; a pinned
// root is hashed with the pin's algorithm as well as VerificationSet's.
func nodePin(p PackageSpec, path types.TreePath) types.Digests {
	if path.IsRoot() {
		return p.Pin
	}
	return nil
}

// GetNode fetches the tree node at path into memory and checks that its
// metadata equals want (the entry its parent or the tag names) and, for the
// root of a pinned spec, that its body matches the pin.
func (c *Client) GetNode(ctx context.Context, p PackageSpec, path types.TreePath, want types.Meta, limit int64) (*Response, error) {
	if want.Length > limit {
		return nil, fmt.Errorf("node %q of %s: %d bytes exceeds the limit of %d bytes", "/"+path.String(), p, want.Length, limit)
	}
	r, err := c.get(ctx, c.url(treePath(p, path)...), nodeLabel(path), limit, nodePin(p, path))
	if err != nil {
		return nil, fmt.Errorf("node %q of %s: %w", "/"+path.String(), p, err)
	}
	if err := MatchMeta(r.Meta, want); err != nil {
		return nil, fmt.Errorf("node %q of %s: %w", "/"+path.String(), p, err)
	}
	return r, nil
}

// GetNodeTo streams the tree node at path into the writer open returns,
// after checking its metadata equals want. w holds verified bytes (matching
// the pin too, for the root of a pinned spec) only if GetNodeTo returns nil.
func (c *Client) GetNodeTo(ctx context.Context, p PackageSpec, path types.TreePath, want types.Meta, limit int64, open func() (io.Writer, error)) error {
	if want.Length > limit {
		return fmt.Errorf("node %q of %s: %d bytes exceeds the limit of %d bytes", "/"+path.String(), p, want.Length, limit)
	}
	_, err := c.getTo(ctx, c.url(treePath(p, path)...), nodeLabel(path), limit, nodePin(p, path), func(m types.Meta) (io.Writer, error) {
		if err := MatchMeta(m, want); err != nil {
			return nil, err
		}
		return open()
	})
	if err != nil {
		return fmt.Errorf("node %q of %s: %w", "/"+path.String(), p, err)
	}
	return nil
}

// MatchMeta reports a mismatch between the metadata a node was served with
// and the entry that names it.
func MatchMeta(got, want types.Meta) error {
	switch {
	case got.Equal(want):
		return nil
	case got.Type != want.Type:
		return fmt.Errorf("content type %q does not match its entry (%q)", got.Type, want.Type)
	case got.Length != want.Length:
		return fmt.Errorf("length %d does not match its entry (%d)", got.Length, want.Length)
	default:
		return fmt.Errorf("content digest %s does not match its entry (%s)", got.Digest, want.Digest)
	}
}

func nodeLabel(path types.TreePath) string {
	if path.IsRoot() {
		return "/"
	}
	return path.String()
}
