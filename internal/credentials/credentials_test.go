package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestID(t *testing.T) {
	id, err := ID("https://auth.profian.com/", "store.profian.com")
	if err != nil || id != "auth.profian.com-store.profian.com" {
		t.Fatalf("%q %v", id, err)
	}
	id, err = ID("https://127.0.0.1:9000/issuer", "localhost:8443")
	if err != nil || id != "127.0.0.1:9000-localhost:8443" {
		t.Fatalf("%q %v", id, err)
	}
	for _, bad := range [][2]string{{"not a url", "h"}, {"https://a/", ""}, {"https://a/", "../x"}, {"https://a/", "x/y"}} {
		if _, err := ID(bad[0], bad[1]); err == nil {
			t.Errorf("ID(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func TestFileStore(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "enarx", "credentials")
	s := FileStore{Dir: dir}
	if _, err := s.Get(ctx, "a-b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if err := s.Put(ctx, "a-b", "tok1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a-b", "tok2"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "a-b")
	if err != nil || got != "tok2" {
		t.Fatalf("%q %v", got, err)
	}
	st, _ := os.Stat(filepath.Join(dir, "a-b"))
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %o", st.Mode().Perm())
	}
	dst, _ := os.Stat(dir)
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %o", dst.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("leftover temp files: %v", ents)
	}
	// A token others can read is refused, not used.
	os.Chmod(filepath.Join(dir, "a-b"), 0o644)
	if _, err := s.Get(ctx, "a-b"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable token: %v", err)
	}
	if err := s.Put(ctx, "../evil", "x"); err == nil {
		t.Fatal("path-like id accepted")
	}
}

func TestHelper(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	script := filepath.Join(dir, "helper")
	// A helper storing secrets in files next to itself; "show" of an
	// unknown id fails like real helpers do.
	os.WriteFile(script, []byte(`#!/bin/sh
set -e
case "$1" in
show) cat "`+dir+`/$2" ;;
insert) cat > "`+dir+`/$2" ;;
*) echo "bad op $1" >&2; exit 2 ;;
esac
`), 0o700)
	h := Helper{Program: script}
	if _, err := h.Get(ctx, "a-b"); err == nil {
		t.Fatal("show of unknown id succeeded")
	}
	if err := h.Put(ctx, "a-b", "secret"); err != nil {
		t.Fatal(err)
	}
	got, err := h.Get(ctx, "a-b")
	if err != nil || got != "secret" {
		t.Fatalf("%q %v", got, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "a-b"))
	if string(b) != "secret" {
		t.Fatalf("helper got %q on stdin", b)
	}
	if _, err := h.Get(ctx, "-rf"); err == nil {
		t.Fatal("option-like id accepted")
	}
}

// deviceIdP is a stand-in for an external OIDC provider offering the device
// flow: it answers "authorization_pending" twice, then "slow_down", then
// issues the token.
type deviceIdP struct {
	srv      *httptest.Server
	mu       sync.Mutex
	polls    int
	audience string
	scope    string
}

func newDeviceIdP(t *testing.T) *deviceIdP {
	p := &deviceIdP{}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	iss := p.srv.URL
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": iss + "/token",
			"device_authorization_endpoint": iss + "/device", "jwks_uri": iss + "/jwks", "userinfo_endpoint": iss + "/userinfo",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/device", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		p.mu.Lock()
		p.audience, p.scope = r.Form.Get("audience"), r.Form.Get("scope")
		p.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{
			"device_code": "dev-code", "user_code": "ABCD-EFGH", "verification_uri": iss + "/activate",
			"expires_in": 60, "interval": 1,
		})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.Form.Get("device_code") != "dev-code" || r.Form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		p.mu.Lock()
		p.polls++
		n := p.polls
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case n <= 1:
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "authorization_pending"})
		case n == 2:
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "slow_down"})
		default:
			json.NewEncoder(w).Encode(map[string]any{"access_token": "the-token", "token_type": "Bearer", "expires_in": 3600})
		}
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer the-token" {
			w.WriteHeader(401)
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"sub": "test|subject"})
	})
	return p
}

func TestDeviceLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("polls with the server's interval (a few seconds)")
	}
	p := newDeviceIdP(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var prompted string
	tok, err := DeviceLogin(ctx, LoginConfig{
		Issuer: p.srv.URL, ClientID: "cli", Audience: "https://localhost:8443/",
		Prompt: func(uri, code, _ string) { prompted = uri + " " + code },
	})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "the-token" {
		t.Fatalf("token %q", tok.AccessToken)
	}
	if prompted != p.srv.URL+"/activate ABCD-EFGH" {
		t.Fatalf("prompt %q", prompted)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.polls != 3 {
		t.Fatalf("%d polls, want 3 (pending, slow_down, success)", p.polls)
	}
	if p.audience != "https://localhost:8443/" || !strings.Contains(p.scope, "manage:drawbridge_tags") {
		t.Fatalf("audience %q scope %q", p.audience, p.scope)
	}
	sub, err := Subject(ctx, p.srv.URL, tok.AccessToken, nil)
	if err != nil || sub != "test|subject" {
		t.Fatalf("subject %q %v", sub, err)
	}
	if _, err := Subject(ctx, p.srv.URL, "bad-token", nil); err == nil {
		t.Fatal("userinfo accepted a bad token")
	}
}

func TestDeviceLoginCancelled(t *testing.T) {
	p := newDeviceIdP(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, err := DeviceLogin(ctx, LoginConfig{Issuer: p.srv.URL, ClientID: "cli", Prompt: func(string, string, string) { cancel() }})
	if err == nil {
		t.Fatal("cancelled login succeeded")
	}
}

func TestSubjectFromJWT(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tok := enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"sub":"a|b"}`)) + ".sig"
	if s, err := SubjectFromJWT(tok); err != nil || s != "a|b" {
		t.Fatalf("%q %v", s, err)
	}
	for _, bad := range []string{"x", "a.b", "a." + enc([]byte(`{}`)) + ".c", "a.!!.c"} {
		if _, err := SubjectFromJWT(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestFileStoreExistingDir: a credentials directory that already exists
// with a wider mode is restricted to 0700 when a token is stored, and a
// token file that is not the user's own (planted, or a symbolic link to
// one) is refused.
func TestFileStoreExistingDir(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "credentials")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o777)
	s := FileStore{Dir: dir}
	if err := s.Put(ctx, "a-b", "tok"); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Fatalf("existing dir left at mode %o", st.Mode().Perm())
	}
	if os.Geteuid() != 0 {
		return // chown needs root
	}
	planted := filepath.Join(t.TempDir(), "planted")
	os.WriteFile(planted, []byte("someone-elses-token\n"), 0o600)
	if err := os.Chown(planted, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "a-b"))
	if err := os.Symlink(planted, filepath.Join(dir, "a-b")); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Get(ctx, "a-b"); err == nil {
		t.Fatalf("another user's token file was used through a symbolic link: %q", tok)
	}
	os.Remove(filepath.Join(dir, "a-b"))
	if err := os.Link(planted, filepath.Join(dir, "a-b")); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Get(ctx, "a-b"); err == nil {
		t.Fatalf("another user's token file was used: %q", tok)
	}
}

// TestFileStoreNotRegular: a FIFO or a symbolic link where a token should
// be is refused at once (reading a FIFO would wait for a writer).
func TestFileStoreNotRegular(t *testing.T) {
	dir := t.TempDir()
	s := FileStore{Dir: dir}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "fifo"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Get of a FIFO: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real"), []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "link"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Get through a symbolic link: %v", err)
	}
}
