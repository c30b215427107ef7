package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// RegistryScopes grant full management of the user's Drawbridge users,
// repositories and tags (what upstream's CLI asks for).
var RegistryScopes = []string{"manage:drawbridge_users", "manage:drawbridge_repositories", "manage:drawbridge_tags"}

// DefaultScopes are the scopes of an interactive login: OpenID plus
// RegistryScopes.
var DefaultScopes = append([]string{"openid", "profile"}, RegistryScopes...)

// MaxIssuerResponseSize bounds every response body read from the issuer
// (discovery, device authorization, token, userinfo): golang.org/x/oauth2
// stops at 1 MiB by itself, but go-oidc reads discovery and userinfo
// bodies whole, so an issuer that sent an endless body grew enarx's memory
// until the system killed it.
const MaxIssuerResponseSize = 1 << 20

// IssuerTimeout bounds one request to the issuer, body included (an issuer
// that accepted the connection and then sent nothing, or a byte now and
// then, held the command forever; polling in the device flow makes a new
// request each time). A variable for tests.
var IssuerTimeout = time.Minute

// LoginConfig configures an OAuth 2.0 device authorization grant (RFC 8628)
// against an OIDC issuer.
type LoginConfig struct {
	Issuer   string   // OIDC issuer URL; discovery finds the device endpoint
	ClientID string   // public client id registered at the issuer
	Audience string   // "https://<store host>/", the API the token is for
	Scopes   []string // nil ⇒ DefaultScopes
	// HTTPClient talks to the issuer (nil ⇒ http.DefaultClient). Every
	// request is made through issuerClient: https only (plain http to a
	// loopback address only), bodies of at most MaxIssuerResponseSize,
	// IssuerTimeout per request.
	HTTPClient *http.Client
	// Prompt tells the user where to go and which code to enter. Required.
	Prompt func(verificationURI, userCode, verificationURIComplete string)
}

// DeviceLogin runs the device flow: discovery, device authorization, then
// polling the token endpoint at the server's interval (backing off on
// slow_down) until the user approves, denies, the code expires or ctx ends.
func DeviceLogin(ctx context.Context, c LoginConfig) (*oauth2.Token, error) {
	if c.Prompt == nil {
		return nil, errors.New("device login: no prompt function")
	}
	ctx = issuerContext(ctx, c.HTTPClient)
	p, err := discover(ctx, c.Issuer)
	if err != nil {
		return nil, err
	}
	ep := p.Endpoint()
	if ep.DeviceAuthURL == "" {
		return nil, fmt.Errorf("OIDC issuer %s does not offer the device flow (no device_authorization_endpoint)", c.Issuer)
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = DefaultScopes
	}
	conf := &oauth2.Config{ClientID: c.ClientID, Endpoint: ep, Scopes: scopes}
	var opts []oauth2.AuthCodeOption
	if c.Audience != "" {
		opts = append(opts, oauth2.SetAuthURLParam("audience", c.Audience))
	}
	da, err := conf.DeviceAuth(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("device authorization at %s: %w", ep.DeviceAuthURL, err)
	}
	c.Prompt(da.VerificationURI, da.UserCode, da.VerificationURIComplete)
	tok, err := conf.DeviceAccessToken(ctx, da, opts...)
	if err != nil {
		return nil, fmt.Errorf("waiting for device approval: %w", err)
	}
	if tok.AccessToken == "" {
		return nil, errors.New("token endpoint returned no access token")
	}
	return tok, nil
}

// ClientCredentialsLogin obtains a token with the OAuth 2.0 client
// credentials grant (for automation: upstream's `--oidc-flow client` with
// ENARX_OIDC_CLIENT_SECRET). The token endpoint comes from discovery.
func ClientCredentialsLogin(ctx context.Context, c LoginConfig, secret string) (*oauth2.Token, error) {
	if secret == "" {
		return nil, errors.New("the client credentials flow needs a client secret (ENARX_OIDC_CLIENT_SECRET)")
	}
	ctx = issuerContext(ctx, c.HTTPClient)
	p, err := discover(ctx, c.Issuer)
	if err != nil {
		return nil, err
	}
	scopes := c.Scopes
	if scopes == nil {
		scopes = RegistryScopes // no openid/profile: there is no user
	}
	cc := clientcredentials.Config{
		ClientID: c.ClientID, ClientSecret: secret, TokenURL: p.Endpoint().TokenURL, Scopes: scopes,
		AuthStyle: oauth2.AuthStyleInParams, // upstream sends the secret in the body
	}
	if c.Audience != "" {
		cc.EndpointParams = url.Values{"audience": {c.Audience}}
	}
	tok, err := cc.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("client credentials token from %s: %w", cc.TokenURL, err)
	}
	return tok, nil
}

