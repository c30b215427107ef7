package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/testutil"
)

// hostileServer runs h over TLS on 127.0.0.1 with cert (nil: httptest's)
// and returns its port and a --ca-bundle file trusting it.
func hostileServer(t *testing.T, cert *tls.Certificate, h http.HandlerFunc) (port, caFile string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if cert != nil {
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	var der []byte
	if cert != nil {
		der = cert.Certificate[0]
	} else {
		der = srv.Certificate().Raw
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return port, caFile
}

// escapes are the bytes a terminal obeys that must not reach it from a
// registry or a network attacker: ESC, BEL, DEL, CSI as a C1 control
// (U+009B) and as a lone 8-bit byte.
var escapes = []string{"\x1b", "\x07", "\x7f", "\u009b", "\x9b"}

func checkTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	for _, e := range escapes {
		if strings.Contains(out, e) {
			t.Errorf("%s carries %q to the terminal: %q", what, e, out)
		}
	}
}

// TestErrorsTerminalSafe: the error enarx prints may carry text a
// registry or a network attacker chose, and must not drive the terminal.
// Before, a man in the middle's certificate naming "\x1b]0;…\a" (x509's
// hostname error lists the names, unquoted) or a registry redirecting to
// a Location with C1 controls (the refusal names the target) reached
// stderr raw.
func TestErrorsTerminalSafe(t *testing.T) {
	isolateUserDirs(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mitm"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		DNSNames: []string{"evil\x1b]0;owned\x07.example", "x\x7f\x1b[2J.example"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	port, ca := hostileServer(t, &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, func(w http.ResponseWriter, r *http.Request) {})
	code, _, stderr := execute(t, "package", "info", "--ca-bundle", ca, "localhost:"+port+"/u/r:1.0.0")
	if code != 1 || !strings.Contains(stderr, "certificate is valid for evil") {
		t.Fatalf("certificate: exit %d, stderr %q", code, stderr)
	}
	checkTerminalSafe(t, "the certificate error", stderr)

	port, ca = hostileServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "https://127.0.0.1:1/x?\u009b2J\x9b31m")
		w.WriteHeader(http.StatusFound)
	})
	code, _, stderr = execute(t, "deploy", "--backend", "nil", "--no-package-cache", "--ca-bundle", ca, "127.0.0.1:"+port+"/u/r:1.0.0")
	if code != 1 || !strings.Contains(stderr, "redirects are not followed") {
		t.Fatalf("redirect: exit %d, stderr %q", code, stderr)
	}
	checkTerminalSafe(t, "the redirect error", stderr)
}

// serveJSON answers with body and the metadata the client requires.
func serveJSON(w http.ResponseWriter, typ string, body []byte) {
	sum, _ := types.Compute(body)
	w.Header().Set("Content-Digest", sum.String())
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// TestInfoOutputTerminalSafe: package, repo and user info print JSON a
// registry wrote. JSON escapes ESC, but not DEL, C1 controls or invalid
// UTF-8, which reached stdout raw (an extra field of a tag entry, a tag
// name in the list, a user's subject); now they are printed as \u escapes,
// so the output still means the same JSON.
func TestInfoOutputTerminalSafe(t *testing.T) {
	isolateUserDirs(t)
	entry := types.Entry{Meta: types.Meta{Digest: types.Digests{types.SHA256: make([]byte, 32)}, Length: 4, Type: types.WasmType}}
	meta, _ := entry.MarshalJSON()
	evil := "\u009b2J\x9b31m\x7f"
	tag := append(meta[:len(meta)-1:len(meta)-1], `,"note":"`+evil+`"}`...)
	if e, err := types.ParseEntry(tag); err != nil || !e.Meta.Equal(entry.Meta) {
		t.Fatalf("the client accepts the hostile tag entry: %v", err)
	}
	port, ca := hostileServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v0.1.0/u/r/_tag/1.0.0":
			serveJSON(w, types.EntryType, tag)
		case "/api/v0.1.0/u/r/_tag":
			serveJSON(w, "application/json", []byte(`["1.0.0`+evil+`"]`))
		case "/api/v0.1.0/u/r":
			serveJSON(w, "application/json", []byte(`{"public":true}`))
		case "/api/v0.1.0/u":
			serveJSON(w, "application/json", []byte(`{"subject":"`+evil+`"}`))
		default:
			http.NotFound(w, r)
		}
	})
	host := "127.0.0.1:" + port
	for _, args := range [][]string{
		{"package", "info", host + "/u/r:1.0.0"},
		{"repo", "info", host + "/u/r"},
		{"user", "info", host + "/u"},
	} {
		code, out, stderr := execute(t, append(args, "--ca-bundle", ca, "--insecure-auth-token", "t")...)
		// The lone 0x9b is U+FFFD when decoded: repo and user info
		// print it as that character, package info (the raw body) as
		// its escape.
		if code != 0 || !strings.Contains(out, `\u009b2J`) || !strings.Contains(out, `31m\u007f`) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
		checkTerminalSafe(t, args[0]+" info", out)
		if args[0] == "package" {
			if e, err := types.ParseEntry([]byte(out)); err != nil || !e.Meta.Equal(entry.Meta) {
				t.Fatalf("package info printed %q: %v", out, err)
			}
		}
	}
}

