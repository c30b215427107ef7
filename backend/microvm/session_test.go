package microvm

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/backendtest"
	"github.com/enarx-go/enarx/backend/microvm/guest"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/drawbridge/bundle"
	"github.com/enarx-go/enarx/drawbridge/types"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// inProcess is a backend that runs the Keep's guest side (guest.Serve) in
// this process, connected to the host side (session) by a socketpair: the
// whole channel protocol without a VM.
type inProcess struct{ cacheDir string }

func (inProcess) Name() string                   { return "in-process channel" }
func (inProcess) Protection() backend.Protection { return backend.ProtectionNone }
func (inProcess) Available() bool                { return true }
func (inProcess) Configured() error              { return nil }

func (b inProcess) Run(ctx context.Context, l *backend.Launch) (int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return 1, err
	}
	hostEnd, guestEnd := os.NewFile(uintptr(fds[0]), "host"), os.NewFile(uintptr(fds[1]), "guest")
	done := make(chan int, 1)
	go func() {
		done <- guest.Serve(context.Background(), guestEnd, guest.Env{TEE: "none", TempDir: tempDir()})
	}()
	log := l.Options.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := newSession(hostEnd, l, log)
	s.stewardAddr = l.StewardAddr()
	s.cacheDir = b.cacheDir
	code, err := s.run(ctx, nil)
	// What the VM's end does to a guest still serving (the host gave up
	// before the Keep did): its channel ends. Closing the host's file
	// cannot: a read blocked in another thread keeps it open.
	if rc, cerr := guestEnd.SyscallConn(); cerr == nil {
		rc.Control(func(fd uintptr) { syscall.Shutdown(int(fd), syscall.SHUT_RDWR) })
	}
	<-done
	return code, err
}

func tempDir() string {
	d, _ := os.MkdirTemp("", "keep-guest-")
	return d
}

type result struct {
	code           int
	err            string
	stdout, stderr string
}

// runOn runs wasm on b as `enarx run` does, with stdio on pipes.
func runOn(t *testing.T, b backend.Backend, wasm []byte, cfgText string, stdin []byte, args ...string) result {
	t.Helper()
	return runWithEnv(t, b, wasm, cfgText, stdin, nil, args...)
}

// runWithEnv is runOn with keep.Options.Env.
func runWithEnv(t *testing.T, b backend.Backend, wasm []byte, cfgText string, stdin []byte, env []string, args ...string) result {
	t.Helper()
	w := keep.Workload{Wasm: wasm}
	if cfgText != "" {
		w.Config = []byte(cfgText)
	}
	r := backendtest.Run(t, b, w, stdin, keep.Options{Args: args, Env: env, NoCache: true})
	return result{code: r.Code, err: r.Err, stdout: r.Stdout, stderr: r.Stderr}
}

// build is the Go-built module keep/testdata/name. A microVM Keep runs
// wazero only, whose compiler -race slows ten times or more: these tests
// run in make test's CGO_ENABLED=0 pass (testutil.SkipUnderRace), but for
// the one that buildUnderRace keeps.
func build(t *testing.T, name string) []byte {
	t.Helper()
	testutil.SkipUnderRace(t, "a Go-built module on wazero (a microVM Keep's only engine), whose compiler -race slows ten times or more")
	return buildUnderRace(t, name)
}

