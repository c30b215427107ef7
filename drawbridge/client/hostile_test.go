package client

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
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
			srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { c.serve(w) }))
			defer srv.Close()
			ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
			cl, err := New(strings.TrimPrefix(srv.URL, "https://"), Options{CABundle: ca, Token: "secret"})
			if err != nil {
				t.Fatal(err)
			}
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