// TestDeployHostPathsNeedConsent: a registry package's Enarx.toml names
// the host directories (and volume key files) enarx opens and hands to the
// workload. Before, enarx deploy opened whatever the package named, so a
// registry (or whoever publishes the package) could give its workload
// read-write access to any directory of the deploying user — their home
// directory, say (and with it ~/.bashrc). Now each such path must be one
// the user allowed with --allow-host-path; memory directories need
// nothing, and file:// packages (the user's own files) are unchanged.
func TestDeployHostPathsNeedConsent(t *testing.T) {
	r, tok, repo := registryRepo(t, "app")

	victim := t.TempDir() // a directory of the deploying user's
	keyFile := filepath.Join(t.TempDir(), "volume.key")
	if err := os.WriteFile(keyFile, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "../../examples/notes"))
	if err != nil {
		t.Fatal(err)
	}
	const stdio = "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"
	publish := func(tag, dir string) {
		t.Helper()
		pkg := filepath.Join(t.TempDir(), "pkg")
		os.Mkdir(pkg, 0o755)
		os.WriteFile(filepath.Join(pkg, "main.wasm"), wasm, 0o644)
		os.WriteFile(filepath.Join(pkg, "Enarx.toml"), []byte("args = [\"written by the package\"]\n"+stdio+
			"[[files]]\nname = \"data\"\nkind = \"dir\"\nguest_path = \"/data\"\n"+dir), 0o644)
		r.must(t, tok, "package", "publish", repo+":"+tag, pkg)
	}
	publish("1.0.0", "source = \"host\"\nhost_path = \""+victim+"\"\n")
	publish("2.0.0", "source = \"sealed\"\nhost_path = \""+victim+"\"\nkey = \"file:"+keyFile+"\"\n")
	publish("3.0.0", "source = \"memory\"\n")

	deploy := func(args ...string) (int, string, string) {
		t.Helper()
		return execute(t, append([]string{"deploy", "--backend", "nil", "--cache-dir", compileCache, "--no-package-cache", "--ca-bundle", r.caFile}, args...)...)
	}
	untouched := func() {
		t.Helper()
		if des, _ := os.ReadDir(victim); len(des) != 0 {
			t.Fatalf("the package wrote into the user's directory: %v", des)
		}
	}
	code, _, stderr := deploy(repo + ":1.0.0")
	if code != 1 || !strings.Contains(stderr, "--allow-host-path "+victim) {
		t.Fatalf("host directory without consent: exit %d\n%s", code, stderr)
	}
	untouched()
	// The key file needs consent too, beside the directory.
	code, _, stderr = deploy("--allow-host-path", victim, repo+":2.0.0")
	if code != 1 || !strings.Contains(stderr, "--allow-host-path "+keyFile) {
		t.Fatalf("key file without consent: exit %d\n%s", code, stderr)
	}
	untouched()
	// (The workload writes to the process's own stdout: the exit status
	// and the file tell what it did.)
	if code, _, stderr := deploy(repo + ":3.0.0"); code != 0 {
		t.Fatalf("memory directory: exit %d\n%s", code, stderr)
	}
	untouched()
	// With consent, the package gets the directory.
	if code, _, stderr := deploy("--allow-host-path", victim+"/", repo+":1.0.0"); code != 0 {
		t.Fatalf("with --allow-host-path: exit %d\n%s", code, stderr)
	}
	if got := readFile(t, filepath.Join(victim, "notes.txt")); got != "written by the package\n" {
		t.Fatalf("notes.txt = %q", got)
	}
}

