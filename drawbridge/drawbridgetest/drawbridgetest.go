// Package drawbridgetest runs the real Drawbridge registry in-process for
// tests of its clients: the HTTP API's Handler (drawbridge/internal/httpapi)
// on a directory store, over TLS on 127.0.0.1, served as drawbridge/server's
// Run serves it, verifying tokens from a test OIDC provider. It is for tests
// only.
package drawbridgetest

import (
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/internal/httpapi"
	"github.com/enarx-go/enarx/drawbridge/internal/store"
	"github.com/enarx-go/enarx/internal/oidctest"
)

// Registry is a running registry; the test's cleanup stops it.
type Registry struct {
	Host     string // 127.0.0.1:PORT
	CA       []byte // PEM of the server certificate, the one to trust
	StoreDir string
	Audience string // what tokens must name
	IDP      *oidctest.Provider
	Server   *httptest.Server
}

// Start starts a registry; configure, if given, adjusts the server before
// it starts (HTTP/2, say).
func Start(t testing.TB, configure ...func(*httptest.Server)) *Registry {
	t.Helper()
	idp := oidctest.New(t)
	dir := t.TempDir()
	fs, err := store.OpenFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	aud := "https://" + host + "/"
	tokens, err := httpapi.NewOIDCVerifier(context.Background(), idp.Issuer, aud, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := store.NewRegistry(fs)
	reg.Logger = logger
	h, err := httpapi.New(httpapi.Config{Registry: reg, Tokens: tokens, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = httpapi.Listener(ln) // as drawbridge's Run serves
	srv.Config.ConnContext = httpapi.ConnContext
	for _, f := range configure {
		f(srv)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &Registry{
		Host:     host,
		CA:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}),
		StoreDir: dir,
		Audience: aud,
		IDP:      idp,
		Server:   srv,
	}
}

// Token returns a token for subject with every drawbridge scope.
func (r *Registry) Token(t testing.TB, subject string) string {
	return r.IDP.Token(t, oidctest.Claims{Subject: subject, Audience: []string{r.Audience}, Scope: oidctest.AllScopes})
}
