package shim

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// tokenCatcher is an HTTPS server, trusted through the runtime options' CA
// bundle as a publicly trusted one would be through the system roots, that
// records the Authorization headers it receives: a registry the node's
// operator did not give the token to, named by a pod's ENARX_PACKAGE.
type tokenCatcher struct {
	srv    *httptest.Server
	ca     string
	mu     sync.Mutex
	auth   []string
	called int
}

func startTokenCatcher(t *testing.T) *tokenCatcher {
	t.Helper()
	c := &tokenCatcher{}
	c.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.called++
		if a := r.Header.Get("Authorization"); a != "" {
			c.auth = append(c.auth, a)
		}
		c.mu.Unlock()
		http.NotFound(w, r)
	}))
	t.Cleanup(c.srv.Close)
	c.ca = filepath.Join(t.TempDir(), "ca.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.srv.Certificate().Raw})
	if err := os.WriteFile(c.ca, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *tokenCatcher) host() string { return strings.TrimPrefix(c.srv.URL, "https://") }

func (c *tokenCatcher) seen() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.called, append([]string(nil), c.auth...)
}

func packageSpec(pkg string) *specs.Spec {
	return &specs.Spec{Process: &specs.Process{Args: []string{"app"}, Env: []string{PackageEnv + "=" + pkg}}}
}

// TestPackageTokenStaysWithItsRegistry: the runtime options' Drawbridge
// token is the node operator's credential for its registries; a pod chooses
// ENARX_PACKAGE, so a pod that names a registry of its own must not
// receive the token. Options with a token but no drawbridge_hosts (the
// registries it is for) are refused, and a package on another host than
// those is refused before anything is sent.
func TestPackageTokenStaysWithItsRegistry(t *testing.T) {
	const secret = "node-operator-secret-token"
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	evil := startTokenCatcher(t)
	pkg := evil.host() + "/alice/hello:1.0.0"
	ctx := context.Background()

	for _, o := range []*Options{
		// A token with no registries named for it.
		{PackageOptions: PackageOptions{DrawbridgeCABundle: evil.ca, DrawbridgeTokenFile: tok, NoPackageCache: true}},
		// A token for another registry than the pod names.
		{PackageOptions: PackageOptions{DrawbridgeCABundle: evil.ca, DrawbridgeTokenFile: tok, NoPackageCache: true,
			DrawbridgeHosts: []string{"drawbridge.example.com"}}},
	} {
		_, err := loadPackage(ctx, pkg, packageSpec(pkg), o)
		if err == nil {
			t.Errorf("options %+v: a package on %s was fetched", o.PackageOptions, evil.host())
		}
		t.Logf("options %+v: %v", o.PackageOptions, err)
	}
	if n, auth := evil.seen(); len(auth) != 0 || n != 0 {
		t.Fatalf("the pod's registry got %d requests, with Authorization headers %q: the node's token left for a registry the pod chose", n, auth)
	}

	// Named in drawbridge_hosts: the token goes there (the registry says
	// 404, so the fetch fails, after the request).
	o := &Options{PackageOptions: PackageOptions{DrawbridgeCABundle: evil.ca, DrawbridgeTokenFile: tok, NoPackageCache: true,
		DrawbridgeHosts: []string{evil.host()}}}
	if _, err := loadPackage(ctx, pkg, packageSpec(pkg), o); err == nil || !strings.Contains(err.Error(), "fetching the Drawbridge package") {
		t.Fatalf("allowed registry: %v", err)
	}
	if _, auth := evil.seen(); len(auth) == 0 || auth[0] != "Bearer "+secret {
		t.Fatalf("allowed registry: Authorization headers %q, want the token", auth)
	}
}

// TestPackageHostMatch: drawbridge_hosts match case-insensitively, with
// ":443" the default port, and nothing else.
func TestPackageHostMatch(t *testing.T) {
	o := &PackageOptions{DrawbridgeHosts: []string{"Drawbridge.Example.com", "reg.example.com:8443"}}
	for host, ok := range map[string]bool{
		"drawbridge.example.com":          true,
		"drawbridge.example.com:443":      true,
		"reg.example.com:8443":            true,
		"reg.example.com":                 false,
		"drawbridge.example.com:8443":     false,
		"drawbridge.example.com.evil.com": false,
		"evil.com":                        false,
	} {
		if err := o.allowHost(host); (err == nil) != ok {
			t.Errorf("%s: allowed %v, want %v (%v)", host, err == nil, ok, err)
		}
	}
}
