package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/drawbridge/types"
)

// rejectAll is a TokenVerifier that accepts nothing (the fuzzer explores
// routing and parsing, not cryptography).
type rejectAll struct{}

func (rejectAll) Verify(context.Context, string) (*Claims, error) { return nil, errors.New("no") }

// FuzzRequest drives the handler with arbitrary methods, request paths,
// headers and bodies: it must answer with a known status, never panic, and
// never let a write succeed without a valid token.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"/api/v0.1.0/alice", "/api/v0.1.0/alice/pub/_tag", "/api/v0.1.0/alice/pub/_tag/1.0.0/tree/a/b",
		"/api/v9.9.9/x", "/api/v0.1.0/alice/pub/_tag/1.0.0/tree/..", "/health", "/metrics", "/api/v0.1.0/a/_x/_tag",
	} {
		f.Add("GET", s, "", "application/json", []byte(`{"public":true}`))
		f.Add("PUT", s, "sha-256=:LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=:", types.EntryType, []byte("foo"))
	}
	fs, err := store.OpenFS(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	reg := store.NewRegistry(fs)
	pub := []byte(`{"public":true}`)
	d, n := types.Compute(pub)
	rec := []byte(`{"subject":"s"}`)
	d2, n2 := types.Compute(rec)
	reg.CreateUser(context.Background(), "alice", types.Meta{Digest: d2, Length: n2, Type: "application/json"}, rec)
	reg.CreateRepo(context.Background(), "alice", "pub", types.Meta{Digest: d, Length: n, Type: "application/json"}, pub)
	h, _ := New(Config{Registry: reg, Tokens: rejectAll{}, Logger: newDiscardLogger()})
	known := map[int]bool{200: true, 201: true, 400: true, 401: true, 404: true, 405: true, 409: true, 413: true, 415: true, 422: true, 501: true}
	f.Fuzz(func(t *testing.T, method, path, digest, ctype string, body []byte) {
		// The path is a request target as net/http's server parses it from
		// the request line (so the fuzzer varies the path, never the host).
		u, err := url.ParseRequestURI(path)
		if err != nil || !strings.HasPrefix(path, "/") || u.Host != "" {
			return
		}
		r, err := http.NewRequest(method, "https://x/", bytes.NewReader(body))
		if err != nil {
			return
		}
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
		r.RequestURI = path
		r.Header.Set("Authorization", "Bearer x")
		if digest != "" {
			r.Header.Set("Content-Digest", digest)
		}
		r.Header.Set("Content-Type", ctype)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if !known[w.Code] {
			t.Fatalf("%s %q: status %d (%s)", method, path, w.Code, w.Body)
		}
		if w.Code < 300 && method == "PUT" && path != "/health" {
			t.Fatalf("%s %q succeeded without a valid token", method, path)
		}
	})
}
