package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

const (
	// contentTypePKCS10 is compared as an exact string by upstream Steward:
	// no parameters.
	contentTypePKCS10 = "application/pkcs10"
	// maxReplySize bounds the Steward's DER reply (upstream's is ~1 KiB).
	maxReplySize = 1 << 20
	// maxReasonSize bounds how much of an error body is quoted.
	maxReasonSize = 512
)

// retryPolicy is how the client retries transient failures (network errors,
// 5xx, 429): maxAttempts tries in total, each bounded by attemptTimeout, with
// exponential backoff from baseDelay (doubling, capped at maxDelay, with
// jitter). 4xx other than 429 is never retried.
type retryPolicy struct {
	maxAttempts    int
	attemptTimeout time.Duration
	baseDelay      time.Duration
	maxDelay       time.Duration
}

var defaultRetry = retryPolicy{
	maxAttempts:    4,
	attemptTimeout: 30 * time.Second,
	baseDelay:      250 * time.Millisecond,
	maxDelay:       5 * time.Second,
}

type stewardEndpoint struct {
	url     *url.URL
	display string // redacted (no password) for messages and logs
}

// parseStewardURL accepts an absolute https URL, or http when insecure is
// set (upstream refuses anything but https).
func parseStewardURL(raw string, insecure bool) (*stewardEndpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("steward URL: %w", err)
	}
	ep := &stewardEndpoint{url: u, display: u.Redacted()}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !insecure {
			return nil, fmt.Errorf("steward URL %s uses plain http: the certificate request and chain would travel unprotected; use https (Enarx.toml accepts no other; an embedder's test may set identity.Request.AllowInsecureSteward)", ep.display)
		}
	default:
		return nil, fmt.Errorf("steward URL %q: scheme must be https", ep.display)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("steward URL %q has no host", ep.display)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("steward URL %q must not have a fragment", ep.display)
	}
	return ep, nil
}

type stewardClient struct {
	ep    *stewardEndpoint
	http  *http.Client
	log   *slog.Logger
	retry retryPolicy
}

// newStewardClient copies hc (or builds a default client trusting only
// roots) and makes it refuse redirects: a redirected POST
// would silently become a GET, and the Steward URL is part of the
// measured Enarx.toml, so the Keep talks to exactly that URL.
func newStewardClient(ep *stewardEndpoint, hc *http.Client, dial func(context.Context) (net.Conn, error), roots *x509.CertPool, log *slog.Logger) *stewardClient {
	var c http.Client
	if hc != nil {
		c = *hc
	} else {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // proxy settings come from the untrusted host environment
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
		if dial != nil {
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
		}
		c.Transport = tr
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &stewardClient{ep: ep, http: &c, log: log, retry: defaultRetry}
}

// stewardError is a failed exchange; retry says whether trying again may help.
type stewardError struct {
	err   error
	retry bool
	after time.Duration // Retry-After, if the Steward sent one
	// status and reason are the HTTP status and sanitized body of a
	// refusal (0 and "" for transport errors).
	status int
	reason string
}

// silentBadRequest reports whether err is a 400 without a reason: what an
// upstream Steward sends for any CSR it refuses, including one that carries
// an extension it does not know (such as the workload identity). Stewards
// of this project always give a reason.
func silentBadRequest(err error) bool {
	var se *stewardError
	return errors.As(err, &se) && se.status == http.StatusBadRequest && se.reason == ""
}

func (e *stewardError) Error() string { return e.err.Error() }
func (e *stewardError) Unwrap() error { return e.err }

// issue POSTs the DER CSR and returns the issued chain, leaf first.
func (c *stewardClient) issue(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
	delay := c.retry.baseDelay
	for attempt := 1; ; attempt++ {
		chain, err := c.post(ctx, csr)
		if err == nil {
			return leafFirst(chain), nil
		}
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			// Cancelled while the attempt was answered: report the
			// cancellation, not only the Steward's answer.
			return nil, fmt.Errorf("%w (gave up: %w)", err, cerr)
		}
		var se *stewardError
		if !errors.As(err, &se) || !se.retry || attempt >= c.retry.maxAttempts || ctx.Err() != nil {
			if attempt > 1 {
				return nil, fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return nil, err
		}
		wait := delay + rand.N(delay/2+1)
		if se.after > wait {
			wait = min(se.after, c.retry.maxDelay)
		}
		c.log.Warn("keep identity: steward request failed, retrying",
			"steward", c.ep.display, "attempt", attempt, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, c.retry.maxDelay)
	}
}

// post makes one attempt and returns the chain root-first.
func (c *stewardClient) post(ctx context.Context, csr []byte) ([]*x509.Certificate, error) {
	ctx, cancel := context.WithTimeout(ctx, c.retry.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.ep.url.String(), bytes.NewReader(csr))
	if err != nil {
		return nil, fmt.Errorf("steward %s: %w", c.ep.display, err)
	}
	req.Header.Set("Content-Type", contentTypePKCS10)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &stewardError{err: fmt.Errorf("steward %s: %w", c.ep.display, err), retry: retryableTransportError(err)}
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		return nil, c.statusError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReplySize+1))
	if err != nil {
		return nil, &stewardError{err: fmt.Errorf("steward %s: reading reply: %w", c.ep.display, err), retry: true}
	}
	if len(body) > maxReplySize {
		return nil, fmt.Errorf("steward %s: reply larger than %d bytes", c.ep.display, maxReplySize)
	}
	chain, err := ParseChain(body)
	if err != nil {
		return nil, fmt.Errorf("steward %s: %w", c.ep.display, err)
	}
	return chain, nil
}

