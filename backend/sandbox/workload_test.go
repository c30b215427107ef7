package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/backendtest"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

type wlResult struct {
	code           int
	err            string
	stdout, stderr string
}

// runOn runs wasm on backend b the way `enarx run` does: hostio opens the
// config's files (stdio replaced by pipes), the backend runs the Keep.
func runOn(t *testing.T, b backend.Backend, wasm []byte, cfgText string, stdin []byte, args ...string) wlResult {
	t.Helper()
	return runWithEnv(t, b, wasm, cfgText, stdin, nil, args...)
}

// runWithEnv is runOn with keep.Options.Env.
func runWithEnv(t *testing.T, b backend.Backend, wasm []byte, cfgText string, stdin []byte, env []string, args ...string) wlResult {
	t.Helper()
	w := keep.Workload{Wasm: wasm}
	if cfgText != "" {
		w.Config = []byte(cfgText)
	}
	r := backendtest.Run(t, b, w, stdin, keep.Options{Args: args, Env: env, CacheDir: testCacheDir, Engine: engineOf(t)})
	return wlResult{code: r.Code, err: r.Err, stdout: r.Stdout, stderr: r.Stderr}
}

// eachEngine runs test once per engine of this build (both in the race
// pass of make test, which builds with -tags wasmtime), as a subtest named
// after the engine, which engineOf reads back.
func eachEngine(t *testing.T, test func(t *testing.T)) {
	for _, eng := range keep.Engines() {
		t.Run(eng, test)
	}
}

// engineOf is the engine a test runs on: its eachEngine subtest's name.
func engineOf(t testing.TB) string {
	for _, part := range strings.Split(t.Name(), "/") {
		if part != "" && keep.CheckEngine(part) == nil {
			return part
		}
	}
	return ""
}

// onWazero reports whether t runs on wazero (engineOf; "" is the
// build's default engine).
func onWazero(t testing.TB) bool {
	e := engineOf(t)
	if e == "" {
		e = keep.Engines()[0]
	}
	return e == "wazero"
}

// build is the Go-built module keep/testdata/name (see
// testutil.SkipWazeroUnderRace).
func build(t *testing.T, name string) []byte {
	t.Helper()
	testutil.SkipWazeroUnderRace(t, onWazero(t))
	b, err := os.ReadFile(testutil.BuildWasm(t, "../../keep/testdata/"+name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trapWasm is a module whose _start executes unreachable.
var trapWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
	0x03, 0x02, 0x01, 0x00, // func 0: type 0
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00, // export _start
	0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b, // body: unreachable; end
}

// TestWorkloadsNilAndSandbox runs one table of workloads on both the nil
// backend (in process) and the sandbox backend (confined child process),
// on every engine, and requires identical exit status, error text, stdout
// and stderr.
func TestWorkloadsNilAndSandbox(t *testing.T) { eachEngine(t, testWorkloadsNilAndSandbox) }

func testWorkloadsNilAndSandbox(t *testing.T) {
	echoIn := make([]byte, 2<<20)
	rand.Read(echoIn)
	wasiCfg := "args = [\"--argument1\", \"--argument2=foo\"]\n[env]\nVAR1 = \"var1\"\n" +
		"[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"
	cases := []struct {
		name       string
		wasm       func(t *testing.T) []byte
		cfg        string
		stdin      []byte
		args       []string
		wantCode   int
		wantStdout string
		wantErr    string
		// heavy: another Go-built module to compile (exit 7's module is
		// compiled once and cached); skipped by -short.
		heavy bool
	}{
		{name: "hello", wasm: func(t *testing.T) []byte { return build(t, "hello") }, wantStdout: "Hello, world!\n"},
		{name: "echo 2MiB", wasm: func(t *testing.T) []byte { return build(t, "echo") }, stdin: echoIn, wantStdout: string(echoIn), heavy: true},
		{name: "zerooneone", wasm: func(t *testing.T) []byte { return build(t, "zerooneone") }, stdin: []byte("Hello, World! 011\n"), wantStdout: "Uryyb, Jbeyq! 011\n", heavy: true},
		{name: "exit 7", wasm: func(t *testing.T) []byte { return build(t, "exitcode") }, args: []string{"7"}, wantCode: 7},
		{name: "exit 200", wasm: func(t *testing.T) []byte { return build(t, "exitcode") }, args: []string{"200"}, wantCode: 200},
		{name: "go panic", wasm: func(t *testing.T) []byte { return build(t, "exitcode") }, args: []string{"panic"}, wantCode: 2},
		{name: "wasi args and env", wasm: func(t *testing.T) []byte { return build(t, "wasiargs") }, cfg: wasiCfg, args: []string{"cli1"},
			wantStdout: "arg main.wasm\narg --argument1\narg --argument2=foo\narg cli1\nenv FD_COUNT=3\nenv FD_NAMES=null:stdout:stderr\nenv VAR1=var1\n", heavy: true},
		{name: "trap", wasm: func(*testing.T) []byte { return trapWasm }, wantCode: 1, wantErr: "main.wasm trapped"},
		{name: "invalid module", wasm: func(*testing.T) []byte { return []byte("not wasm at all") }, wantCode: 1, wantErr: "compiling main.wasm"},
	}
	sb := Backend{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.heavy && testing.Short() {
				t.Skip("another Go-built module to compile")
			}
			wasm := tc.wasm(t)
			var results [2]wlResult
			for i, b := range []backend.Backend{backend.Nil{}, sb} {
				r := runOn(t, b, wasm, tc.cfg, tc.stdin, tc.args...)
				if r.code != tc.wantCode || r.stdout != tc.wantStdout || !strings.Contains(r.err, tc.wantErr) || (tc.wantErr == "") != (r.err == "") {
					t.Errorf("%s: code %d err %q stdout %.80q stderr %.300q; want code %d err ~%q stdout %.80q",
						b.Name(), r.code, r.err, r.stdout, r.stderr, tc.wantCode, tc.wantErr, tc.wantStdout)
				}
				results[i] = r
			}
			if results[0] != results[1] {
				t.Errorf("nil and sandbox differ:\nnil     %+.300v\nsandbox %+.300v", results[0], results[1])
			}
		})
	}
}

