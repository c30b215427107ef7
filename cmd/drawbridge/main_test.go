package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/enarx-go/enarx/drawbridge/server"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/version"
)

// buildDrawbridge compiles this command once per test binary.
func buildDrawbridge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "drawbridge")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	addr string
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// start runs drawbridge with args and waits until it listens.
func start(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("drawbridge exited before listening")
		}
		return &proc{cmd: cmd, addr: a}
	case <-time.After(30 * time.Second):
		t.Fatal("drawbridge did not start")
	}
	return nil
}

type client struct {
	t     *testing.T
	http  *http.Client
	base  string
	token string
}

func devClient(t *testing.T, dir, addr string) *client {
	ca, err := os.ReadFile(filepath.Join(dir, server.DevCAFile))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	tok, err := os.ReadFile(filepath.Join(dir, server.DevTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, http: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}},
		base: "https://" + addr + "/api/v0.1.0", token: strings.TrimSpace(string(tok))}
}

func (c *client) put(path string, m types.Meta, body io.Reader) (int, error) {
	req, _ := http.NewRequest("PUT", c.base+path, body)
	req.ContentLength = m.Length
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", m.Type)
	req.Header.Set("Content-Digest", m.Digest.String())
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

func (c *client) get(path string) (int, []byte) {
	res, err := c.http.Get(c.base + path)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestKillDuringUpload kills the server (SIGKILL) in the middle of a
// large upload, restarts it on the same store, and checks the tag is
// invisible, nothing half-written survives, and the publish can be
// resumed to a complete, verified tag.
func TestKillDuringUpload(t *testing.T) {
	bin := buildDrawbridge(t)
	dir := filepath.Join(t.TempDir(), "store")
	p := start(t, bin, "--dev", "--store", dir, "--addr", "127.0.0.1:0")
	pkg := newCrashPackage(t)
	killMidUpload(t, p, devClient(t, dir, p.addr), pkg)
	// Restart on the same store (also verifying hidden tags: this one is
	// incomplete and must stay hidden).
	p = start(t, bin, "--dev", "--store", dir, "--addr", "127.0.0.1:0", "--verify-existing")
	c := devClient(t, dir, p.addr)
	checkCrashLeftNothing(t, c, dir)
	resumeUpload(t, c, pkg)
}

// crashTag is where TestKillDuringUpload publishes.
const crashTag = "/dev/crash/_tag/1.0.0"

// crashPackage is a package with a 24 MiB main.wasm.
type crashPackage struct {
	fsys    fstest.MapFS
	nodes   []types.Node
	entry   []byte // the tag entry
	tagMeta types.Meta
	big     []byte // main.wasm
}

func newCrashPackage(t *testing.T) *crashPackage {
	pkg := &crashPackage{big: make([]byte, 24<<20)}
	rand.Read(pkg.big)
	pkg.fsys = fstest.MapFS{"pkg/main.wasm": {Data: pkg.big}, "pkg/Enarx.toml": {Data: []byte("args = []\n")}}
	var err error
	if pkg.nodes, err = types.BuildTree(pkg.fsys, "pkg", nil); err != nil {
		t.Fatal(err)
	}
	pkg.entry, _ = pkg.nodes[0].Entry.MarshalJSON()
	d, n := types.Compute(pkg.entry)
	pkg.tagMeta = types.Meta{Digest: d, Length: n, Type: types.EntryType}
	return pkg
}

// killMidUpload publishes the tag and the root, then streams main.wasm
// slowly and kills the server half-way.
func killMidUpload(t *testing.T, p *proc, c *client, pkg *crashPackage) {
	if code, err := c.put(crashTag, pkg.tagMeta, bytes.NewReader(pkg.entry)); err != nil || code != 201 {
		t.Fatalf("tag: %d %v", code, err)
	}
	if code, err := c.put(crashTag+"/tree", pkg.nodes[0].Entry.Meta, bytes.NewReader(pkg.nodes[0].Content)); err != nil || code != 201 {
		t.Fatalf("root: %d %v", code, err)
	}
	wasm := pkg.nodes[2]
	if wasm.Path.String() != "main.wasm" {
		t.Fatalf("node order: %v", wasm.Path)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := c.put(crashTag+"/tree/main.wasm", wasm.Entry.Meta, pr)
		done <- err
	}()
	if _, err := pw.Write(pkg.big[:12<<20]); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	pw.CloseWithError(errors.New("server killed"))
	if err := <-done; err == nil {
		t.Fatal("upload to a killed server succeeded")
	}
}

// checkCrashLeftNothing: after the restart the tag is hidden, and nothing
// of the interrupted upload is on disk.
func checkCrashLeftNothing(t *testing.T, c *client, dir string) {
	if code, body := c.get("/dev/crash/_tag"); code != 200 || string(body) != "[]" {
		t.Fatalf("tags after crash: %d %s", code, body)
	}
	for _, path := range []string{crashTag, crashTag + "/tree", crashTag + "/tree/main.wasm"} {
		if code, _ := c.get(path); code != 404 {
			t.Fatalf("GET %s after crash: %d, want 404", path, code)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, ".staging")); len(ents) != 0 {
		t.Fatalf("staging residue: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(dir, "users/dev/repos/crash/tags/1.0.0/tree/entries/main.wasm")); !os.IsNotExist(err) {
		t.Fatalf("partial node on disk: %v", err)
	}
}

// resumeUpload publishes the package again: same tag (200), root exists
// (200), the rest is new (201); the tag is then complete and immutable.
func resumeUpload(t *testing.T, c *client, pkg *crashPackage) {
	want := map[string]int{"": 200, "Enarx.toml": 201, "main.wasm": 201}
	if code, err := c.put(crashTag, pkg.tagMeta, bytes.NewReader(pkg.entry)); err != nil || code != 200 {
		t.Fatalf("resume tag: %d %v", code, err)
	}
	for _, n := range pkg.nodes {
		body := n.Content
		if n.File != "" {
			body = pkg.fsys[n.File].Data
		}
		code, err := c.put(crashTag+"/tree/"+n.Path.String(), n.Entry.Meta, bytes.NewReader(body))
		if err != nil || code != want[n.Path.String()] {
			t.Fatalf("resume %q: %d %v", n.Path, code, err)
		}
	}
	if code, body := c.get("/dev/crash/_tag"); string(body) != `["1.0.0"]` {
		t.Fatalf("tags after resume: %d %s", code, body)
	}
	code, body := c.get(crashTag + "/tree/main.wasm")
	if code != 200 || !bytes.Equal(body, pkg.big) {
		t.Fatalf("main.wasm after resume: %d, %d bytes", code, len(body))
	}
	// Different content for the now complete tag is refused.
	if code, _ := c.put(crashTag, pkg.tagMeta, bytes.NewReader(pkg.entry)); code != 409 {
		t.Fatalf("re-publish: %d", code)
	}
}

// TestDevModeFiles checks what dev mode writes and that production mode
// refuses to start without its flags.
func TestDevModeFiles(t *testing.T) {
	bin := buildDrawbridge(t)
	dir := filepath.Join(t.TempDir(), "store")
	p := start(t, bin, "--dev", "--store", dir, "--addr", "127.0.0.1:0")
	for name, mode := range map[string]os.FileMode{server.DevTokenFile: 0o600, server.DevCAKeyFile: 0o600, server.DevIssuerKeyFile: 0o600, server.DevCAFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v", name, st, err)
		}
	}
	c := devClient(t, dir, p.addr)
	// HTTP/1.1 only, even to a client offering h2.
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: c.http.Transport.(*http.Transport).TLSClientConfig, ForceAttemptHTTP2: true}}
	res, err := h2.Get("https://" + p.addr + "/health")
	if err != nil || res.StatusCode != 200 || res.Proto != "HTTP/1.1" {
		t.Fatalf("/health: %v %v", res, err)
	}
	res.Body.Close()
	if code, body := c.get("/dev"); code != 401 || !strings.Contains(string(body), "Bearer") {
		// c.get sends no token: the user record is owner-only.
		t.Fatalf("GET /dev anonymous: %d %s", code, body)
	}
	// The token file says "listening": a start that cannot listen leaves
	// none, and one that cannot lock the store leaves the running
	// registry's token alone.
	busy := filepath.Join(t.TempDir(), "busy")
	if out, err := exec.Command(bin, "--dev", "--store", busy, "--addr", p.addr).CombinedOutput(); err == nil || !strings.Contains(string(out), "listening on") {
		t.Fatalf("start on a busy address: %v %s", err, out)
	}
	if _, err := os.Stat(filepath.Join(busy, server.DevTokenFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dev-token written although the registry never listened: %v", err)
	}
	if out, err := exec.Command(bin, "--dev", "--store", dir, "--addr", "127.0.0.1:0").CombinedOutput(); err == nil {
		t.Fatalf("second registry on one store started: %s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, server.DevTokenFile)); err != nil {
		t.Fatalf("a refused second start removed the running registry's token: %v", err)
	}
	// The same through a config file (upstream's @file form).
	dir2 := filepath.Join(t.TempDir(), "store2")
	conf := filepath.Join(t.TempDir(), "drawbridge.toml")
	os.WriteFile(conf, []byte("dev = true\nstore = \""+dir2+"\"\naddr = \"127.0.0.1:0\"\nmax-upload-size = 1024\n"), 0o600)
	start(t, bin, "@"+conf)
	if _, err := os.Stat(filepath.Join(dir2, server.DevTokenFile)); err != nil {
		t.Fatalf("config file not applied: %v", err)
	}
	os.WriteFile(conf, []byte("oidc-isuer = \"https://x\"\n"), 0o600)
	if out, err := exec.Command(bin, "@"+conf).CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown setting") {
		t.Fatalf("typo in config: %v %s", err, out)
	}
	// A token from a dev registry is worthless to a production one: no
	// OIDC issuer means no start at all.
	out, err := exec.Command(bin, "--store", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--oidc-issuer") {
		t.Fatalf("production without flags: %v %s", err, out)
	}
}

func TestVersionFlag(t *testing.T) {
	out, err := exec.Command(buildDrawbridge(t), "--version").CombinedOutput()
	if err != nil || string(out) != "drawbridge version "+version.Version+"\n" {
		t.Fatalf("--version: %v %q", err, out)
	}
}
