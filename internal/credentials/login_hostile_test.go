package credentials

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// hostileIdP is an issuer (on loopback, plain http) whose endpoints the
// test replaces. Requests are counted per path.
type hostileIdP struct {
	srv  *httptest.Server
	mux  *http.ServeMux
	mu   sync.Mutex
	hits map[string]int
	// Endpoints discovery names; empty means this server's.
	tokenURL, userinfoURL string
	// discoveryPad is appended to the discovery document (whitespace:
	// still valid JSON).
	discoveryPad int
}

func newHostileIdP(t *testing.T) *hostileIdP {
	p := &hostileIdP{mux: http.NewServeMux(), hits: map[string]int{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits[r.URL.Path]++
		p.mu.Unlock()
		p.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	iss := p.srv.URL
	p.mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		tok, ui := p.tokenURL, p.userinfoURL
		if tok == "" {
			tok = iss + "/token"
		}
		if ui == "" {
			ui = iss + "/userinfo"
		}
		b, _ := json.Marshal(map[string]any{
			"issuer": iss, "authorization_endpoint": iss + "/authorize", "token_endpoint": tok,
			"device_authorization_endpoint": iss + "/device", "jwks_uri": iss + "/jwks", "userinfo_endpoint": ui,
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
		// Chunked: no Content-Length announces the size.
		pad := []byte(strings.Repeat(" ", 64<<10))
		for n := 0; n < p.discoveryPad; n += len(pad) {
			if _, err := w.Write(pad); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	p.mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": "the-token", "token_type": "Bearer", "expires_in": 3600})
	})
	p.mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"sub": "test|subject"})
	})
	return p
}

func (p *hostileIdP) hit(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

// A discovery document or userinfo answer larger than
// MaxIssuerResponseSize is an error, not read into memory whole (an
// endless one grew the process until it was killed).
func TestIssuerResponseTooLarge(t *testing.T) {
	ctx := context.Background()
	p := newHostileIdP(t)
	p.discoveryPad = 4 * MaxIssuerResponseSize
	_, err := ClientCredentialsLogin(ctx, LoginConfig{Issuer: p.srv.URL, ClientID: "cli"}, "secret")
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("discovery document of %d bytes: %v", 4*MaxIssuerResponseSize, err)
	}
	if p.hit("/token") != 0 {
		t.Fatal("login went on after an oversized discovery document")
	}

	p.discoveryPad = 0
	p.mux.HandleFunc("/big-userinfo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"sub":"` + strings.Repeat("a", 2*MaxIssuerResponseSize) + `"}`))
	})
	p.userinfoURL = p.srv.URL + "/big-userinfo"
	if sub, err := Subject(ctx, p.srv.URL, "the-token", nil); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("userinfo of %d bytes: subject of %d bytes, %v", 2*MaxIssuerResponseSize, len(sub), err)
	}
}

// An issuer that stops answering fails the request after IssuerTimeout
// instead of holding the command (the client credentials flow runs
// unattended).
func TestIssuerStalls(t *testing.T) {
	old := IssuerTimeout
	IssuerTimeout = 200 * time.Millisecond
	t.Cleanup(func() { IssuerTimeout = old })
	p := newHostileIdP(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the server closes
	p.mux.HandleFunc("/stall-token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":`))
		w.(http.Flusher).Flush()
		<-release
	})
	p.tokenURL = p.srv.URL + "/stall-token"
	done := make(chan error, 1)
	go func() {
		_, err := ClientCredentialsLogin(context.Background(), LoginConfig{Issuer: p.srv.URL, ClientID: "cli"}, "secret")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a token endpoint that never finished its answer gave a token")
		}
	case <-time.After(30 * time.Second): // hang guard
		t.Fatal("login hung on a token endpoint that stopped sending")
	}
}

// listenLoopback2 listens on 127.0.0.2: a plain http address that is not
// one isLoopback accepts, standing in for a remote plain-http endpoint.
func listenLoopback2(t *testing.T, h http.Handler) *httptest.Server {
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	s := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// Neither the client secret nor the access token goes over plain http to
// a host that is not loopback: not to the issuer URL, and not to an
// endpoint its discovery document names.
func TestIssuerPlainHTTPRefused(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var leaked []string
	sniffer := listenLoopback2(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		leaked = append(leaked, r.URL.Path+" "+r.Header.Get("Authorization")+" "+r.Form.Get("client_secret"))
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	}))

	p := newHostileIdP(t)
	p.tokenURL = sniffer.URL + "/token"
	if _, err := ClientCredentialsLogin(ctx, LoginConfig{Issuer: p.srv.URL, ClientID: "cli"}, "the-secret"); err == nil ||
		!strings.Contains(err.Error(), "only https") {
		t.Errorf("plain http token endpoint: %v", err)
	}
	p.tokenURL = ""
	p.userinfoURL = sniffer.URL + "/userinfo"
	if _, err := Subject(ctx, p.srv.URL, "the-token", nil); err == nil || !strings.Contains(err.Error(), "only https") {
		t.Errorf("plain http userinfo endpoint: %v", err)
	}
	if _, err := Subject(ctx, sniffer.URL, "the-token", nil); err == nil || !strings.Contains(err.Error(), "only https") {
		t.Errorf("plain http issuer: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) != 0 {
		t.Fatalf("requests over plain http to a non-loopback host: %q", leaked)
	}
	// The loopback issuer itself (plain http) still works.
	p.userinfoURL = ""
	if sub, err := Subject(ctx, p.srv.URL, "the-token", nil); err != nil || sub != "test|subject" {
		t.Fatalf("loopback issuer over http: %q %v", sub, err)
	}
}