// buildUnderRace is build without the skip: for the one Go-built workload
// the race detector watches the channel carry (8 MiB each way).
func buildUnderRace(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testutil.BuildWasm(t, "../../keep/testdata/"+name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// trapWasm is a module whose _start executes unreachable.
var trapWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
	0x03, 0x02, 0x01, 0x00,
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
	0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
}

type workload struct {
	name       string
	wasm       func(t *testing.T) []byte
	cfg        string
	stdin      []byte
	args       []string
	wantCode   int
	wantStdout string
	wantErr    string
	// raceChannelOnly: under -race, through the channel only (the nil
	// half is the keep package's test, and a second compile costs 40 s).
	raceChannelOnly bool
}

// workloads is the runtime's workload table (as the sandbox's parity test
// runs it), with 8 MiB through stdin and stdout.
func workloads() []workload {
	echoIn := make([]byte, 8<<20)
	rand.Read(echoIn)
	wasiCfg := "args = [\"--argument1\", \"--argument2=foo\"]\n[env]\nVAR1 = \"var1\"\n" +
		"[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"
	return []workload{
		{name: "hello", wasm: func(t *testing.T) []byte { return build(t, "hello") }, wantStdout: "Hello, world!\n"},
		{name: "echo 8MiB", wasm: func(t *testing.T) []byte { return buildUnderRace(t, "echo") }, stdin: echoIn, wantStdout: string(echoIn), raceChannelOnly: true},
		{name: "zerooneone", wasm: func(t *testing.T) []byte { return build(t, "zerooneone") }, stdin: []byte("Hello, World! 011\n"), wantStdout: "Uryyb, Jbeyq! 011\n"},
		{name: "exit 7", wasm: func(t *testing.T) []byte { return build(t, "exitcode") }, args: []string{"7"}, wantCode: 7},
		{name: "exit 200", wasm: func(t *testing.T) []byte { return build(t, "exitcode") }, args: []string{"200"}, wantCode: 200},
		{name: "go panic", wasm: func(t *testing.T) []byte { return build(t, "exitcode") }, args: []string{"panic"}, wantCode: 2},
		{name: "wasi args and env", wasm: func(t *testing.T) []byte { return build(t, "wasiargs") }, cfg: wasiCfg, args: []string{"cli1"},
			wantStdout: "arg main.wasm\narg --argument1\narg --argument2=foo\narg cli1\nenv FD_COUNT=3\nenv FD_NAMES=null:stdout:stderr\nenv VAR1=var1\n"},
		{name: "trap", wasm: func(*testing.T) []byte { return trapWasm }, wantCode: 1, wantErr: "main.wasm trapped"},
		{name: "invalid module", wasm: func(*testing.T) []byte { return []byte("not wasm at all") }, wantCode: 1, wantErr: "compiling main.wasm"},
	}
}

// TestChannelWorkloadsMatchNil runs the workload table through the whole
// channel protocol (host session + Keep guest in this process) and on the
// nil backend, and requires identical results.
func TestChannelWorkloadsMatchNil(t *testing.T) {
	for _, tc := range workloads() {
		t.Run(tc.name, func(t *testing.T) {
			wasm := tc.wasm(t)
			var results [2]result
			backends := []backend.Backend{backend.Nil{}, inProcess{}}
			if testutil.Race && tc.raceChannelOnly {
				backends[0] = nil
			}
			for i, b := range backends {
				if b == nil {
					continue
				}
				r := runOn(t, b, wasm, tc.cfg, tc.stdin, tc.args...)
				if r.code != tc.wantCode || r.stdout != tc.wantStdout || !strings.Contains(r.err, tc.wantErr) || (tc.wantErr == "") != (r.err == "") {
					t.Errorf("%s: code %d err %q stdout %.80q stderr %.300q; want code %d err ~%q stdout %.80q",
						b.Name(), r.code, r.err, r.stdout, r.stderr, tc.wantCode, tc.wantErr, tc.wantStdout)
				}
				results[i] = r
			}
			if backends[0] != nil && results[0] != results[1] {
				t.Errorf("nil and channel differ:\nnil     %+.300v\nchannel %+.300v", results[0], results[1])
			}
		})
	}
}

// TestChannelSockets runs the connect and listen workloads: their fds 3
// and 4 are host sockets relayed over channel streams.
func TestChannelSockets(t *testing.T) {
	t.Run("connect", func(t *testing.T) {
		testConnect(t, inProcess{}, build(t, "connect"))
	})
	t.Run("listen", func(t *testing.T) {
		testListen(t, inProcess{}, build(t, "listen"))
	})
}

// testConnect runs the connect workload on b against a TCP echo server:
// it checks FD_COUNT/FD_NAMES and echoes three lines over its fd 3.
func testConnect(t *testing.T, b backend.Backend, wasm []byte) {
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
	r := runOn(t, b, wasm, cfg, nil)
	if r.code != 0 || r.err != "" {
		t.Fatalf("code %d err %q stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
	}
}

// testListen runs the listen workload on b: it signals readiness over its
// connect fd, then must echo one line on each of three connections.
func testListen(t *testing.T, b backend.Backend, wasm []byte) {
	peer := testutil.NewListenPeer(t)
	r := runOn(t, b, wasm, peer.Config, nil)
	if r.code != 0 || r.err != "" || r.stdout != "listen ok\n" {
		t.Fatalf("code %d err %q stdout %q stderr %q", r.code, r.err, r.stdout, r.stderr)
	}
	if err := peer.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestChannelBundle: a registry bundle (as `enarx deploy` fetches it)
// crosses the channel whole and is verified and unpacked in the Keep.
func TestChannelBundle(t *testing.T) {
	wasm := build(t, "hello")
	cfg := []byte("[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n")
	rec := func(path, typ string, body []byte) bundle.Record {
		sum, _ := types.Compute(body)
		return bundle.Record{Path: path, Type: typ, Digest: sum.String(), Body: body}
	}
	we, _ := types.FileEntry(bytes.NewReader(wasm), types.WasmType)
	ce, _ := types.FileEntry(bytes.NewReader(cfg), types.TOMLType)
	dir, root, err := types.DirectoryNode(types.Directory{bundle.WasmName: we, bundle.ConfigName: ce})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := root.MarshalJSON()
	b := &bundle.Bundle{Source: "h/u/r:1.0.0", Records: []bundle.Record{
		rec(bundle.TagPath, types.EntryType, tag), rec(bundle.RootPath, types.DirectoryType, dir),
		rec(bundle.WasmName, types.WasmType, wasm), rec(bundle.ConfigName, types.TOMLType, cfg),
	}}
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := config.Parse("Enarx.toml", cfg)
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, _ := os.Pipe()
	defer outR.Close()
	var stdout bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&stdout, outR); close(done) }()
	code, err := inProcess{}.Run(context.Background(), &backend.Launch{Workload: keep.Workload{Bundle: data}, Config: parsed,
		Files: []*os.File{os.Stdin, outW, os.Stderr}, Options: keep.Options{NoCache: true}})
	outW.Close()
	<-done
	if code != 0 || err != nil || stdout.String() != "Hello, world!\n" {
		t.Fatalf("code %d err %v stdout %q", code, err, stdout.String())
	}

	// A bundle altered on the way is refused inside the Keep.
	bad := bytes.Replace(data, []byte("Hello, world!"), []byte("Hellx, world!"), 1)
	code, err = inProcess{}.Run(context.Background(), &backend.Launch{Workload: keep.Workload{Bundle: bad}, Config: parsed,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Options: keep.Options{NoCache: true}})
	if code != 1 || err == nil {
		t.Fatalf("a tampered bundle ran: code %d err %v", code, err)
	}
	t.Logf("tampered bundle: %v", err)
}

// TestChannelCompilationCache: a kvm-style Keep sends the code it compiled
// back to the host, which stores it (whole files only) and sends it into
// the next Keep of the same module.
func TestChannelCompilationCache(t *testing.T) {
	dir := t.TempDir()
	wasm := build(t, "hello")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	run := func() {
		t.Helper()
		outR, outW, _ := os.Pipe()
		defer outR.Close()
		go io.Copy(io.Discard, outR)
		code, err := inProcess{cacheDir: dir}.Run(context.Background(), &backend.Launch{Workload: keep.Workload{Wasm: wasm}, Config: config.Default(),
			Files: []*os.File{os.Stdin, outW, os.Stderr}, Options: keep.Options{Logger: log}})
		outW.Close()
		if code != 0 || err != nil {
			t.Fatalf("code %d err %v", code, err)
		}
	}
	run()
	var files []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatal("the Keep's compiled code was not stored")
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			t.Fatalf("a partial cache file was left: %s", f)
		}
	}
	logs.Reset()
	run()
	if !regexp.MustCompile(`msg="keep: compilation cache received" files=[1-9]`).MatchString(logs.String()) {
		t.Fatalf("the second Keep did not get the cache:\n%s", logs.String())
	}
}

