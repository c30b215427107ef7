package client

import (
	"bytes"
	"context"
	"encoding/pem"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/types"
)

// TestHostileRegistry checks what the client does with a registry that
// lies: a real TLS server on 127.0.0.1 that answers every tag GET with the
// misbehaviour under test. (The honest server cannot be made to lie; the
// end-to-end tests in internal/cli use it.)
func TestHostileRegistry(t *testing.T) {
	entry := types.Entry{Meta: types.Meta{Digest: types.Digests{types.SHA256: make([]byte, 32)}, Length: 4, Type: types.WasmType}}
	body, _ := entry.MarshalJSON()
	sum, _ := types.Compute(body)
	other, _ := types.Compute([]byte("other"))
	cases := []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  string
	}{
		{"honest", func(w http.ResponseWriter) { send(w, sum.String(), len(body), types.EntryType, body) }, ""},
		{"no digest", func(w http.ResponseWriter) { send(w, "", len(body), types.EntryType, body) }, "no Content-Digest"},
		{"bad digest header", func(w http.ResponseWriter) { send(w, "sha-256=:abc:", len(body), types.EntryType, body) }, "Content-Digest"},
		{"wrong digest", func(w http.ResponseWriter) { send(w, other.String(), len(body), types.EntryType, body) }, "content digest mismatch"},
		{"no type", func(w http.ResponseWriter) { send(w, sum.String(), len(body), "", body) }, "no Content-Type"},
		{"too large", func(w http.ResponseWriter) {
			w.Header().Set("Content-Digest", sum.String())
			w.Header().Set("Content-Type", types.EntryType)
			w.Header().Set("Content-Length", strconv.Itoa(MaxJSONSize+1))
			w.WriteHeader(200)
		}, "exceeds the limit"},
		{"chunked", func(w http.ResponseWriter) {
			w.Header().Set("Content-Digest", sum.String())
			w.Header().Set("Content-Type", types.EntryType)
			w.WriteHeader(200)
			w.Write(body)
			w.(http.Flusher).Flush()
		}, "no Content-Length"},
		{"redirect", func(w http.ResponseWriter) {
			w.Header().Set("Location", "http://127.0.0.1:1/steal")
			w.WriteHeader(http.StatusFound)
		}, "redirects are not followed"},
		{"error text with escapes", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("Repository does not exist\x1b[2J"))
		}, "404 Repository does not exist?[2J"},
		{"signed tag", func(w http.ResponseWriter) { send(w, sum.String(), len(body), types.JWSType, body) }, "signed tags are not currently supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) { c.serve(w) }, Options{Token: "secret"})
			spec, _ := ParsePackageSpec(cl.Host() + "/u/r:1.0.0")
			tag, err := cl.GetTag(context.Background(), spec)
			if c.want == "" {
				if err != nil || !tag.Entry.Meta.Equal(entry.Meta) {
					t.Fatalf("honest server: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatal("token in error message")
			}
		})
	}
}

// fakeRegistry serves h over TLS on 127.0.0.1 until the test ends, and
// returns a client of it with options o (and the server's certificate as
// its CA bundle).
func fakeRegistry(t *testing.T, h http.HandlerFunc, o Options) *Client {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	o.CABundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cl, err := New(strings.TrimPrefix(srv.URL, "https://"), o)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func send(w http.ResponseWriter, digest string, n int, typ string, body []byte) {
	if digest != "" {
		w.Header().Set("Content-Digest", digest)
	}
	w.Header().Set("Content-Length", strconv.Itoa(n))
	if typ != "" {
		w.Header().Set("Content-Type", typ)
	} else {
		w.Header()["Content-Type"] = nil // suppress sniffing
	}
	w.WriteHeader(200)
	w.Write(body)
}

// TestFetchBundleTamperedBody: a registry that serves other bytes than the
// digest it announces (and the tag names) fails the fetch, and nothing of
// those bytes is left in the cache; the honest body is cached.
func TestFetchBundleTamperedBody(t *testing.T) {
	good := bytes.Repeat([]byte("wasm"), 1<<19) // 2 MiB: several pipeline chunks
	evil := bytes.Clone(good)
	evil[len(evil)-1] ^= 1
	sum, n := types.Compute(good)
	entry := types.Entry{Meta: types.Meta{Digest: sum, Length: n, Type: types.WasmType}}
	tagBody, _ := entry.MarshalJSON()
	tagSum, _ := types.Compute(tagBody)
	for _, c := range []struct {
		name string
		body []byte
		want string
	}{{"honest", good, ""}, {"tampered", evil, "content digest mismatch"}} {
		t.Run(c.name, func(t *testing.T) {
			cl := fakeRegistry(t, func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/tree") {
					send(w, sum.String(), len(c.body), types.WasmType, c.body)
					return
				}
				send(w, tagSum.String(), len(tagBody), types.EntryType, tagBody)
			}, Options{})
			spec, _ := ParsePackageSpec(cl.Host() + "/u/r:1.0.0")
			cache := &Cache{Dir: t.TempDir()}
			_, err := cl.FetchBundle(context.Background(), spec, cache)
			var files []string
			filepath.WalkDir(cache.Dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				if len(files) != 0 {
					t.Fatalf("tampered body left in the cache: %v", files)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, _ := cache.of(spec.Host).path(entry.Meta)
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, good) || len(files) != 1 {
				t.Fatalf("cache: %v, %d files", err, len(files))
			}
		})
	}
}
