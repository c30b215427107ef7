package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/drawbridge/server"
	"github.com/enarx-go/enarx/internal/testutil"
)

const pkgConfig = `args = ["from-config"]

[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"
`

// compileCache is shared by the tests of this package so each workload is
// compiled once (wazero compilation under -race takes seconds).
var compileCache = filepath.Join(os.TempDir(), "enarx-cli-test-compile-cache")

// execute runs the CLI in-process and returns exit code, stdout, stderr.
func execute(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// packageDir writes a deployable package directory (main.wasm built from
// testdata/pkgexit, Enarx.toml passing "from-config").
func packageDir(t *testing.T) string {
	t.Helper()
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "testdata/pkgexit"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "pkg")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "main.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(dir, "Enarx.toml"), []byte(pkgConfig), 0o644)
	return dir
}

func isolateUserDirs(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	for _, v := range []string{"ENARX_CA_BUNDLE", "ENARX_INSECURE_AUTH_TOKEN", "ENARX_OIDC_DOMAIN", "ENARX_CREDENTIAL_HELPER", "ENARX_BACKEND"} {
		t.Setenv(v, "")
	}
}

func TestDeployFileURL(t *testing.T) {
	isolateUserDirs(t)
	dir := packageDir(t)
	// A directory: main.wasm runs with its Enarx.toml.
	if code, _, stderr := execute(t, "deploy", "--backend", "nil", "--cache-dir", compileCache, "file://"+dir); code != 42 {
		t.Fatalf("deploy dir: exit %d, want 42; stderr:\n%s", code, stderr)
	}
	// A module alone: no config.
	if code, _, stderr := execute(t, "deploy", "--backend", "nil", "--cache-dir", compileCache, "file://"+filepath.Join(dir, "main.wasm")); code != 7 {
		t.Fatalf("deploy module: exit %d, want 7; stderr:\n%s", code, stderr)
	}
	// A directory without Enarx.toml is refused (upstream behaviour).
	os.Remove(filepath.Join(dir, "Enarx.toml"))
	code, _, stderr := execute(t, "deploy", "--backend", "nil", "--cache-dir", compileCache, "file://"+dir)
	if code != 1 || !strings.Contains(stderr, "failed to open package config") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestDeployRejectsSchemes(t *testing.T) {
	isolateUserDirs(t)
	for arg, want := range map[string]string{
		"ftp://host/x":                    "unsupported scheme: ftp",
		"http://localhost/api/v0.1.0/u/r": "unsupported scheme: http",
		"not a spec":                      "invalid",
		"h/u/r:1.0.0@sha-256:zz":          "invalid digest pin",
	} {
		code, _, stderr := execute(t, "deploy", "--backend", "nil", "--cache-dir", compileCache, arg)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("deploy %q: exit %d, stderr %q, want %q", arg, code, stderr, want)
		}
	}
}

