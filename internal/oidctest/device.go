package oidctest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// DeviceFlow serves the OAuth 2.0 device authorization grant (RFC 8628) on
// a Provider: /oauth/device/code, /oauth/token and /userinfo, as advertised
// by discovery. Each authorization is "approved" after Pending polls; the
// token is minted for the claims given to EnableDeviceFlow, with the
// audience the client asked for (as Auth0 does with its audience
// parameter).
type DeviceFlow struct {
	// Pending is how many polls answer authorization_pending before the
	// token is issued.
	Pending int

	p      *Provider
	t      testing.TB
	claims Claims

	mu           sync.Mutex
	clientSecret string
	codes        map[string]*deviceCode
	issued       map[string]string // access token → subject
	requests     []DeviceRequest
}

// DeviceRequest is one recorded device authorization request.
type DeviceRequest struct{ ClientID, Scope, Audience string }

type deviceCode struct {
	audience string
	polls    int
}

// EnableDeviceFlow adds the device-flow endpoints to p. Tokens carry the
// claims c (Subject, Scope, …); Audience defaults to the requested one.
func (p *Provider) EnableDeviceFlow(t testing.TB, c Claims) *DeviceFlow {
	d := &DeviceFlow{Pending: 1, p: p, t: t, claims: c, codes: map[string]*deviceCode{}, issued: map[string]string{}}
	p.Handle("POST /oauth/device/code", http.HandlerFunc(d.authorize))
	p.Handle("POST /oauth/token", http.HandlerFunc(d.token))
	p.Handle("GET /userinfo", http.HandlerFunc(d.userinfo))
	return d
}

func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (d *DeviceFlow) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Form.Get("client_id") == "" {
		writeJSON(w, 400, map[string]string{"error": "invalid_request"})
		return
	}
	code := randomHex()
	d.mu.Lock()
	d.codes[code] = &deviceCode{audience: r.Form.Get("audience")}
	d.requests = append(d.requests, DeviceRequest{r.Form.Get("client_id"), r.Form.Get("scope"), r.Form.Get("audience")})
	d.mu.Unlock()
	writeJSON(w, 200, map[string]any{
		"device_code":               code,
		"user_code":                 "WDJB-MJHT",
		"verification_uri":          d.p.Issuer + "/activate",
		"verification_uri_complete": d.p.Issuer + "/activate?user_code=WDJB-MJHT",
		"expires_in":                300,
		"interval":                  1,
	})
}

// AllowClientCredentials makes the token endpoint also serve the client
// credentials grant to clients presenting secret (in the form body).
func (d *DeviceFlow) AllowClientCredentials(secret string) {
	d.mu.Lock()
	d.clientSecret = secret
	d.mu.Unlock()
}

func (d *DeviceFlow) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err == nil && r.Form.Get("grant_type") == "client_credentials" {
		d.clientCredentials(w, r)
		return
	}
	if r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" {
		writeJSON(w, 400, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	d.mu.Lock()
	dc, ok := d.codes[r.Form.Get("device_code")]
	if !ok {
		d.mu.Unlock()
		writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
		return
	}
	dc.polls++
	if dc.polls <= d.Pending {
		d.mu.Unlock()
		writeJSON(w, 400, map[string]string{"error": "authorization_pending"})
		return
	}
	delete(d.codes, r.Form.Get("device_code"))
	c := d.claims
	if len(c.Audience) == 0 && dc.audience != "" {
		c.Audience = []string{dc.audience}
	}
	d.mu.Unlock()
	tok := d.p.Token(d.t, c)
	d.mu.Lock()
	d.issued[tok] = c.Subject
	d.mu.Unlock()
	writeJSON(w, 200, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600, "scope": c.Scope})
}

func (d *DeviceFlow) clientCredentials(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	secret := d.clientSecret
	d.mu.Unlock()
	if secret == "" || r.Form.Get("client_id") == "" || r.Form.Get("client_secret") != secret {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	c := d.claims
	if len(c.Audience) == 0 && r.Form.Get("audience") != "" {
		c.Audience = []string{r.Form.Get("audience")}
	}
	tok := d.p.Token(d.t, c)
	writeJSON(w, 200, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
}

func (d *DeviceFlow) userinfo(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	d.mu.Lock()
	sub, known := d.issued[tok]
	d.mu.Unlock()
	if !ok || !known {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	writeJSON(w, 200, map[string]string{"sub": sub})
}

// Requests returns the device authorization requests seen so far.
func (d *DeviceFlow) Requests() []DeviceRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DeviceRequest(nil), d.requests...)
}