// Subject asks the issuer's userinfo endpoint whose token this is and returns
// the OIDC subject (what a Drawbridge user record stores).
func Subject(ctx context.Context, issuer, accessToken string, hc *http.Client) (string, error) {
	ctx = issuerContext(ctx, hc)
	p, err := discover(ctx, issuer)
	if err != nil {
		return "", err
	}
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: "Bearer"}))
	if err != nil {
		return "", fmt.Errorf("OIDC userinfo: %w", err)
	}
	if strings.TrimSpace(ui.Subject) == "" {
		return "", errors.New("OIDC userinfo returned an empty subject")
	}
	return ui.Subject, nil
}

// issuerContext returns ctx with issuerClient(hc) as the client of go-oidc
// and golang.org/x/oauth2.
func issuerContext(ctx context.Context, hc *http.Client) context.Context {
	ic := issuerClient(hc)
	ctx = oidc.ClientContext(ctx, ic)
	return context.WithValue(ctx, oauth2.HTTPClient, ic)
}

// issuerClient returns a copy of hc (nil ⇒ http.DefaultClient) whose
// requests go to https URLs only (plain http only to a loopback address,
// as drawbridge requires of its issuer), whose response bodies end in an
// error past MaxIssuerResponseSize and which gives up on a request after
// IssuerTimeout. The checks sit in the transport, so they apply to the
// endpoints discovery names and to redirects as well as to the issuer URL:
// over plain http a network attacker would read the access token (sent to
// userinfo) and the client secret (sent to the token endpoint).
func issuerClient(hc *http.Client) *http.Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := *hc
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c.Transport = issuerTransport{base}
	if c.Timeout <= 0 || c.Timeout > IssuerTimeout {
		c.Timeout = IssuerTimeout
	}
	return &c
}

type issuerTransport struct{ base http.RoundTripper }

func (t issuerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if u := req.URL; u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		if req.Body != nil {
			req.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, fmt.Errorf("OIDC issuer: refusing %s: only https URLs are used (plain http only on loopback)", u.Redacted())
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{r: io.LimitReader(resp.Body, MaxIssuerResponseSize+1), c: resp.Body, url: req.URL.Redacted()}
	return resp, nil
}

// limitedBody fails a body longer than MaxIssuerResponseSize.
type limitedBody struct {
	r   io.Reader
	c   io.Closer
	n   int64
	url string
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > MaxIssuerResponseSize {
		return 0, fmt.Errorf("OIDC issuer: response from %s is longer than the limit of %d bytes", b.url, MaxIssuerResponseSize)
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.c.Close() }

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// discover runs OIDC discovery, accepting the issuer with or without a
// trailing slash (upstream writes "https://auth.profian.com/"; providers
// differ in which spelling their discovery document uses).
func discover(ctx context.Context, issuer string) (*oidc.Provider, error) {
	alt := issuer + "/"
	if strings.HasSuffix(issuer, "/") {
		alt = strings.TrimSuffix(issuer, "/")
	}
	p, err := oidc.NewProvider(ctx, issuer)
	if err == nil {
		return p, nil
	}
	if p, err2 := oidc.NewProvider(ctx, alt); err2 == nil {
		return p, nil
	}
	return nil, fmt.Errorf("OIDC discovery at %s: %w", issuer, err)
}

// SubjectFromJWT returns the unverified "sub" claim of a JWT access token.
// It is only a fallback for issuers without a userinfo endpoint: the registry
// verifies the token itself and rejects a user record whose subject differs.
func SubjectFromJWT(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("access token is not a JWT; cannot learn the subject")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return "", fmt.Errorf("access token payload: %w", err)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", fmt.Errorf("access token payload: %w", err)
	}
	if claims.Sub == "" {
		return "", errors.New("access token has no subject")
	}
	return claims.Sub, nil
}
