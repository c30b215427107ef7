package shim_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/enarx-go/enarx/drawbridge/client"
	"github.com/enarx-go/enarx/drawbridge/server"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/shim"
)

// packageConfig is the Enarx.toml of the published package.
const packageConfig = `args = ["hello"]

[env]
FROM_CONFIG = "from the package"

[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"
`

// devRegistry is a dev-mode Drawbridge (drawbridge --dev) on 127.0.0.1,
// reached as localhost:PORT, the name its certificate has.
type devRegistry struct {
	host, ca, tokenFile, store string
	token                      string
}

func startDevRegistry(t *testing.T) *devRegistry {
	t.Helper()
	store := filepath.Join(t.TempDir(), "registry")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{
			Dev: true, Store: store, Addr: "127.0.0.1:0",
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
	r := &devRegistry{host: "localhost:" + port, ca: filepath.Join(store, server.DevCAFile),
		tokenFile: filepath.Join(store, server.DevTokenFile), store: store}
	tok, err := os.ReadFile(r.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	r.token = strings.TrimSpace(string(tok))
	return r
}

// publish publishes files as repo:tag (repo private unless public) and
// returns the pinned spec.
func (r *devRegistry) publish(t *testing.T, repo, tag string, public bool, files map[string][]byte) string {
	t.Helper()
	ca, err := os.ReadFile(r.ca)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(r.host, client.Options{CABundle: ca, Token: r.token})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rs, err := client.ParseRepoSpec(r.host + "/dev/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRepo(ctx, rs); client.IsStatus(err, 404) {
		if err := c.PutRepo(ctx, rs, client.RepoConfig{Public: public}); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := client.BuildTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := client.ParsePackageSpec(rs.String() + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, spec, tree); err != nil {
		t.Fatal(err)
	}
	// Pinned to the root's SHA-256, as `enarx package publish` prints it.
	spec.Pin = types.Digests{types.SHA256: tree.Root().Digest[types.SHA256]}
	return spec.String()
}

// packageImage imports an image that carries no module: a placeholder
// file only (its root is not read for a package task), the entrypoint
// "enarx-package" and, if pkg is not empty, ENV ENARX_PACKAGE=pkg.
func (d *daemon) packageImage(pkg string) string {
	cfg := ocispec.ImageConfig{Entrypoint: []string{"enarx-package"}}
	if pkg != "" {
		cfg.Env = []string{shim.PackageEnv + "=" + pkg}
	}
	name := "docker.io/enarx/shim-test-package:" + sum([]byte(pkg))
	tarPath := filepath.Join(d.dir, "package-image.tar")
	writeImageConfig(d.t, tarPath, name, ocispec.Platform{OS: "wasi", Architecture: "wasm"},
		map[string][]byte{"README": []byte("runs the Drawbridge package ENARX_PACKAGE names\n")}, cfg)
	d.mustCtr(d.t, "image", "import", "--platform", platform, tarPath)
	return name
}

// packageRun is ctr run's arguments for a container of image that runs
// pkg (none: the image's ENV names it) on backend, with extra runtime
// options.
func (d *daemon) packageRun(backend, image, id, pkg, options string, args ...string) []string {
	p := d.runtimeConfig(backend)
	body, err := os.ReadFile(p)
	if err != nil {
		d.t.Fatal(err)
	}
	p = filepath.Join(d.dir, "shim-"+id+".toml")
	if err := os.WriteFile(p, append(body, options...), 0o644); err != nil {
		d.t.Fatal(err)
	}
	a := []string{"run", "--rm", "--runtime", shim.RuntimeName, "--runtime-config-path", p, "--platform", platform}
	if pkg != "" {
		a = append(a, "--env", shim.PackageEnv+"="+pkg)
	}
	a = append(a, image, id)
	return append(a, args...)
}

// TestContainerdPackage runs a Drawbridge package through containerd and
// the shim: a container whose env names the package (ENARX_PACKAGE) and
// whose image holds no module; the shim fetches the bundle from a
// dev-mode Drawbridge with the runtime options' CA and token, and the Keep
// verifies it and runs it with the package's Enarx.toml and the
// container's args. Refusals (unknown tag, wrong pin, a private package
// without a token, a tampered registry) fail the create with the reason
// in ctr's output.
func TestContainerdPackage(t *testing.T) {
	d := startContainerd(t)
	r := startDevRegistry(t)
	wasm := workloadWasm(t)
	pinned := r.publish(t, "hello", "1.0.0", true, map[string][]byte{"main.wasm": wasm, "Enarx.toml": []byte(packageConfig)})
	private := r.publish(t, "private", "1.0.0", false, map[string][]byte{"main.wasm": wasm})
	img := d.packageImage("")
	ca := "drawbridge_ca_bundle = \"" + r.ca + "\"\nno_package_cache = true\n"
	withToken := ca + "drawbridge_token_file = \"" + r.tokenFile + "\"\ndrawbridge_hosts = [\"" + r.host + "\"]\n"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			want := `Hello from a Keep: args=["main.wasm" "hello" "x y"] GREETING="" FROM_CONFIG="from the package" FD_NAMES="stdin:stdout:stderr"`
			// By tag (anonymous: a public repository), by pinned spec and
			// by URL, twice through a package cache; args[0] is only the
			// program name.
			cached := "drawbridge_ca_bundle = \"" + r.ca + "\"\npackage_cache_dir = \"" + filepath.Join(d.dir, "packages") + "\"\n"
			for i, c := range []struct{ pkg, options string }{
				{r.host + "/dev/hello:1.0.0", ca},
				{pinned, ca},
				{"https://" + r.host + "/api/v0.1.0/dev/hello/_tag/1.0.0", ca},
				{pinned, cached},
				{pinned, cached},
			} {
				out := d.mustCtr(t, d.packageRun(b, img, "pkg"+string(rune('a'+i))+"-"+b, c.pkg, c.options, "app", "x y")...)
				if !strings.Contains(out, want) {
					t.Errorf("%s (options %q): got %q, want %q", c.pkg, c.options, out, want)
				}
			}
			// A private package with the runtime options' token; the
			// package has no Enarx.toml, so the args are the container's.
			out, code := d.ctr(ctx, d.packageRun(b, img, "private-"+b, private, withToken, "app", "exit", "3")...)
			if code != 3 || !strings.Contains(out, "exiting with 3") {
				t.Errorf("private package with token: status %d, output %q", code, out)
			}

			for _, c := range []struct{ pkg, options, want string }{
				{r.host + "/dev/hello:9.9.9", ca, "fetching the Drawbridge package " + r.host + "/dev/hello:9.9.9"},
				{r.host + "/dev/hello:1.0.0@sha-256:" + strings.Repeat("ab", 32), ca, "package digest mismatch"},
				{private, ca, "fetching the Drawbridge package " + private},
				{r.host + "/dev/hello:1.0.0", "", "fetching the Drawbridge package"}, // the dev CA is not trusted
				{r.host + "/dev/hello:1.0.0", ca + "drawbridge_hosts = [\"drawbridge.example.com\"]\n", "which this node does not allow"},
				{"file:///main.wasm", ca, "unsupported scheme file"},
				{"dev/hello:1.0.0", ca, shim.PackageEnv},
			} {
				out, code := d.ctr(ctx, d.packageRun(b, img, "refused-"+b, c.pkg, c.options, "app")...)
				if code == 0 || !strings.Contains(out, c.want) {
					t.Errorf("%s (options %q): status %d, output %q, want %q", c.pkg, c.options, code, out, c.want)
				}
				d.ctr(ctx, "container", "rm", "refused-"+b)
			}
		})
	}

	// An image that pins its package in its ENV runs it with no env from
	// the container; the container's env overrides it (ctr's, as a pod's).
	pinnedImg := d.packageImage(pinned)
	out := d.mustCtr(t, d.packageRun("nil", pinnedImg, "pinned-image", "", ca, "enarx-package", "from image")...)
	if want := `args=["main.wasm" "hello" "from image"]`; !strings.Contains(out, want) {
		t.Errorf("image ENV: got %q, want %q", out, want)
	}
	out, code := d.ctr(ctx, d.packageRun("nil", pinnedImg, "pinned-image-override", r.host+"/dev/hello:9.9.9", ca, "enarx-package")...)
	if code == 0 || !strings.Contains(out, "hello:9.9.9") {
		t.Errorf("container env over image ENV: status %d, output %q", code, out)
	}
	d.ctr(ctx, "container", "rm", "pinned-image-override")

	// Tamper with the stored main.wasm (one byte, same length): the fetch
	// is refused naming the node.
	tampered := 0
	filepath.WalkDir(r.store, func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && string(b) == string(wasm) {
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			tampered++
		}
		return nil
	})
	if tampered == 0 {
		t.Fatal("found no stored copy of main.wasm to tamper with")
	}
	out, code = d.ctr(ctx, d.packageRun("nil", img, "tampered", pinned, ca, "app")...)
	t.Logf("tampered: %s", out)
	if code == 0 || !strings.Contains(out, `node "/main.wasm"`) {
		t.Errorf("tampered package: status %d, output %q", code, out)
	}
}

