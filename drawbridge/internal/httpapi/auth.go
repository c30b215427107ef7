package httpapi

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
)

// Claims is what the server uses from a verified access token.
type Claims struct {
	Subject string
	scopes  map[string]bool
}

// Scope levels and contexts (reference §3.2).
const (
	levelRead  = "read"
	levelWrite = "write"

	ctxUsers = "drawbridge_users"
	ctxRepos = "drawbridge_repositories"
	ctxTags  = "drawbridge_tags"
)

// HasScope reports whether the token grants level on context; "manage"
// grants both read and write.
func (c *Claims) HasScope(level, context string) bool {
	return c.scopes[level+":"+context] || c.scopes["manage:"+context]
}

// TokenVerifier verifies a bearer token and returns its claims.
type TokenVerifier interface {
	Verify(ctx context.Context, rawToken string) (*Claims, error)
}

// clockLeeway is how far past "exp" a token is still accepted (upstream
// uses jsonwebtoken's default of 60 s).
const clockLeeway = 60 * time.Second

// signingAlgs are the JWS algorithms accepted for access tokens.
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// jwsAlgs is signingAlgs for go-jose.
var jwsAlgs = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// OIDCVerifier verifies JWT access tokens from an OpenID Connect issuer
// with go-oidc: signature against the issuer's JWKS (see jwksKeySet: kept
// fresh, so rotated-in keys work at once and withdrawn keys stop working
// within minutes), issuer, audience, expiry and "nbf" (60 s leeway), and
// the presence of "iat", "sub" and a space-separated "scope" string.
type OIDCVerifier struct {
	v      *oidc.IDTokenVerifier
	issuer string
	keys   *jwksKeySet // nil for static keys
}

// NewOIDCVerifier runs discovery against issuer. client is used for
// discovery and for every later JWKS fetch (nil: a client with a 30 s
// timeout). The context only bounds discovery.
func NewOIDCVerifier(ctx context.Context, issuer, audience string, client *http.Client) (*OIDCVerifier, error) {
	if audience == "" {
		return nil, errors.New("an OIDC audience is required (--oidc-audience)")
	}
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("invalid OIDC issuer URL %q", issuer)
	}
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("OIDC issuer %q must use https", issuer)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	var p *oidc.Provider
	for _, iss := range issuerSpellings(issuer) {
		discCtx := oidc.ClientContext(ctx, client)
		if p, err = oidc.NewProvider(discCtx, iss); err == nil {
			issuer = iss
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("OIDC discovery at %s failed (check --oidc-issuer and network access): %w", issuer, err)
	}
	var claims struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&claims); err != nil || claims.JWKS == "" {
		return nil, fmt.Errorf("OIDC discovery at %s: no jwks_uri", issuer)
	}
	if ju, err := url.Parse(claims.JWKS); err != nil || (ju.Scheme != "https" && !isLoopback(ju.Hostname())) {
		return nil, fmt.Errorf("OIDC discovery at %s: jwks_uri %q must be an https URL", issuer, claims.JWKS)
	}
	keys := newJWKSKeySet(claims.JWKS, client)
	v := oidc.NewVerifier(issuer, keys, &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: signingAlgs,
		SkipIssuerCheck:      true, // checked below, modulo a trailing slash
		Now:                  func() time.Time { return time.Now().Add(-clockLeeway) },
	})
	return &OIDCVerifier{v: v, issuer: issuer, keys: keys}, nil
}

// NewStaticVerifier verifies tokens signed by fixed keys (dev mode only).
func NewStaticVerifier(issuer, audience string, keys ...crypto.PublicKey) *OIDCVerifier {
	v := oidc.NewVerifier(issuer, &oidc.StaticKeySet{PublicKeys: keys}, &oidc.Config{
		ClientID:             audience,
		SupportedSigningAlgs: signingAlgs,
		SkipIssuerCheck:      true,
		Now:                  func() time.Time { return time.Now().Add(-clockLeeway) },
	})
	return &OIDCVerifier{v: v, issuer: issuer}
}

// issuerSpellings returns issuer as given and with the trailing slash
// toggled: upstream normalises "https://host" to "https://host/", and
// providers differ in which one they put in discovery and tokens.
func issuerSpellings(issuer string) []string {
	if strings.HasSuffix(issuer, "/") {
		return []string{issuer, strings.TrimSuffix(issuer, "/")}
	}
	return []string{issuer, issuer + "/"}
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Verify implements TokenVerifier.
func (o *OIDCVerifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := o.v.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if strings.TrimSuffix(tok.Issuer, "/") != strings.TrimSuffix(o.issuer, "/") {
		return nil, fmt.Errorf("token issued by %q, not %q", tok.Issuer, o.issuer)
	}
	var c struct {
		Scope *string  `json:"scope"`
		IAT   *int64   `json:"iat"`
		Sub   *string  `json:"sub"`
		NBF   *float64 `json:"nbf"`
	}
	if err := tok.Claims(&c); err != nil {
		return nil, fmt.Errorf("token claims: %w", err)
	}
	if c.IAT == nil {
		return nil, errors.New(`token has no "iat" claim`)
	}
	// go-oidc accepts a token up to 5 minutes before its "nbf" (4 with
	// the shifted clock above); allow the same 60 s of skew as for "exp".
	if c.NBF != nil && time.Unix(int64(*c.NBF), 0).After(time.Now().Add(clockLeeway)) {
		return nil, fmt.Errorf("token not valid before %s", time.Unix(int64(*c.NBF), 0).UTC().Format(time.RFC3339))
	}
	if c.Sub == nil || *c.Sub == "" {
		return nil, errors.New(`token has no "sub" claim`)
	}
	if c.Scope == nil {
		return nil, errors.New(`token has no "scope" claim (a space-separated string)`)
	}
	cl := &Claims{Subject: *c.Sub, scopes: map[string]bool{}}
	for _, s := range strings.Fields(*c.Scope) {
		cl.scopes[s] = true
	}
	return cl, nil
}
