package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/drawbridgetest"

	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/oidctest"
)

// testRegistry is the real Drawbridge server (drawbridgetest) with its CA
// in a file, for --ca-bundle.
type testRegistry struct {
	*drawbridgetest.Registry
	caFile string
}

// registryRepo isolates the user's directories, starts a registry and
// registers the user testuser and its repository name there, returning
// the registry, testuser's token and the repository (HOST/testuser/name).
func registryRepo(t *testing.T, name string) (*testRegistry, string, string) {
	t.Helper()
	isolateUserDirs(t)
	r := startRegistry(t)
	tok := r.Token(t, "test|subject")
	repo := r.Host + "/testuser/" + name
	r.must(t, tok, "user", "register", r.Host+"/testuser")
	r.must(t, tok, "repo", "register", repo)
	return r, tok, repo
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := drawbridgetest.Start(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, r.CA, 0o644); err != nil {
		t.Fatal(err)
	}
	return &testRegistry{Registry: r, caFile: ca}
}

// run executes an enarx registry command with the CA bundle (and token, if
// not empty) and returns exit code, stdout and stderr.
func (r *testRegistry) run(t *testing.T, token string, args ...string) (int, string, string) {
	t.Helper()
	full := append(args[:1:1], "--ca-bundle", r.caFile)
	if token != "" {
		full = append(full, "--insecure-auth-token", token)
	}
	full = append(full, args[1:]...)
	return execute(t, full...)
}