// TestSocketsNilAndSandbox runs the connect and listen workloads (fds 3/4
// are host sockets passed into the Keep) on both backends and engines.
func TestSocketsNilAndSandbox(t *testing.T) { eachEngine(t, testSocketsNilAndSandbox) }

func testSocketsNilAndSandbox(t *testing.T) {
	backends := []backend.Backend{backend.Nil{}, Backend{}}
	if testutil.Race || testing.Short() {
		backends = backends[1:] // the keep package tests these on nil
	}
	for _, b := range backends {
		t.Run(b.Name()+"/connect", func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(c, c)
			}()
			cfg := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
				"[[files]]\nname = \"stream\"\nkind = \"connect\"\nprot = \"tcp\"\nhost = \"127.0.0.1\"\nport = %d\n", ln.Addr().(*net.TCPAddr).Port)
			r := runOn(t, b, build(t, "connect"), cfg, nil)
			if r.code != 0 || r.err != "" {
				t.Fatalf("code %d err %q stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
			}
		})
		t.Run(b.Name()+"/listen", func(t *testing.T) {
			peer := testutil.NewListenPeer(t)
			r := runOn(t, b, build(t, "listen"), peer.Config, nil)
			if r.code != 0 || r.err != "" || r.stdout != "listen ok\n" {
				t.Fatalf("code %d err %q stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
			}
			if err := peer.Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// spinWasm is a module whose _start loops forever.
var spinWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
	0x03, 0x02, 0x01, 0x00,
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
	0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b, // loop br 0 end
}

func TestPolicyTimeoutKillsRunawayWasm(t *testing.T) {
	eachEngine(t, testPolicyTimeoutKillsRunawayWasm)
}

func testPolicyTimeoutKillsRunawayWasm(t *testing.T) {
	// A config without [[files]]: the workload gets no fds.
	code, err := Backend{}.Run(context.Background(), &backend.Launch{Workload: keep.Workload{Wasm: spinWasm, Config: []byte{}}, Config: &config.Config{},
		Options: keep.Options{NoCache: true, Engine: engineOf(t)}, Policy: backend.Policy{Timeout: 500 * time.Millisecond}})
	if code != 1 || err != ErrTimeout {
		t.Fatalf("got %d, %v; want 1, ErrTimeout", code, err)
	}
}

// TestBuiltEnarx builds enarx as users do — `go build`/`go install`
// with cgo (the default wherever a C compiler exists), CGO_ENABLED=0
// (`make build`) and with the wasmtime engine (cgo, -tags wasmtime, `make
// build ENGINES=wasmtime`, run with --engine wasmtime) — and runs a
// runaway workload with --require-isolation in each. It reads every Keep thread's /proc status from the host (no
// capability, no_new_privs, seccomp), then sends enarx SIGTERM (as
// Ctrl-C/kill would) and checks that both enarx and its Keep are gone.
func TestBuiltEnarx(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the enarx binary twice")
	}
	if missing := hostLacksLayers(); missing != "" {
		testutil.NeedHost(t, "the kernel lacks %s", missing)
	}
	dir := t.TempDir()
	mod := filepath.Join(dir, "spin.wasm")
	os.WriteFile(mod, spinWasm, 0o644)
	for _, b := range []struct{ cgo, engine string }{{"1", ""}, {"0", ""}, {"1", "wasmtime"}} {
		cgo := b.cgo
		name := "CGO_ENABLED=" + cgo
		args := []string{"build", "-o", filepath.Join(dir, "enarx-cgo"+cgo+b.engine)}
		if b.engine != "" {
			name += "/-tags=" + b.engine
			args = append(args, "-tags", b.engine)
		}
		t.Run(name, func(t *testing.T) {
			enarx := args[2]
			build := exec.Command("go", append(args, "../../cmd/enarx")...)
			build.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building enarx: %v\n%s", err, out)
			}
			// Make sure the build is the kind meant: dynamically linked
			// (cgo) or static.
			f, err := elf.Open(enarx)
			if err != nil {
				t.Fatal(err)
			}
			interp := ""
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					b, _ := io.ReadAll(p.Open())
					interp = string(bytes.TrimRight(b, "\x00"))
				}
			}
			f.Close()
			if (interp != "") != (cgo == "1") {
				if cgo == "1" {
					testutil.NeedHost(t, "CGO_ENABLED=1 built a static enarx: no C compiler?")
				}
				t.Fatalf("CGO_ENABLED=%s built an enarx with interpreter %q", cgo, interp)
			}
			runBuiltEnarx(t, enarx, mod, b.engine)
		})
	}
}