// TestChannelEngine: the engine the host asks for reaches the Keep, which
// refuses one it does not have (a microVM Keep's init is built without cgo,
// so it has wazero only) with a clear error.
func TestChannelEngine(t *testing.T) {
	r := runOnEngine(t, inProcess{}, "no-such-engine")
	if r.code != 1 || !strings.Contains(r.err, "no-such-engine") {
		t.Fatalf("code %d err %q", r.code, r.err)
	}
}

func runOnEngine(t *testing.T, b backend.Backend, eng string) result {
	outR, outW, _ := os.Pipe()
	defer outR.Close()
	go io.Copy(io.Discard, outR)
	code, err := b.Run(context.Background(), &backend.Launch{Workload: keep.Workload{Wasm: trapWasm}, Config: config.Default(),
		Files: []*os.File{os.Stdin, outW, os.Stderr}, Options: keep.Options{Engine: eng, NoCache: true}})
	outW.Close()
	r := result{code: code}
	if err != nil {
		r.err = err.Error()
	}
	return r
}

// TestChannelOptionsEnv: keep.Options.Env crosses the channel in the launch
// message and reaches the workload after Enarx.toml's [env] (whose value
// wins a clash), as on the nil backend; a bad entry is refused with the
// same error.
func TestChannelOptionsEnv(t *testing.T) {
	wasm := build(t, "wasiargs")
	cfg := "[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n[env]\nVAR1 = \"var1\"\n"
	env := []string{"HOST1=a", "VAR1=from the host", "HOST1=b", "EMPTY="}
	want := "arg main.wasm\nenv FD_COUNT=3\nenv FD_NAMES=null:stdout:stderr\nenv VAR1=var1\nenv HOST1=b\nenv EMPTY=\n"
	for _, b := range []backend.Backend{backend.Nil{}, inProcess{}} {
		if r := runWithEnv(t, b, wasm, cfg, nil, env); r.code != 0 || r.err != "" || r.stdout != want {
			t.Errorf("%s: code %d err %q stdout %q stderr %.300q; want stdout %q", b.Name(), r.code, r.err, r.stdout, r.stderr, want)
		}
		if r := runWithEnv(t, b, wasm, cfg, nil, []string{"A=b\x00c"}); r.code != 1 || !strings.Contains(r.err, "contains a NUL character") {
			t.Errorf("%s, env with a NUL: code %d err %q", b.Name(), r.code, r.err)
		}
	}
	// Arguments that do not fit the channel's launch frame are refused
	// with what to change (the frame's own error named no cause).
	long := strings.Repeat("\x01", 12<<10) // escaped as \u0001 in the frame
	if r := runWithEnv(t, inProcess{}, wasm, cfg, nil, nil, long); r.code != 1 || !strings.Contains(r.err, "pass fewer or shorter arguments") {
		t.Errorf("arguments over a frame: code %d err %.300q", r.code, r.err)
	}
}