// must runs a command that must succeed and returns its stdout.
func (r *testRegistry) must(t *testing.T, token string, args ...string) string {
	t.Helper()
	code, out, errs := r.run(t, token, args...)
	if code != 0 {
		t.Fatalf("enarx %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

// fails runs a command that must fail with stderr containing want.
func (r *testRegistry) fails(t *testing.T, token, want string, args ...string) {
	t.Helper()
	code, _, errs := r.run(t, token, args...)
	if code == 0 || !strings.Contains(errs, want) {
		t.Fatalf("enarx %s: exit %d, stderr %q, want an error containing %q", strings.Join(args, " "), code, errs, want)
	}
}

// TestRegistryClientFlow is upstream's client test (enarx tests/client):
// users, repositories, publishing a file and a directory, info, errors —
// plus nested directories, private repositories, fetch and pinning.
func TestRegistryClientFlow(t *testing.T) {
	isolateUserDirs(t)
	r := startRegistry(t)
	tok := r.Token(t, "test|subject")
	u, repo := r.Host+"/testuser", r.Host+"/testuser/repo"

	r.fails(t, tok, "401 User `testuser` not found", "user", "info", u)
	r.fails(t, "", "not logged in", "user", "info", u)
	r.fails(t, "bad-token", "", "user", "register", u)
	r.must(t, tok, "user", "register", u)
	if out := r.must(t, tok, "user", "info", u); out != `{"subject":"test|subject"}`+"\n" {
		t.Fatalf("user info: %q", out)
	}
	r.fails(t, tok, "409 Already exists", "user", "register", u)

	r.fails(t, tok, "404 Repository does not exist", "repo", "info", repo)
	r.must(t, tok, "repo", "register", repo)
	if out := r.must(t, tok, "repo", "info", repo); out != `{"config":{"public":true},"tags":[]}`+"\n" {
		t.Fatalf("repo info: %q", out)
	}
	r.fails(t, tok, "404 Repository does not exist", "package", "info", repo+":1.0.0")
	// The server keeps upstream's wording; the client says what is missing.
	r.fails(t, tok, "no tag 1.0.0 in repository "+repo, "package", "info", repo+":1.0.0")
	r.fails(t, tok, "no repository "+u+"/nope on the registry", "package", "info", u+"/nope:1.0.0")

	// Client-side refusals.
	dir := packageDir(t)
	bad := filepath.Join(t.TempDir(), "bad.wasm")
	os.WriteFile(bad, []byte("x"), 0o644)
	r.fails(t, tok, "invalid file name", "package", "publish", repo+":0.0.1", bad)
	badDir := t.TempDir()
	os.WriteFile(filepath.Join(badDir, "main.wasm"), nil, 0o644)
	os.WriteFile(filepath.Join(badDir, "no spaces"), nil, 0o644)
	r.fails(t, tok, "invalid file name", "package", "publish", repo+":0.0.1", badDir)

	// A single main.wasm, then the directory with a nested subdirectory.
	out := r.must(t, tok, "package", "publish", repo+":1.0.0", filepath.Join(dir, "main.wasm"))
	if !strings.HasPrefix(out, repo+":1.0.0@sha-256:") {
		t.Fatalf("publish output %q", out)
	}
	if out := r.must(t, tok, "repo", "info", repo); out != `{"config":{"public":true},"tags":["1.0.0"]}`+"\n" {
		t.Fatalf("repo info: %q", out)
	}
	os.MkdirAll(filepath.Join(dir, "assets", "deep"), 0o755)
	os.WriteFile(filepath.Join(dir, "assets", "deep", "data.bin"), []byte("nested"), 0o644)
	pinnedSpec := strings.TrimSpace(r.must(t, tok, "package", "publish", repo+":2.0.0", dir))
	r.fails(t, tok, "409 Already exists", "package", "publish", repo+":2.0.0", dir)

	// package info prints the tag entry; anonymous reads work (public).
	info := r.must(t, "", "package", "info", repo+":2.0.0")
	entry, err := types.ParseEntry([]byte(info))
	if err != nil {
		t.Fatalf("package info output %q: %v", info, err)
	}
	if entry.Type != types.DirectoryType || len(entry.Digest) != 4 || !strings.Contains(info, "\n  \"digest\": {") {
		t.Fatalf("package info: %s", info)
	}
	r.must(t, "", "package", "info", pinnedSpec)
	wrongPin := repo + ":2.0.0@sha-256:" + strings.Repeat("00", 32)
	r.fails(t, "", "package digest mismatch", "package", "info", wrongPin)

	// fetch reproduces the directory exactly, verified.
	dst := filepath.Join(t.TempDir(), "out")
	if out := r.must(t, "", "package", "fetch", repo+":2.0.0", dst); strings.TrimSpace(out) != pinnedSpec {
		t.Fatalf("fetch printed %q, want %q", out, pinnedSpec)
	}
	for _, f := range []string{"main.wasm", "Enarx.toml", "assets/deep/data.bin"} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, err := os.ReadFile(filepath.Join(dst, f))
		if err != nil || string(a) != string(b) {
			t.Fatalf("fetched %s differs: %v", f, err)
		}
	}
	r.fails(t, "", "already exists", "package", "fetch", repo+":2.0.0", dst)
	// A single-file package is fetched as DIR/main.wasm.
	single := filepath.Join(t.TempDir(), "single")
	r.must(t, "", "package", "fetch", repo+":1.0.0", single)
	if a, b := readFile(t, filepath.Join(dir, "main.wasm")), readFile(t, filepath.Join(single, "main.wasm")); a != b {
		t.Fatal("fetched single-file package differs")
	}
	dst2 := filepath.Join(t.TempDir(), "out")
	r.fails(t, "", "package digest mismatch", "package", "fetch", wrongPin, dst2)
	if _, err := os.Stat(dst2); !os.IsNotExist(err) {
		t.Fatal("failed fetch left a directory behind")
	}

	// Private repositories: only the owner reads them.
	priv := r.Host + "/testuser/secret"
	r.must(t, tok, "repo", "register", "--private", priv)
	r.must(t, tok, "package", "publish", priv+":1.0.0", dir)
	if out := r.must(t, tok, "repo", "info", priv); out != `{"config":{"public":false},"tags":["1.0.0"]}`+"\n" {
		t.Fatalf("repo info: %q", out)
	}
	// Others get what a missing repository gets, and are told it may be
	// private; without a token, how to log in.
	for _, spec := range []string{priv + ":1.0.0", u + "/nope:1.0.0"} {
		r.fails(t, "", "404 Not found", "package", "info", spec)
		r.fails(t, "", "or it is private and no token was sent", "package", "info", spec)
		r.fails(t, "", "if the package is private, run `enarx user login --oidc-domain ISSUER-URL --store-host "+r.Host+"`", "package", "info", spec)
		r.fails(t, "", "or it is private and no token was sent", "package", "fetch", spec, filepath.Join(t.TempDir(), "p"))
		r.fails(t, r.Token(t, "someone|else"), "or it is private and the token sent may not read it", "package", "info", spec)
	}
	r.must(t, tok, "package", "info", priv+":1.0.0")
	r.must(t, tok, "package", "fetch", priv+":1.0.0", filepath.Join(t.TempDir(), "p"))
}

// TestLoginDeviceFlow logs in with the device flow against the test
// provider, and later commands use the stored token.
func TestLoginDeviceFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("the device flow polls at one-second intervals")
	}
	isolateUserDirs(t)
	r := startRegistry(t)
	df := r.IDP.EnableDeviceFlow(t, oidctest.Claims{Subject: "device|user", Scope: oidctest.AllScopes})
	code, out, errs := execute(t, "user", "login", "--oidc-domain", r.IDP.Issuer, "--store-host", r.Host, "--oidc-client-id", "test-cli")
	if code != 0 {
		t.Fatalf("login: exit %d\n%s", code, errs)
	}
	if out != "Credentials saved locally.\nLogin successful.\n" || !strings.Contains(errs, "WDJB-MJHT") {
		t.Fatalf("login output %q / %q", out, errs)
	}
	reqs := df.Requests()
	if len(reqs) != 1 || reqs[0].Audience != r.Audience || reqs[0].ClientID != "test-cli" || !strings.Contains(reqs[0].Scope, "manage:drawbridge_tags") {
		t.Fatalf("device requests %+v", reqs)
	}
	cfgDir, _ := os.UserConfigDir()
	id := strings.TrimPrefix(r.IDP.Issuer, "http://") + "-" + r.Host
	st, err := os.Stat(filepath.Join(cfgDir, "enarx", "credentials", id))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stored credentials: %v %v", st, err)
	}
	// The stored token is found by (issuer, host) and is accepted.
	u := r.Host + "/deviceuser"
	t.Setenv("ENARX_OIDC_DOMAIN", r.IDP.Issuer)
	r.must(t, "", "user", "register", u)
	if out := r.must(t, "", "user", "info", u); out != `{"subject":"device|user"}`+"\n" {
		t.Fatalf("user info %q", out)
	}
}