func runBuiltEnarx(t *testing.T, enarx, mod, eng string) {
	args := []string{"--log-level", "debug", "run", "--backend", "sandbox", "--require-isolation", "--no-cache"}
	if eng != "" {
		args = append(args, "--engine", eng)
	}
	cmd := exec.Command(enarx, append(args, mod)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	done := make(chan error, 1)
	var log bytes.Buffer
	sc := bufio.NewScanner(stderr)
	pid := 0
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if m := regexp.MustCompile(`sandbox Keep started" pid=(\d+)`).FindStringSubmatch(sc.Text()); m != nil {
			pid, _ = strconv.Atoi(m[1])
			break
		}
	}
	var mu sync.Mutex
	go func() {
		for sc.Scan() {
			mu.Lock()
			log.WriteString(sc.Text() + "\n")
			mu.Unlock()
		}
		done <- cmd.Wait()
	}()
	if pid == 0 {
		cmd.Process.Kill()
		<-done
		t.Fatalf("enarx did not report the Keep's pid:\n%s", log.String())
	}
	defer func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("enarx's log:\n%s", log.String())
			mu.Unlock()
		}
	}()
	// The Go runtime alone starts several threads.
	checkKeepThreads(t, pid, 3, done)
	time.Sleep(200 * time.Millisecond) // let the workload start spinning
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("enarx did not exit on SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code == 0 {
		t.Errorf("enarx exited 0 after SIGTERM")
	}
	deadline := time.Now().Add(5 * time.Second)
	for unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("Keep %d still running after enarx exited", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStewardThroughBroker: with steward set, the confined Keep (which may
// not create sockets) reaches the Steward through the host's dial broker,
// and fails or succeeds exactly as on nil. The "Steward" here refuses
// every request with 403, so both backends must report that refusal.
func TestStewardThroughBroker(t *testing.T) {
	var mu sync.Mutex
	posts := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		posts++
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
		http.Error(w, "workload not allowed by policy", http.StatusForbidden)
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg := fmt.Sprintf("steward = %q\nsteward_ca = '''\n%s'''\n[[files]]\nkind = \"stdout\"\n[[files]]\nname = \"l\"\nkind = \"listen\"\nprot = \"tls\"\naddr = \"127.0.0.1\"\nport = 0\n",
		srv.URL, caPEM)
	var errs []string
	for _, b := range []backend.Backend{backend.Nil{}, Backend{}} {
		mu.Lock()
		posts = 0
		mu.Unlock()
		r := runOn(t, b, trapWasm, cfg, nil)
		mu.Lock()
		n := posts
		mu.Unlock()
		if n == 0 || r.code != 1 || !strings.Contains(r.err, "403") {
			t.Errorf("%s: %d requests reached the Steward; code %d err %q", b.Name(), n, r.code, r.err)
		}
		t.Logf("%s: %s", b.Name(), r.err)
		errs = append(errs, r.err)
	}
	if len(errs) == 2 && errs[0] != errs[1] {
		t.Errorf("nil and sandbox differ:\nnil     %s\nsandbox %s", errs[0], errs[1])
	}
}
