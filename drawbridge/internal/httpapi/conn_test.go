package httpapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// rawRequest sends head (a request line and headers, no blank line) with
// "Content-Length: n" over a TLS connection of its own and none of the
// body, then reads the reply. It then sends GET /health on the same
// connection and reports whether the server had closed it instead of
// answering. The read deadline is a hang detector only: a server that
// neither answers nor closes fails the test.
func (e *env) rawRequest(head string, n int) (*http.Response, bool) {
	e.t.Helper()
	c, err := tls.Dial("tcp", e.srv.Listener.Addr().String(), &tls.Config{RootCAs: e.pki.pool, ServerName: "127.0.0.1"})
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n", head, n); err != nil {
		e.t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		e.t.Fatalf("%s: no response: %v", head, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") // fails, or not yet, on a closed one
	next, err := http.ReadResponse(br, nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		e.t.Fatalf("%s: the connection neither answers nor closes", head)
	}
	if err == nil {
		next.Body.Close()
	}
	return res, err != nil
}

// TestUnreadBodyAnswered: a request that declares a body the server does
// not read (it is refused first, or the route takes none) gets its answer
// at once and the connection is closed, instead of the server waiting
// forever for a body the client never sends (2,000 such connections held
// 2,000 descriptors).
func TestUnreadBodyAnswered(t *testing.T) {
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, map[string]bool{"pub": true})
	for _, tc := range []struct {
		head string
		n    int
		code int
	}{
		{"GET /health HTTP/1.1", 10, http.StatusOK},
		{"POST /nowhere HTTP/1.1", 100, http.StatusNotFound},
		{"PUT /api/v0.1.0/bob HTTP/1.1\r\nContent-Type: application/json", 20, http.StatusUnauthorized},
		{"PUT /api/v0.1.0/alice/pub/_tag/0.1.0/tree/big HTTP/1.1\r\nAuthorization: Bearer " + e.token +
			"\r\nContent-Type: application/octet-stream\r\nContent-Digest: sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=:", 2 << 30, http.StatusRequestEntityTooLarge},
	} {
		res, closed := e.rawRequest(tc.head, tc.n)
		if res.StatusCode != tc.code || !closed {
			t.Errorf("%s: status %d, closed %v; want %d, closed", strings.SplitN(tc.head, "\r\n", 2)[0], res.StatusCode, closed, tc.code)
		}
	}
	// A request without a body keeps its connection.
	if res, closed := e.rawRequest("GET /health HTTP/1.1", 0); res.StatusCode != http.StatusOK || closed {
		t.Errorf("GET /health without a body: %d, closed %v", res.StatusCode, closed)
	}
}
