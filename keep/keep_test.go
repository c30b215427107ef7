package keep_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/hostio"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/keep/internal/engine"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

var cacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "enarx-keep-cache-")
	if err != nil {
		panic(err)
	}
	cacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// eachEngine runs test once per engine of this build, as a subtest named
// after the engine (which engineOf reads back).
func eachEngine(t *testing.T, test func(t *testing.T)) {
	for _, eng := range engine.Names() {
		t.Run(eng, test)
	}
}

// engineOf is the engine a test runs on: the one its eachEngine subtest
// is named after ("" = the default).
func engineOf(t testing.TB) string {
	for _, part := range strings.Split(t.Name(), "/") {
		if engine.Check(part) == nil && part != "" {
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

// workload is the Go-built module testdata/name (see
// testutil.SkipWazeroUnderRace).
func workload(t testing.TB, name string) []byte {
	t.Helper()
	testutil.SkipWazeroUnderRace(t, onWazero(t))
	b, err := os.ReadFile(testutil.BuildWasm(t, "testdata/"+name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type result struct {
	code           int
	err            error
	stdout, stderr string
}

// run runs wasm with cfgText (empty = no config) through hostio.Open, with
// stdio replaced by pipes; stdin gets the given bytes then EOF.
func run(t testing.TB, wasm []byte, cfgText string, stdin []byte, args ...string) result {
	t.Helper()
	return runOpts(t, keep.Workload{Wasm: wasm}, cfgText, stdin, keep.Options{Args: args})
}

func runOpts(t testing.TB, w keep.Workload, cfgText string, stdin []byte, o keep.Options) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return runCtx(ctx, t, w, cfgText, stdin, o)
}

func runCtx(ctx context.Context, t testing.TB, w keep.Workload, cfgText string, stdin []byte, o keep.Options) result {
	t.Helper()
	cfg := config.Default()
	if cfgText != "" {
		var err error
		if cfg, err = config.Parse("Enarx.toml", []byte(cfgText)); err != nil {
			t.Fatal(err)
		}
		w.Config = []byte(cfgText)
	}
	files, err := hostio.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer hostio.Close(files)
	inR, inW := pipe(t)
	outR, outW := pipe(t)
	errR, errW := pipe(t)
	for i, f := range cfg.Files {
		switch f.Kind {
		case config.KindStdin:
			files[i] = inR
		case config.KindStdout:
			files[i] = outW
		case config.KindStderr:
			files[i] = errW
		}
	}
	var wg sync.WaitGroup
	var stdout, stderr bytes.Buffer
	wg.Add(3)
	go func() { defer wg.Done(); inW.Write(stdin); inW.Close() }()
	go func() { defer wg.Done(); io.Copy(&stdout, outR) }()
	go func() { defer wg.Done(); io.Copy(&stderr, errR) }()
	o.Files = files
	if o.Engine == "" {
		o.Engine = engineOf(t)
	}
	if o.CacheDir == "" {
		o.CacheDir = cacheDir
	}
	code, err := keep.Run(ctx, w, o)
	outW.Close()
	errW.Close()
	inR.Close()
	wg.Wait()
	return result{code: code, err: err, stdout: stdout.String(), stderr: stderr.String()}
}

func pipe(t testing.TB) (*os.File, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestReturn1(t *testing.T) { eachEngine(t, testReturn1) }

func testReturn1(t *testing.T) {
	// Upstream return_1: the default export's result is ignored: exit 0.
	r := run(t, wasmtest.Return1(), "", nil)
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d, err %v", r.code, r.err)
	}
}

func TestNoExport(t *testing.T) { eachEngine(t, testNoExport) }

func testNoExport(t *testing.T) {
	r := run(t, wasmtest.NoExport(), "", nil)
	if r.code != 1 || !errors.Is(r.err, keep.ErrNoEntryPoint) {
		t.Fatalf("code %d, err %v; want 1, ErrNoEntryPoint", r.code, r.err)
	}
}

func TestEntryPointWithParams(t *testing.T) { eachEngine(t, testEntryPointWithParams) }

func testEntryPointWithParams(t *testing.T) {
	r := run(t, wasmtest.StartParams(), "", nil)
	if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), "must take none") {
		t.Fatalf("code %d, err %v", r.code, r.err)
	}
}

func TestInvalidModule(t *testing.T) { eachEngine(t, testInvalidModule) }

func testInvalidModule(t *testing.T) {
	r := run(t, []byte("not wasm at all"), "", nil)
	if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), "compiling main.wasm") {
		t.Fatalf("code %d, err %v", r.code, r.err)
	}
}

func TestTrapHasBacktrace(t *testing.T) { eachEngine(t, testTrapHasBacktrace) }

func testTrapHasBacktrace(t *testing.T) {
	r := run(t, wasmtest.Trap(), "", nil)
	if r.code != 1 || r.err == nil {
		t.Fatalf("code %d, err %v", r.code, r.err)
	}
	msg := r.err.Error()
	for _, want := range []string{"trapped", "unreachable", "wasm stack trace"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestProcExitCodes(t *testing.T) { eachEngine(t, testProcExitCodes) }

func testProcExitCodes(t *testing.T) {
	for _, mod := range []string{"wasi_snapshot_preview1", "wasi_unstable"} {
		for _, n := range []int32{0, 1, 3, 42, 255} {
			t.Run(fmt.Sprintf("%s/%d", mod, n), func(t *testing.T) {
				r := run(t, wasmtest.ProcExit(mod, n), "", nil)
				if r.err != nil || r.code != int(n) {
					t.Fatalf("code %d, err %v; want %d", r.code, r.err, n)
				}
			})
		}
	}
}

func TestGoExitCodes(t *testing.T) { eachEngine(t, testGoExitCodes) }

func testGoExitCodes(t *testing.T) {
	wasm := workload(t, "exitcode")
	for _, n := range []string{"0", "1", "7", "200"} {
		t.Run(n, func(t *testing.T) {
			r := run(t, wasm, "", nil, n)
			if r.err != nil || fmt.Sprint(r.code) != n {
				t.Fatalf("code %d, err %v; want %s", r.code, r.err, n)
			}
			if r.stderr != "exiting with "+n+"\n" {
				t.Errorf("stderr %q", r.stderr)
			}
		})
	}
	// A Go panic exits with status 2 and its message on stderr.
	r := run(t, wasm, "", nil, "panic")
	if r.code != 2 || !strings.Contains(r.stderr, "as requested") {
		t.Fatalf("panic: code %d err %v stderr %q", r.code, r.err, r.stderr)
	}
}

func TestHello(t *testing.T) { eachEngine(t, testHello) }

func testHello(t *testing.T) {
	r := run(t, workload(t, "hello"), "", nil)
	if r.err != nil || r.code != 0 || r.stdout != "Hello, world!\n" {
		t.Fatalf("code %d err %v stdout %q", r.code, r.err, r.stdout)
	}
}

func TestWasiArgsAndEnv(t *testing.T) { eachEngine(t, testWasiArgsAndEnv) }

func testWasiArgsAndEnv(t *testing.T) {
	cfg := `
args = ["--argument1", "--argument2=foo"]

[env]
VAR1 = "var1"
FD_COUNT = "user"

[[files]]
kind = "null"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"
`
	r := run(t, workload(t, "wasiargs"), cfg, nil, "cli1", "cli 2")
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d err %v stderr %s", r.code, r.err, r.stderr)
	}
	want := strings.Join([]string{
		"arg main.wasm", "arg --argument1", "arg --argument2=foo", "arg cli1", "arg cli 2",
		// The user's FD_COUNT is a second entry after the runtime's (see
		// TestEnvironOrder); Go's os.Environ keeps the first of duplicates.
		"env FD_COUNT=3", "env FD_NAMES=null:stdout:stderr", "env VAR1=var1", "",
	}, "\n")
	if r.stdout != want {
		t.Fatalf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
}

func TestEcho2MiB(t *testing.T) { eachEngine(t, testEcho2MiB) }

func testEcho2MiB(t *testing.T) {
	in := make([]byte, 2<<20)
	rand.Read(in)
	r := run(t, workload(t, "echo"), "", in)
	if r.err != nil || r.code != 0 {
		t.Fatalf("code %d err %v stderr %s", r.code, r.err, r.stderr)
	}
	if r.stdout != string(in) {
		t.Fatalf("echo returned %d bytes that differ from the %d sent", len(r.stdout), len(in))
	}
}

func TestZeroOneOne(t *testing.T) { eachEngine(t, testZeroOneOne) }

func testZeroOneOne(t *testing.T) {
	r := run(t, workload(t, "zerooneone"), "", []byte("Hello, World! 011\n"))
	if r.err != nil || r.code != 0 || r.stdout != "Uryyb, Jbeyq! 011\n" {
		t.Fatalf("code %d err %v stdout %q", r.code, r.err, r.stdout)
	}
}

func TestMemoryStress(t *testing.T) { eachEngine(t, testMemoryStress) }

func testMemoryStress(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 3+ GiB of guest memory in total")
	}
	r := run(t, workload(t, "memstress"), "", nil)
	if r.err != nil || r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("code %d err %v stdout %q stderr %s", r.code, r.err, r.stdout, r.stderr)
	}
}

func TestMemoryLimit(t *testing.T) { eachEngine(t, testMemoryLimit) }

func testMemoryLimit(t *testing.T) {
	r := runOpts(t, keep.Workload{Wasm: workload(t, "memstress")}, "", nil,
		keep.Options{Args: []string{"16"}, MemoryLimit: 96 << 20})
	var mle *keep.MemoryLimitError
	if !errors.As(r.err, &mle) {
		t.Fatalf("code %d err %v stderr %s; want a MemoryLimitError", r.code, r.err, r.stderr)
	}
	if mle.Limit != 96<<20 || mle.Requested <= mle.Limit {
		t.Fatalf("limit %d requested %d", mle.Limit, mle.Requested)
	}
	if r.code == 0 {
		t.Fatal("exit code 0 after a memory limit breach")
	}
	if !strings.Contains(r.err.Error(), "--memory") {
		t.Errorf("error %q does not say how to raise the limit", r.err)
	}
}

func TestWasmSHA256(t *testing.T) { eachEngine(t, testWasmSHA256) }

// testWasmSHA256: with Options.WasmSHA256 set, Run runs the module only if
// it has that digest — also when the compilation cache has the module the
// digest names.
func testWasmSHA256(t *testing.T) {
	dir := t.TempDir()
	good, other := wasmtest.ProcExit("wasi_snapshot_preview1", 5), wasmtest.ProcExit("wasi_snapshot_preview1", 6)
	sum := sha256.Sum256(good)
	want := hex.EncodeToString(sum[:])
	for _, c := range []struct {
		wasm []byte
		code int
		err  string
	}{
		{good, 5, ""}, // compiles, fills the cache
		{good, 5, ""}, // from the cache
		{other, 1, "module digest mismatch: expected sha256:" + want},
		{good[:len(good)-1], 1, "module digest mismatch"},
	} {
		r := runOpts(t, keep.Workload{Wasm: c.wasm}, "", nil, keep.Options{CacheDir: dir, WasmSHA256: want})
		if r.code != c.code || (c.err == "") != (r.err == nil) || r.err != nil && !strings.Contains(r.err.Error(), c.err) {
			t.Fatalf("code %d err %v; want %d, %q", r.code, r.err, c.code, c.err)
		}
	}
}

func TestNoCache(t *testing.T) { eachEngine(t, testNoCache) }

func testNoCache(t *testing.T) {
	dir := t.TempDir()
	r := runOpts(t, keep.Workload{Wasm: wasmtest.ProcExit("wasi_snapshot_preview1", 5)}, "", nil,
		keep.Options{NoCache: true, CacheDir: dir})
	if r.err != nil || r.code != 5 {
		t.Fatalf("code %d err %v", r.code, r.err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("--no-cache wrote %v", entries)
	}
}

// TestAnnouncedDigest: with a digest announced (Options.WasmSHA256, as
// the sandbox's Keep process sets it), a module that does not have it is
// refused, also when the announced digest names a module in the
// compilation cache, whose entry Run loads while it hashes the module it
// was given: the cached module must not run in its place.
func TestAnnouncedDigest(t *testing.T) { eachEngine(t, testAnnouncedDigest) }

func testAnnouncedDigest(t *testing.T) {
	dir := t.TempDir()
	a, b := wasmtest.ProcExit("wasi_snapshot_preview1", 5), wasmtest.ProcExit("wasi_snapshot_preview1", 7)
	sumA, sumB := sha256.Sum256(a), sha256.Sum256(b)
	for _, c := range []struct {
		name      string
		wasm      []byte
		announced string
		noCache   bool
		code      int
		err       string
	}{
		{"a compiles into the cache", a, hex.EncodeToString(sumA[:]), false, 5, ""},
		{"a from the cache", a, hex.EncodeToString(sumA[:]), false, 5, ""},
		{"b announced as a", b, hex.EncodeToString(sumA[:]), false, 1, "module digest mismatch"},
		{"b announced as a, no cache", b, hex.EncodeToString(sumA[:]), true, 1, "module digest mismatch"},
		{"b announced as itself", b, hex.EncodeToString(sumB[:]), false, 7, ""},
		{"b announced as a again", b, hex.EncodeToString(sumA[:]), false, 1, "module digest mismatch"},
		{"not a digest", b, "sha256:" + hex.EncodeToString(sumB[:]), false, 1, "module digest mismatch"},
		{"uppercase", a, strings.ToUpper(hex.EncodeToString(sumA[:])), false, 1, "module digest mismatch"},
	} {
		r := runOpts(t, keep.Workload{Wasm: c.wasm}, "", nil, keep.Options{CacheDir: dir, NoCache: c.noCache, WasmSHA256: c.announced})
		if r.code != c.code || (c.err == "") != (r.err == nil) || r.err != nil && !strings.Contains(r.err.Error(), c.err) {
			t.Fatalf("%s: code %d err %v; want %d, %q", c.name, r.code, r.err, c.code, c.err)
		}
	}
}

func TestConfigErrors(t *testing.T) { eachEngine(t, testConfigErrors) }

func testConfigErrors(t *testing.T) {
	r := run(t, workload(t, "hello"), "", nil)
	if r.err != nil {
		t.Fatal(r.err)
	}
	w := keep.Workload{Wasm: wasmtest.Return1(), Config: []byte("[[files]]\nkind = \"bogus\"\n"), ConfigName: "my.toml"}
	code, err := keep.Run(context.Background(), w, keep.Options{Engine: engineOf(t), NoCache: true})
	if code != 1 || err == nil || !strings.Contains(err.Error(), "my.toml") {
		t.Fatalf("code %d err %v", code, err)
	}
}

func TestHostFilesMustMatchConfig(t *testing.T) { eachEngine(t, testHostFilesMustMatchConfig) }

func testHostFilesMustMatchConfig(t *testing.T) {
	cfg := "[[files]]\nkind = \"stdin\"\n\n[[files]]\nname = \"in\"\nkind = \"listen\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = 1\n"
	w := keep.Workload{Wasm: wasmtest.Return1(), Config: []byte(cfg)}
	// Wrong count.
	if _, err := keep.Run(context.Background(), w, keep.Options{Engine: engineOf(t), Files: []*os.File{os.Stdin}, NoCache: true}); err == nil {
		t.Fatal("accepted 1 file for 2 entries")
	}
	// A pipe where a listening socket belongs.
	r, wp := pipe(t)
	_ = wp
	_, err := keep.Run(context.Background(), w, keep.Options{Engine: engineOf(t), Files: []*os.File{os.Stdin, r}, NoCache: true})
	if err == nil || !strings.Contains(err.Error(), "listening TCP socket") {
		t.Fatalf("err %v", err)
	}
	// A connected socket where a listening socket belongs.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cf, _ := c.(*net.TCPConn).File()
	defer cf.Close()
	_, err = keep.Run(context.Background(), w, keep.Options{Engine: engineOf(t), Files: []*os.File{os.Stdin, cf}, NoCache: true})
	if err == nil || !strings.Contains(err.Error(), "listening TCP socket") {
		t.Fatalf("err %v", err)
	}
}

// echoServer accepts connections on 127.0.0.1 and echoes lines.
func echoServer(t *testing.T) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	return l
}

func TestConnectTCP(t *testing.T) { eachEngine(t, testConnectTCP) }

func testConnectTCP(t *testing.T) {
	l := echoServer(t)
	port := l.Addr().(*net.TCPAddr).Port
	cfg := fmt.Sprintf(`
[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

[[files]]
name = "stream"
kind = "connect"
prot = "tcp"
host = "localhost"
port = %d
`, port)
	r := run(t, workload(t, "connect"), cfg, nil)
	if r.err != nil || r.code != 0 || r.stdout != "connect ok\n" {
		t.Fatalf("code %d err %v stdout %q stderr %s", r.code, r.err, r.stdout, r.stderr)
	}
}

func TestConnectFailureNamesEndpoint(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cfg, err := config.Parse("Enarx.toml", []byte(fmt.Sprintf("[[files]]\nkind = \"connect\"\nprot = \"tcp\"\nhost = \"127.0.0.1\"\nport = %d\n", l.Addr().(*net.TCPAddr).Port)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = hostio.Open(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("err %v; want it to name %s", err, addr)
	}
}

func TestListenTCP(t *testing.T) { eachEngine(t, testListenTCP) }

func testListenTCP(t *testing.T) {
	peer := testutil.NewListenPeer(t)
	r := run(t, workload(t, "listen"), peer.Config, nil)
	if r.err != nil || r.code != 0 || r.stdout != "listen ok\n" {
		t.Fatalf("code %d err %v stdout %q stderr %s", r.code, r.err, r.stdout, r.stderr)
	}
	if err := peer.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestMemoryMinimumAboveLimit(t *testing.T) { eachEngine(t, testMemoryMinimumAboveLimit) }

func testMemoryMinimumAboveLimit(t *testing.T) {
	r := runOpts(t, keep.Workload{Wasm: wasmtest.Memory(100)}, "", nil, keep.Options{MemoryLimit: 64 << 16})
	var mle *keep.MemoryLimitError
	if r.code != 1 || !errors.As(r.err, &mle) || mle.Requested != 100<<16 {
		t.Fatalf("code %d err %v", r.code, r.err)
	}
}

// TestExamples runs the examples/ workloads with their own Enarx.toml.
func TestExamples(t *testing.T) { eachEngine(t, testExamples) }

func testExamples(t *testing.T) {
	testutil.SkipWazeroUnderRace(t, onWazero(t))
	load := func(name string) ([]byte, string) {
		wasm, err := os.ReadFile(testutil.BuildWasm(t, "../examples/"+name))
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := os.ReadFile("../examples/" + name + "/Enarx.toml")
		if err != nil {
			t.Fatal(err)
		}
		return wasm, string(cfg)
	}
	// hello and tcp-echo: their configs are valid and they build.
	for _, name := range []string{"hello", "tcp-echo"} {
		if wasm, cfg := load(name); len(wasm) == 0 {
			t.Fatalf("%s: empty module", name)
		} else if _, err := config.Parse("Enarx.toml", []byte(cfg)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	wasm, cfg := load("echo")
	if r := run(t, wasm, cfg, []byte("echo me\n")); r.err != nil || r.stdout != "echo me\n" {
		t.Fatalf("echo: %v %q", r.err, r.stdout)
	}
}

func TestConcurrentRunsShareCache(t *testing.T) { eachEngine(t, testConcurrentRunsShareCache) }

func testConcurrentRunsShareCache(t *testing.T) {
	wasm := wasmtest.ProcExit("wasi_snapshot_preview1", 9)
	dir := t.TempDir()
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			code, err := keep.Run(context.Background(), keep.Workload{Wasm: wasm},
				keep.Options{Engine: engineOf(t), Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, CacheDir: dir})
			if err != nil || code != 9 {
				errs <- fmt.Errorf("code %d err %v", code, err)
				return
			}
			errs <- nil
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One directory per engine version and settings (wazero also keeps
	// the instrumented module in one of its own).
	want := map[string]int{"wazero": 2, "wasmtime": 1}[engineOf(t)]
	if entries, _ := os.ReadDir(dir); want != 0 && len(entries) != want {
		t.Fatalf("cache dir holds %v; want %d directories", entries, want)
	}
}

// TestGoServerWithoutSetNonblock: a Go server written the usual way serves
// concurrent clients (sockets start non-blocking for Go guests).
func TestGoServerWithoutSetNonblock(t *testing.T) { eachEngine(t, testGoServerWithoutSetNonblock) }

func testGoServerWithoutSetNonblock(t *testing.T) {
	port := freePort(t)
	cfg := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nkind = \"stderr\"\n\n"+
		"[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = %d\n", port)
	done := make(chan error, 1)
	go func() {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		var conns []net.Conn
		for len(conns) < 5 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				time.Sleep(25 * time.Millisecond)
				continue
			}
			defer c.Close()
			conns = append(conns, c)
		}
		// All five are connected before any sends: they are served
		// concurrently, in reverse order.
		for i := len(conns) - 1; i >= 0; i-- {
			msg := fmt.Sprintf("client %d\n", i)
			conns[i].Write([]byte(msg))
			got, err := bufio.NewReader(conns[i]).ReadString('\n')
			if err != nil || got != msg {
				done <- fmt.Errorf("client %d: %q %v", i, got, err)
				return
			}
		}
		q, err := net.Dial("tcp", addr)
		if err != nil {
			done <- err
			return
		}
		q.Write([]byte("quit\n"))
		q.Close()
		done <- nil
	}()
	r := run(t, workload(t, "goserver"), cfg, nil)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r.err != nil || r.code != 0 || r.stdout != "served\n" {
		t.Fatalf("code %d err %v stdout %q stderr %s", r.code, r.err, r.stdout, r.stderr)
	}
}

// TestCancelStopsAWaitingWorkload: a cancelled run ends while the guest
// waits in poll_oneoff, with a plain error rather than a trap.
func TestCancelStopsAWaitingWorkload(t *testing.T) { eachEngine(t, testCancelStopsAWaitingWorkload) }

func testCancelStopsAWaitingWorkload(t *testing.T) {
	port := freePort(t)
	cfg := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nkind = \"stderr\"\n\n"+
		"[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = %d\n", port)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the guest is serving.
		for {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				c.Close()
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		cancel()
	}()
	r := runCtx(ctx, t, keep.Workload{Wasm: workload(t, "goserver")}, cfg, nil, keep.Options{})
	if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), "workload stopped: context canceled") {
		t.Fatalf("code %d err %v", r.code, r.err)
	}
}

// TestCancelStopsABlockedWorkload: a cancelled run ends while the guest
// waits in a blocking fd_read of a socket whose peer sends nothing (a
// workload that is not Go's gets its sockets blocking, as upstream), as
// it does while the guest waits in poll_oneoff. Before, the Keep waited
// in the host for the peer, and keep.Run did not return: an embedder
// (the containerd shim, the microVM Keep's /init) could not stop it.
func TestCancelStopsABlockedWorkload(t *testing.T) { eachEngine(t, testCancelStopsABlockedWorkload) }

func testCancelStopsABlockedWorkload(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := fmt.Sprintf("[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nkind = \"stderr\"\n\n"+
		"[[files]]\nname = \"peer\"\nkind = \"connect\"\nprot = \"tcp\"\nhost = \"127.0.0.1\"\nport = %d\n",
		l.Addr().(*net.TCPAddr).Port)
	// fd_write(3, "ready"), then fd_read(3): iovecs at 0 and 16, the
	// text at 8, the results at 100.
	data := []byte{8, 0, 0, 0, 5, 0, 0, 0, 'r', 'e', 'a', 'd', 'y', 0, 0, 0, 200, 0, 0, 0, 100, 0, 0, 0}
	wasm := wasmtest.Program("wasi_snapshot_preview1", data, 104,
		wasmtest.Call{Name: "fd_write", Args: []int32{3, 0, 1, 100}},
		wasmtest.Call{Name: "fd_read", Args: []int32{3, 16, 1, 100}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the guest has written, and gone on to wait in
		// fd_read (cancelled sooner, the run is stopped as the host
		// call returns, which is not what this test is about; either way
		// it must end).
		defer cancel()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.ReadFull(c, make([]byte, 5))
		time.Sleep(100 * time.Millisecond)
		cancel()
		<-t.Context().Done()
	}()
	done := make(chan result, 1)
	go func() { done <- runCtx(ctx, t, keep.Workload{Wasm: wasm}, cfg, nil, keep.Options{}) }()
	select {
	case r := <-done:
		if r.code != 1 || r.err == nil || !strings.Contains(r.err.Error(), "workload stopped: context canceled") {
			t.Fatalf("code %d err %v", r.code, r.err)
		}
	case <-time.After(60 * time.Second): // a safety net, not a verdict on time
		t.Fatal("the run did not end when it was cancelled while the guest waited in fd_read")
	}
}