// TestCredentialHelper: with --credential-helper (here via the env) the
// token comes from `helper show <oidc-host>-<store-host>`.
func TestCredentialHelper(t *testing.T) {
	isolateUserDirs(t)
	r := startRegistry(t)
	tok := r.Token(t, "helper|subject")
	dir := t.TempDir()
	helper := filepath.Join(dir, "helper")
	id := "auth.example.com-" + r.Host
	os.WriteFile(filepath.Join(dir, id), []byte(tok+"\n"), 0o600)
	os.WriteFile(helper, []byte("#!/bin/sh\n[ \"$1\" = show ] || exit 2\nexec cat \""+dir+"/$2\"\n"), 0o700)
	t.Setenv("ENARX_CREDENTIAL_HELPER", helper)
	t.Setenv("ENARX_OIDC_DOMAIN", "https://auth.example.com/")
	u := r.Host + "/helperuser"
	r.must(t, "", "user", "register", u)
	if out := r.must(t, "", "user", "info", u); out != `{"subject":"helper|subject"}`+"\n" {
		t.Fatalf("user info %q", out)
	}
	// Another issuer has no stored token: the helper fails and so does the command.
	t.Setenv("ENARX_OIDC_DOMAIN", "https://other.example.com/")
	r.fails(t, "", "credential helper", "user", "info", u)
	// An expired stored token gets a hint to log in again.
	expired := r.IDP.Token(t, oidctest.Claims{Subject: "helper|subject", Audience: []string{r.Audience},
		Scope: oidctest.AllScopes, Expiry: time.Now().Add(-time.Hour), IssuedAt: time.Now().Add(-2 * time.Hour)})
	os.WriteFile(filepath.Join(dir, "other.example.com-"+r.Host), []byte(expired), 0o600)
	r.fails(t, "", "may have expired: run `enarx user login", "user", "info", u)
	// Also when the registry answers as for a missing (or private) package.
	r.fails(t, "", "if the package is yours, your stored token may have expired: run `enarx user login", "package", "info", u+"/nope:1.0.0")
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLoginClientCredentials: `user login --oidc-flow client` with the
// secret in ENARX_OIDC_CLIENT_SECRET, for automation.
func TestLoginClientCredentials(t *testing.T) {
	isolateUserDirs(t)
	r := startRegistry(t)
	df := r.IDP.EnableDeviceFlow(t, oidctest.Claims{Subject: "ci|robot", Scope: oidctest.AllScopes})
	df.AllowClientCredentials("s3cret")
	args := []string{"user", "login", "--oidc-flow", "client", "--oidc-domain", r.IDP.Issuer, "--store-host", r.Host, "--oidc-client-id", "ci"}
	t.Setenv("ENARX_OIDC_CLIENT_SECRET", "wrong")
	if code, _, _ := execute(t, args...); code == 0 {
		t.Fatal("login with a wrong secret succeeded")
	}
	t.Setenv("ENARX_OIDC_CLIENT_SECRET", "s3cret")
	if code, out, errs := execute(t, args...); code != 0 || out != "Credentials saved locally.\nLogin successful.\n" {
		t.Fatalf("login: exit %d %q\n%s", code, out, errs)
	}
	t.Setenv("ENARX_OIDC_DOMAIN", r.IDP.Issuer)
	r.must(t, "", "user", "register", r.Host+"/robot")
	if out := r.must(t, "", "user", "info", r.Host+"/robot"); out != `{"subject":"ci|robot"}`+"\n" {
		t.Fatalf("user info %q", out)
	}
}