func (c *stewardClient) statusError(resp *http.Response) error {
	var raw []byte
	// A 101 Switching Protocols reply hands the connection to the caller:
	// the attempt's deadline no longer bounds reading it, and a Steward
	// that sent nothing more would hold the Keep forever. Closing the body
	// (the caller's defer) closes that connection.
	if resp.StatusCode/100 != 1 {
		raw, _ = io.ReadAll(io.LimitReader(resp.Body, maxReasonSize+1))
	}
	reason := sanitizeReason(raw)
	msg := fmt.Sprintf("steward %s refused the certificate request: %s", c.ep.display, resp.Status)
	if resp.StatusCode/100 == 3 {
		msg = fmt.Sprintf("steward %s answered with a redirect (%s to %q); redirects are not followed, put the final URL in Enarx.toml", c.ep.display, resp.Status, resp.Header.Get("Location"))
	}
	if reason != "" {
		msg += ": " + strconv.Quote(reason)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		msg += " (the steward saw no evidence it accepts)"
	case resp.StatusCode == http.StatusBadRequest && reason == "":
		msg += " (an upstream steward gives no reason; check its logs)"
	}
	se := &stewardError{err: errors.New(msg), status: resp.StatusCode, reason: reason}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		se.retry = true
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			se.after = time.Duration(s) * time.Second
		}
	}
	return se
}

// sanitizeReason makes an untrusted error body safe to quote in one line:
// printable characters only, bounded length.
func sanitizeReason(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	truncated := len(b) > maxReasonSize
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case !unicode.IsPrint(r):
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxReasonSize {
		s = strings.ToValidUTF8(s[:maxReasonSize], "")
		truncated = true
	}
	if truncated {
		s += "…"
	}
	return s
}

// retryableTransportError is false for failures that another attempt cannot
// fix: a certificate the client does not trust, or a cancelled context.
func retryableTransportError(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var uerr x509.UnknownAuthorityError
	var herr x509.HostnameError
	var cerr x509.CertificateInvalidError
	var verr *tls.CertificateVerificationError
	if errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr) || errors.As(err, &verr) {
		return false
	}
	return true
}
