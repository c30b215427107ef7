// Package oidctest is an OpenID Connect provider for tests: discovery,
// a JWKS endpoint with RSA keys that can be rotated, and minting of signed
// JWT access tokens with any subject, audience, scope and expiry. It serves
// plain HTTP on 127.0.0.1 and trusts nothing; it exists so that other
// packages' tests can exercise real token verification (go-oidc) without an
// external identity provider. Extra endpoints (e.g. a device flow) can be
// added with Handle.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Provider is a running test OIDC provider.
type Provider struct {
	// Issuer is the issuer URL (http://127.0.0.1:PORT), also the base of
	// every endpoint.
	Issuer string

	srv     *httptest.Server
	mux     *http.ServeMux
	mu      sync.Mutex
	keys    []*key // published in the JWKS; keys[len-1] signs
	fetches atomic.Int64
}

type key struct {
	id   string
	priv *rsa.PrivateKey
}

// New starts a provider with one RSA-2048 key and stops it when the test
// ends.
func New(t testing.TB) *Provider {
	t.Helper()
	p := &Provider{mux: http.NewServeMux()}
	p.addKey(t)
	p.mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	p.mux.HandleFunc("GET /jwks", p.jwks)
	p.srv = httptest.NewServer(p.mux)
	p.Issuer = p.srv.URL
	t.Cleanup(p.srv.Close)
	return p
}

var keyCounter atomic.Int64

func (p *Provider) addKey(t testing.TB) *key {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: generating key: %v", err)
	}
	k := &key{id: fmt.Sprintf("key-%d", keyCounter.Add(1)), priv: priv}
	p.mu.Lock()
	p.keys = append(p.keys, k)
	p.mu.Unlock()
	return k
}

// Handle registers an extra endpoint on the provider's server.
func (p *Provider) Handle(pattern string, h http.Handler) { p.mux.Handle(pattern, h) }

// Rotate adds a new signing key and removes every older one from the
// JWKS: tokens signed before Rotate no longer verify once a verifier has
// refreshed its key set, and new tokens carry an unknown kid until it does.
func (p *Provider) Rotate(t testing.TB) {
	k := p.addKey(t)
	p.mu.Lock()
	p.keys = []*key{k}
	p.mu.Unlock()
}

// JWKSFetches is how many times the JWKS endpoint has been fetched.
func (p *Provider) JWKSFetches() int64 { return p.fetches.Load() }

func (p *Provider) discovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"issuer":                                p.Issuer,
		"jwks_uri":                              p.Issuer + "/jwks",
		"authorization_endpoint":                p.Issuer + "/authorize",
		"token_endpoint":                        p.Issuer + "/oauth/token",
		"device_authorization_endpoint":         p.Issuer + "/oauth/device/code",
		"userinfo_endpoint":                     p.Issuer + "/userinfo",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
	})
}

func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	p.fetches.Add(1)
	p.mu.Lock()
	set := jose.JSONWebKeySet{}
	for _, k := range p.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.id, Algorithm: "RS256", Use: "sig"})
	}
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(set)
}

// Claims are the claims of a minted token. Zero fields get defaults:
// Issuer = the provider, Expiry = now+1h, IssuedAt = now.
type Claims struct {
	Subject  string
	Audience []string
	Scope    string
	Issuer   string
	Expiry   time.Time
	IssuedAt time.Time
	// Extra claims, merged last (they may override the ones above).
	Extra map[string]any
}

// AllScopes is the scope string the enarx CLI requests.
const AllScopes = "openid manage:drawbridge_users manage:drawbridge_repositories manage:drawbridge_tags"

// Token mints an RS256 JWT signed with the current key.
func (p *Provider) Token(t testing.TB, c Claims) string {
	t.Helper()
	p.mu.Lock()
	k := p.keys[len(p.keys)-1]
	p.mu.Unlock()
	return SignToken(t, k.priv, k.id, p.claims(c))
}

func (p *Provider) claims(c Claims) map[string]any {
	now := time.Now()
	if c.Issuer == "" {
		c.Issuer = p.Issuer
	}
	if c.Expiry.IsZero() {
		c.Expiry = now.Add(time.Hour)
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	m := map[string]any{
		"iss":   c.Issuer,
		"sub":   c.Subject,
		"aud":   c.Audience,
		"scope": c.Scope,
		"exp":   c.Expiry.Unix(),
		"iat":   c.IssuedAt.Unix(),
	}
	for k, v := range c.Extra {
		m[k] = v
	}
	return m
}

// ForeignToken mints a token with the right claims but signed by a key the
// provider never published.
func (p *Provider) ForeignToken(t testing.TB, c Claims) string {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	kid := p.keys[len(p.keys)-1].id // same kid: only the signature is wrong
	p.mu.Unlock()
	return SignToken(t, priv, kid, p.claims(c))
}

// SignToken signs claims as an RS256 JWT with the given key and kid.
func SignToken(t testing.TB, priv *rsa.PrivateKey, kid string, claims map[string]any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatalf("oidctest: signer: %v", err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatalf("oidctest: signing: %v", err)
	}
	return tok
}
