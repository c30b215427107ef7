package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/enarx-go/enarx/internal/oidctest"
)

// TestNotBeforeSkew: a token is refused until 60 s before its "nbf", the
// skew allowed for "exp" (go-oidc alone took it up to 4 minutes early).
func TestNotBeforeSkew(t *testing.T) {
	e := newEnv(t)
	e.setup("alice", testSubject, e.token, nil)
	for _, c := range []struct {
		nbf  time.Duration
		code int
	}{
		{-time.Hour, 200},
		{20 * time.Second, 200},
		{3 * time.Minute, 401},
		{10 * time.Minute, 401},
	} {
		tok := e.mint(oidctest.Claims{Subject: testSubject, Scope: oidctest.AllScopes,
			Extra: map[string]any{"nbf": time.Now().Add(c.nbf).Unix()}})
		if r := e.req(e.anon, "GET", "/alice", tok, nil, nil); r.code != c.code {
			t.Errorf("nbf now%+v: %d (%s), want %d", c.nbf, r.code, r.body, c.code)
		}
	}
}

// TestKeyFetchDoesNotBlockKnownKeys: while the issuer's JWKS endpoint
// hangs, a token naming a key the server already has verifies at once. A
// fetch used to hold the key set's lock for as long as it took (up to its
// 30 s timeout), so anyone sending tokens with an unknown kid (one fetch
// per 10 s) stopped every authenticated request while the issuer was slow
// or unreachable.
func TestKeyFetchDoesNotBlockKnownKeys(t *testing.T) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &priv.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	var hang atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			entered <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write(set)
	}))
	defer srv.Close()
	defer close(release)
	k := newJWKSKeySet(srv.URL, srv.Client())
	start := time.Now()
	k.now = func() time.Time { return start }
	claims := map[string]any{"sub": "s"}
	good := oidctest.SignToken(t, priv, "k1", claims)
	if _, err := k.VerifySignature(t.Context(), good); err != nil {
		t.Fatal(err)
	}
	hang.Store(true)
	k.mu.Lock()
	k.now = func() time.Time { return start.Add(defaultJWKSMinInterval) } // an unknown kid may fetch again
	k.mu.Unlock()
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	go k.VerifySignature(context.Background(), oidctest.SignToken(t, other, "unknown", claims)) // fetches, and hangs
	select {
	case <-entered:
	case <-time.After(20 * time.Second): // hang guard only
		t.Fatal("a token with an unknown kid did not fetch the key set")
	}
	done := make(chan error, 1)
	go func() { _, err := k.VerifySignature(context.Background(), good); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("known key during a hanging fetch: %v", err)
		}
	case <-time.After(20 * time.Second): // hang guard only
		t.Fatal("a token of a known key waits for a hanging key set fetch")
	}
}