// TestPackageOptions: the Drawbridge keys are runtime options like the
// others; unknown keys are still refused.
func TestPackageOptions(t *testing.T) {
	o, err := shim.DecodeOptions([]byte("backend = \"nil\"\ndrawbridge_hosts = [\"db.example.com\"]\ndrawbridge_ca_bundle = \"/ca.pem\"\ndrawbridge_token_file = \"/tok\"\npackage_cache_dir = \"/c\"\nno_package_cache = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := shim.PackageOptions{DrawbridgeHosts: []string{"db.example.com"}, DrawbridgeCABundle: "/ca.pem", DrawbridgeTokenFile: "/tok", PackageCacheDir: "/c", NoPackageCache: true}
	if !reflect.DeepEqual(o.PackageOptions, want) || o.Backend != "nil" {
		t.Fatalf("decoded %+v", o)
	}
	// A token is for the registries named: without them, any registry a
	// pod names would get it.
	if _, err := shim.DecodeOptions([]byte("drawbridge_token_file = \"/tok\"\n")); err == nil || !strings.Contains(err.Error(), "drawbridge_hosts") {
		t.Fatalf("token without drawbridge_hosts: %v", err)
	}
	if _, err := shim.DecodeOptions([]byte("drawbridge_hosts = [\"https://db.example.com/\"]\n")); err == nil {
		t.Fatal("a URL in drawbridge_hosts was accepted")
	}
	if _, err := shim.DecodeOptions([]byte("drawbridge_token = \"secret\"\n")); err == nil || !strings.Contains(err.Error(), "drawbridge_token_file") {
		t.Fatalf("unknown key: %v", err)
	}
}
