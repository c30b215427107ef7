package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunRefusesNonWasm: a file that is not a binary module is named and
// called what it is, before any Keep starts.
func TestRunRefusesNonWasm(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	wat := filepath.Join(dir, "hello.wat")
	os.WriteFile(text, []byte("hello\n"), 0o644)
	os.WriteFile(wat, []byte("(module)\n"), 0o644)
	for file, want := range map[string]string{
		text: text + ` is not a WebAssembly module: it does not start with the wasm magic bytes \0asm` + "\n",
		wat:  wat + ` is not a WebAssembly module: it does not start with the wasm magic bytes \0asm (it looks like WebAssembly text: compile it to binary first, e.g. with wat2wasm)` + "\n",
	} {
		code, _, stderr := execute(t, "run", "--backend", "nil", file)
		if code != 1 || stderr != "Error: "+want {
			t.Errorf("run %s: exit %d, stderr %q, want %q", file, code, stderr, "Error: "+want)
		}
		code, _, stderr = execute(t, "deploy", "--backend", "nil", "file://"+file)
		if code != 1 || stderr != "Error: "+want {
			t.Errorf("deploy file://%s: exit %d, stderr %q", file, code, stderr)
		}
	}
}

// TestRegistryMessagesPointNowhereDefunct: upstream's defaults (its hosted
// registry and issuer) no longer run; messages say what to write instead.
func TestRegistryMessagesPointNowhereDefunct(t *testing.T) {
	isolateUserDirs(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"package", "info", "dev/hello:0.1.0"}, `invalid spec "dev/hello:0.1.0": it names no registry host; write HOST[:PORT]/dev/hello:0.1.0 (for a local ` + "`drawbridge --dev`" + ` registry: localhost:8443/dev/hello:0.1.0)`},
		{[]string{"deploy", "dev/hello:0.1.0"}, `it names no registry host`},
		{[]string{"repo", "info", "dev/hello"}, `invalid spec "dev/hello": it names no registry host`},
		{[]string{"user", "info", "localhost:8443/dev"}, "not logged in to localhost:8443: pass --insecure-auth-token TOKEN (a `drawbridge --dev` registry writes one to STORE/dev-token), or run `enarx user login --oidc-domain ISSUER-URL --store-host localhost:8443`"},
		{[]string{"user", "login"}, "enarx user login needs --store-host HOST[:PORT]"},
		{[]string{"user", "login", "--store-host", "localhost:8443"}, "enarx user login needs --oidc-domain URL"},
		{[]string{"deploy", "ftp://host/x"}, "unsupported scheme: ftp; use file:///path (a module or a package directory), https://HOST/api/v0.1.0/USER/REPO/_tag/TAG, or HOST/USER/REPO:TAG"},
		{[]string{"deploy", "http://host/api/v0.1.0/u/r/_tag/1.0.0"}, "unsupported scheme: http (the package would travel unprotected); use https://"},
	} {
		code, _, stderr := execute(t, tc.args...)
		if code != 1 || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "profian") {
			t.Errorf("enarx %s: exit %d, stderr %q, want %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

// TestMissingCABundleNamesTheFlag: a registry whose certificate the system
// does not trust gets a hint naming --ca-bundle.
func TestMissingCABundleNamesTheFlag(t *testing.T) {
	isolateUserDirs(t)
	r := startRegistry(t)
	spec := r.Host + "/dev/hello:0.1.0"
	hint := "(the registry's certificate is not signed by a CA this system trusts: give its CA with --ca-bundle FILE or ENARX_CA_BUNDLE; a `drawbridge --dev` registry's is STORE/dev-ca.pem)"
	for _, args := range [][]string{{"package", "info", spec}, {"deploy", "--backend", "nil", spec}, {"repo", "info", "--insecure-auth-token", "x", r.Host + "/dev/hello"}} {
		code, _, stderr := execute(t, args...)
		if code != 1 || !strings.Contains(stderr, "certificate signed by unknown authority") || !strings.Contains(stderr, hint) {
			t.Errorf("enarx %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
	// The wrong bundle is named.
	other := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(other, selfSignedPEM(t), 0o644)
	code, _, stderr := execute(t, "package", "info", "--ca-bundle", other, spec)
	if code != 1 || !strings.Contains(stderr, "(the registry's certificate does not chain to a CA in --ca-bundle "+other+")") {
		t.Errorf("wrong bundle: exit %d, stderr %q", code, stderr)
	}
}

// selfSignedPEM is a CA certificate that signed nothing.
func selfSignedPEM(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "unrelated CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