// TestDeployNetworkNeedsConsent: a registry package's listen and connect
// entries are opened only with --allow-listen PORT / --allow-connect
// HOST:PORT. Before, enarx deploy bound any port the package named on
// every interface of the user's machine and dialled any endpoint from it
// (services on 127.0.0.1 included).
func TestDeployNetworkNeedsConsent(t *testing.T) {
	r, tok, repo := registryRepo(t, "net")

	// A local service the package must not reach without consent.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialled := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialled <- struct{}{}
			c.Close()
		}
	}()
	_, svcPort, _ := net.SplitHostPort(ln.Addr().String())
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, listenPort, _ := net.SplitHostPort(free.Addr().String())
	free.Close()

	wasm, err := os.ReadFile(testutil.BuildWasm(t, "testdata/pkgexit"))
	if err != nil {
		t.Fatal(err)
	}
	publish := func(tag, entry string) {
		t.Helper()
		pkg := filepath.Join(t.TempDir(), "pkg")
		os.Mkdir(pkg, 0o755)
		os.WriteFile(filepath.Join(pkg, "main.wasm"), wasm, 0o644)
		os.WriteFile(filepath.Join(pkg, "Enarx.toml"), []byte(pkgConfig+"\n[[files]]\n"+entry), 0o644)
		r.must(t, tok, "package", "publish", repo+":"+tag, pkg)
	}
	publish("1.0.0", "name = \"svc\"\nkind = \"connect\"\nprot = \"tcp\"\nhost = \"127.0.0.1\"\nport = "+svcPort+"\n")
	publish("2.0.0", "name = \"srv\"\nkind = \"listen\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = "+listenPort+"\n")
	deploy := func(args ...string) (int, string) {
		t.Helper()
		code, _, stderr := execute(t, append([]string{"deploy", "--backend", "nil", "--cache-dir", compileCache, "--no-package-cache", "--ca-bundle", r.caFile}, args...)...)
		return code, stderr
	}
	svc := "127.0.0.1:" + svcPort
	if code, stderr := deploy(repo + ":1.0.0"); code != 1 || !strings.Contains(stderr, "--allow-connect "+svc) {
		t.Fatalf("connect without consent: exit %d\n%s", code, stderr)
	}
	if code, stderr := deploy("--allow-connect", "127.0.0.1:1", repo+":1.0.0"); code != 1 || !strings.Contains(stderr, "--allow-connect "+svc) {
		t.Fatalf("connect with another endpoint's consent: exit %d\n%s", code, stderr)
	}
	select {
	case <-dialled:
		t.Fatal("the package's connect entry was dialled without consent")
	default:
	}
	if code, stderr := deploy("--allow-connect", svc, repo+":1.0.0"); code != 42 {
		t.Fatalf("connect with consent: exit %d\n%s", code, stderr)
	}
	<-dialled // dialled by the host with consent (hangs if not)

	if code, stderr := deploy(repo + ":2.0.0"); code != 1 || !strings.Contains(stderr, "--allow-listen "+listenPort) {
		t.Fatalf("listen without consent: exit %d\n%s", code, stderr)
	}
	if code, stderr := deploy("--allow-listen", listenPort, repo+":2.0.0"); code != 42 {
		t.Fatalf("listen with consent: exit %d\n%s", code, stderr)
	}
}

// TestDeployHostPathDotDot: a registry package's host_path with a ".."
// element is refused even when it cleans to a path the user allowed.
// Before, "ALLOWED/x/.." passed the consent check as ALLOWED, but the host
// opened it as the kernel resolves it: through x, a symbolic link in the
// allowed directory (one the workload can make there itself, with a
// relative target), to the parent of wherever x points. The workload got
// a directory the user never allowed, read-write.
func TestDeployHostPathDotDot(t *testing.T) {
	r, tok, repo := registryRepo(t, "dotdot")

	allowed := t.TempDir() // the directory the user allows
	victim := t.TempDir()  // one they do not
	if err := os.Mkdir(filepath.Join(victim, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(allowed, filepath.Join(victim, "inner"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(rel, filepath.Join(allowed, "x")); err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(testutil.BuildWasm(t, "../../examples/notes"))
	if err != nil {
		t.Fatal(err)
	}
	const stdio = "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"
	pkg := filepath.Join(t.TempDir(), "pkg")
	os.Mkdir(pkg, 0o755)
	os.WriteFile(filepath.Join(pkg, "main.wasm"), wasm, 0o644)
	os.WriteFile(filepath.Join(pkg, "Enarx.toml"), []byte("args = [\"written by the package\"]\n"+stdio+
		"[[files]]\nname = \"data\"\nkind = \"dir\"\nguest_path = \"/data\"\nsource = \"host\"\nhost_path = \""+allowed+"/x/..\"\n"), 0o644)
	r.must(t, tok, "package", "publish", repo+":1.0.0", pkg)

	code, _, stderr := execute(t, "deploy", "--backend", "nil", "--cache-dir", compileCache, "--no-package-cache", "--ca-bundle", r.caFile,
		"--allow-host-path", allowed, repo+":1.0.0")
	if des, _ := os.ReadDir(victim); len(des) != 1 {
		t.Errorf("the package wrote into a directory the user did not allow: %v", des)
	}
	if code != 1 || !strings.Contains(stderr, `a path with a ".." element`) {
		t.Fatalf("host_path %s/x/.. with --allow-host-path %s: exit %d, want 1 and the \"..\" refusal\n%s", allowed, allowed, code, stderr)
	}
}