// TestDeployFromRegistry publishes to the real registry and deploys: by
// spec, by URL, single-file, pinned; then tampers with the stored
// main.wasm and checks deploy fails naming the node.
func TestDeployFromRegistry(t *testing.T) {
	r, tok, repo := registryRepo(t, "app")
	dir := packageDir(t)
	pinnedSpec := strings.TrimSpace(r.must(t, tok, "package", "publish", repo+":1.0.0", dir))
	r.must(t, tok, "package", "publish", repo+":2.0.0", filepath.Join(dir, "main.wasm"))

	cache := t.TempDir()
	deploy := func(args ...string) (int, string) {
		t.Helper()
		full := append([]string{"deploy", "--backend", "nil", "--cache-dir", compileCache, "--ca-bundle", r.caFile}, args...)
		code, _, stderr := execute(t, full...)
		return code, stderr
	}
	for _, c := range []struct {
		args []string
		want int
	}{
		{[]string{"--package-cache", cache, repo + ":1.0.0"}, 42}, // Enarx.toml from the package
		{[]string{"--package-cache", cache, "https://" + r.Host + "/api/v0.1.0/testuser/app/_tag/1.0.0"}, 42},
		{[]string{"--no-package-cache", pinnedSpec}, 42},
		{[]string{"--no-package-cache", repo + ":2.0.0"}, 7}, // a single main.wasm: no config
	} {
		if code, stderr := deploy(c.args...); code != c.want {
			t.Fatalf("deploy %v: exit %d, want %d\n%s", c.args, code, c.want, stderr)
		}
	}
	code, stderr := deploy("--no-package-cache", repo+":1.0.0@sha-256:"+strings.Repeat("ab", 32))
	if code != 1 || !strings.Contains(stderr, "package digest mismatch") {
		t.Fatalf("wrong pin: exit %d\n%s", code, stderr)
	}
	code, stderr = deploy("--no-package-cache", repo+":9.9.9")
	if code != 1 || !strings.Contains(stderr, "404 Repository does not exist") {
		t.Fatalf("missing tag: exit %d\n%s", code, stderr)
	}

	// Tamper with the stored main.wasm of 1.0.0 (same length, one byte).
	wasm, _ := os.ReadFile(filepath.Join(dir, "main.wasm"))
	tampered := 0
	filepath.WalkDir(filepath.Join(r.StoreDir), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(p, string(filepath.Separator)+"1.0.0"+string(filepath.Separator)) {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && len(b) == len(wasm) && string(b) == string(wasm) {
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			tampered++
		}
		return nil
	})
	if tampered != 1 {
		t.Fatalf("tampered with %d stored copies of main.wasm, want 1", tampered)
	}
	// The verified cache still serves the genuine bytes by digest...
	if code, stderr := deploy("--package-cache", cache, repo+":1.0.0"); code != 42 {
		t.Fatalf("cached deploy: exit %d\n%s", code, stderr)
	}
	// ...but a fresh download is caught, naming the node.
	code, stderr = deploy("--no-package-cache", repo+":1.0.0")
	t.Logf("tampered deploy: %s", stderr)
	if code != 1 || !strings.Contains(stderr, `node "/main.wasm"`) {
		t.Fatalf("tampered deploy: exit %d\n%s", code, stderr)
	}
}

// TestDeploySandboxBinary deploys a registry package with the built enarx
// binary on the sandbox backend: the bundle crosses into a separate,
// network-less Keep process and is verified there.
func TestDeploySandboxBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the enarx binary")
	}
	// Build first: isolateUserDirs moves the Go build cache.
	bin := filepath.Join(t.TempDir(), "enarx")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/enarx-go/enarx/cmd/enarx")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building enarx: %v\n%s", err, out)
	}
	r, tok, repo := registryRepo(t, "app")
	pinnedSpec := strings.TrimSpace(r.must(t, tok, "package", "publish", repo+":1.0.0", packageDir(t)))

	cmd := exec.Command(bin, "deploy", "--backend", "sandbox", "--cache-dir", compileCache, "--no-package-cache", "--ca-bundle", r.caFile, pinnedSpec)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if strings.Contains(stderr.String(), "is not available") || strings.Contains(stderr.String(), "misconfigured") {
		testutil.NeedHost(t, "sandbox backend unavailable here: %s", stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 42 || !strings.Contains(stderr.String(), "pkgexit running with [from-config]") {
		t.Fatalf("sandbox deploy: %v\n%s", err, stderr.String())
	}
}

// TestNewcomerPath follows docs/packages.md: a dev-mode registry, then
// publish and deploy with the CA certificate and token it wrote.
func TestNewcomerPath(t *testing.T) {
	isolateUserDirs(t)
	storeDir := filepath.Join(t.TempDir(), "registry")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{
			Dev: true, Store: storeDir, Addr: "127.0.0.1:0",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:  func(a net.Addr) { ready <- a },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("drawbridge --dev: %v", err)
	}
	_, port, _ := net.SplitHostPort(addr.String())
	spec := "localhost:" + port + "/dev/hello:0.1.0"
	ca := filepath.Join(storeDir, server.DevCAFile)
	token := readFile(t, filepath.Join(storeDir, server.DevTokenFile))

	code, out, stderr := execute(t, "package", "publish", "--ca-bundle", ca, "--insecure-auth-token", strings.TrimSpace(token), spec, packageDir(t))
	if code != 0 || !strings.HasPrefix(out, spec+"@sha-256:") {
		t.Fatalf("publish: exit %d, %q\n%s", code, out, stderr)
	}
	code, _, stderr = execute(t, "deploy", "--backend", "nil", "--cache-dir", compileCache, "--ca-bundle", ca, spec)
	if code != 42 {
		t.Fatalf("deploy: exit %d\n%s", code, stderr)
	}
}
