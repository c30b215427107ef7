package microvm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
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

	"github.com/enarx-go/enarx/attest/certext"
	"github.com/enarx-go/enarx/attestation/policy"
	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/microvm/image"
	"github.com/enarx-go/enarx/microvm/image/kmodcomp"
	"github.com/enarx-go/enarx/microvm/vmm/qemu"
	"github.com/enarx-go/enarx/steward"
	"github.com/enarx-go/enarx/steward/stewardtest"
)

// The tests in this file boot real microVM Keeps: the enarx binary, built
// here, runs `enarx run --backend kvm` with ENARX_VM_ACCEL=tcg, so QEMU
// emulates the CPU on machines without /dev/kvm. Each boot takes seconds;
// each distinct module is compiled once inside a Keep and then comes from
// the compilation cache the tests share.

var vmSetup struct {
	once             sync.Once
	err              error
	dir, enarx, keep string
}

// vmEnv builds the Keep image and the enarx binary once per test binary
// and returns the environment for running enarx with them.
func vmEnv(t testing.TB) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("boots microVMs")
	}
	// The VMs run the enarx binary and the Keep's init, both built here
	// without -race: under it only the test's own code would be watched.
	testutil.SkipUnderRace(t, "boots microVMs through an enarx binary built without -race")
	if _, err := qemu.LookPath(nil); err != nil {
		testutil.NeedHost(t, "no QEMU: %v", err)
	}
	k, err := image.DefaultKernel()
	if err != nil {
		testutil.NeedHost(t, "no Keep kernel: %v", err)
	}
	vmSetup.once.Do(func() {
		vmSetup.dir, vmSetup.err = os.MkdirTemp("", "enarx-vm-test-")
		if vmSetup.err != nil {
			return
		}
		vmSetup.keep = filepath.Join(vmSetup.dir, "keep")
		vmSetup.err = buildImage(k, vmSetup.keep, "../../cmd/enarx-keep-init")
		if vmSetup.err != nil {
			return
		}
		vmSetup.enarx = filepath.Join(vmSetup.dir, "enarx")
		cmd := exec.Command("go", "build", "-o", vmSetup.enarx, "../../cmd/enarx")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			vmSetup.err = fmt.Errorf("building enarx: %v\n%s", err, out)
		}
	})
	if vmSetup.err != nil {
		t.Fatal(vmSetup.err)
	}
	return append(os.Environ(),
		"ENARX_KEEP_IMAGE="+vmSetup.keep,
		EnvAccel+"=tcg",
		// Under TCG the kernel's start-up time grows with guest RAM; the
		// test workloads need little.
		EnvMemory+"=1024",
		"XDG_CACHE_HOME="+filepath.Join(os.TempDir(), "enarx-vm-test-cache"),
	)
}

// buildImage builds a Keep image with the init built from pkg.
func buildImage(k *image.Kernel, dir, pkg string) error {
	init := filepath.Join(dir+"-init", "init")
	if err := os.MkdirAll(filepath.Dir(init), 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		return err
	}
	if err := image.BuildStatic(context.Background(), abs, ".", init); err != nil {
		return err
	}
	kmodcomp.Register(image.RegisterDecompressor) // the kernel's modules are compressed
	mods, err := image.ResolveModules(k.ModulesDir, k.Release, image.DefaultModules)
	if err != nil {
		return err
	}
	_, err = image.Build(dir, image.Spec{Kernel: k.Path, Init: init, Modules: mods})
	return err
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// enarxRun runs the enarx binary with args and stdin, bounded by a
// generous timeout (a hang is a failure, not a timing assertion).
func enarxRun(t *testing.T, env []string, stdin []byte, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vmSetup.enarx, args...)
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("enarx %v did not finish: stderr %s", args, errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{code, out.String(), errb.String()}
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVMWorkloads runs the runtime's workload table in microVM Keeps
// through the CLI: output, exit codes, traps, args, env and FD_NAMES, and
// 8 MiB through stdin and stdout.
func TestVMWorkloads(t *testing.T) {
	env := vmEnv(t)
	echoIn := make([]byte, 8<<20)
	rand.Read(echoIn)
	wasiCfg := writeFile(t, "Enarx.toml", []byte("args = [\"--argument1\", \"--argument2=foo\"]\n[env]\nVAR1 = \"var1\"\n"+
		"[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"))
	module := func(name string) string { return testutil.BuildWasm(t, "../../keep/testdata/"+name) }
	cases := []struct {
		name       string
		args       []string
		stdin      []byte
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "hello", args: []string{module("hello")}, wantStdout: "Hello, world!\n"},
		{name: "exit 7", args: []string{module("exitcode"), "--", "7"}, wantCode: 7},
		{name: "go panic", args: []string{module("exitcode"), "--", "panic"}, wantCode: 2, wantStderr: "panic: as requested"},
		{name: "trap", args: []string{writeFile(t, "trap.wasm", trapWasm)}, wantCode: 1, wantStderr: "main.wasm trapped"},
		{name: "wasi args env fd names", args: []string{"--wasmcfgfile", wasiCfg, module("wasiargs"), "--", "cli1"},
			wantStdout: "arg main.wasm\narg --argument1\narg --argument2=foo\narg cli1\nenv FD_COUNT=3\nenv FD_NAMES=null:stdout:stderr\nenv VAR1=var1\n"},
		{name: "echo 8MiB", args: []string{module("echo")}, stdin: echoIn, wantStdout: string(echoIn)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := enarxRun(t, env, tc.stdin, append([]string{"run", "--backend", "kvm"}, tc.args...)...)
			if r.code != tc.wantCode || r.stdout != tc.wantStdout || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("code %d stdout %.100q stderr %.600q; want code %d stdout %.100q stderr ~%q",
					r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

// vmBackend runs Keeps through the kvm backend in this process (for the
// socket tests, which share runOn with the channel tests).
type vmBackend struct{ Backend }

func TestVMSockets(t *testing.T) {
	env := vmEnv(t)
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && (k == "ENARX_KEEP_IMAGE" || k == EnvAccel || k == EnvMemory || k == "XDG_CACHE_HOME") {
			t.Setenv(k, v)
		}
	}
	t.Run("connect", func(t *testing.T) {
		testConnect(t, vmBackend{KVM}, build(t, "connect"))
	})
	t.Run("listen", func(t *testing.T) {
		testListen(t, vmBackend{KVM}, build(t, "listen"))
	})
}

// TestVMTLSWithSteward: a microVM Keep gets its certificate from a real
// Steward on 127.0.0.1 (reached through the host, TLS ending in the Keep)
// and serves TLS; a relying party that trusts only the Steward's root
// completes a handshake and sees what was attested.
func TestVMTLSWithSteward(t *testing.T) {
	env := vmEnv(t)
	p, err := policy.Parse([]byte("[none]\nallow = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	vs, err := p.Verifiers(policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca, root := stewardtest.ProductionCA(t, elliptic.P256())
	// Under TCG the guest has no kvmclock: its kernel takes the wall
	// clock from the emulated RTC, whose resolution is a second, so the
	// Keep's clock may run up to a second behind the host's and refuse a
	// certificate issued "now" as not yet valid. The test's Steward
	// issues as of two seconds ago.
	issued := func() time.Time { return time.Now().Add(-2 * time.Second) }
	st, err := steward.New(steward.Config{CA: ca, Verifiers: vs, SANs: []string{"keep.test"}, Now: issued})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(st)
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()
	httpsPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})

	probe, _ := net.Listen("tcp", "127.0.0.1:0")
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	cfg := writeFile(t, "Enarx.toml", fmt.Appendf(nil, "steward = %q\nsteward_ca = '''\n%s'''\n"+
		"[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"+
		"[[files]]\nname = \"ingest\"\nkind = \"listen\"\nprot = \"tls\"\naddr = \"127.0.0.1\"\nport = %d\n", ts.URL, httpsPEM, port))
	cmd := exec.Command(vmSetup.enarx, "run", "--backend", "kvm", "--wasmcfgfile", cfg, testutil.BuildWasm(t, "../../examples/tls-echo"))
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Error("enarx did not stop on SIGTERM")
		}
	}()

	pool := x509.NewCertPool()
	pool.AddCert(root)
	deadline := time.Now().Add(5 * time.Minute)
	var c *tls.Conn
	for {
		select {
		case err := <-exited:
			exited <- err // for the deferred stop
			t.Fatalf("the Keep ended: %v\n%s", err, stderr.String())
		default:
		}
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port),
			&tls.Config{RootCAs: pool, ServerName: "keep.test", MinVersion: tls.VersionTLS13})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake with the Keep: %v\n%s", err, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer c.Close()
	msg := []byte("hello from a relying party\n")
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %q, %v", got, err)
	}
	wl, att, err := certext.FromCertificate(c.ConnectionState().PeerCertificates[0])
	if err != nil || att == nil || wl == nil {
		t.Fatalf("certificate extensions: %v %v %v", wl, att, err)
	}
	if att.Claims.HardwareBacked {
		t.Errorf("a kvm Keep under TCG was attested as hardware-backed: %+v", att)
	}
}

// spinWasm is a module whose _start loops forever.
var spinWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
	0x03, 0x02, 0x01, 0x00,
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
	0x0a, 0x09, 0x01, 0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b,
}

var startedRE = regexp.MustCompile(`microVM Keep started" backend=kvm pid=(\d+)`)

// TestVMSIGKILLLeavesNoVM kills enarx with SIGKILL while its Keep computes:
// the VM must go too.
func TestVMSIGKILLLeavesNoVM(t *testing.T) {
	env := vmEnv(t)
	cmd := exec.Command(vmSetup.enarx, "--log-level", "debug", "run", "--backend", "kvm", writeFile(t, "spin.wasm", spinWasm))
	cmd.Env = env
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(5*time.Minute, func() { cmd.Process.Kill() })
	defer watchdog.Stop()
	sc := bufio.NewScanner(stderr)
	pid := 0
	for sc.Scan() {
		if m := startedRE.FindStringSubmatch(sc.Text()); m != nil {
			pid, _ = strconv.Atoi(m[1])
		}
		if pid != 0 && strings.Contains(sc.Text(), "running workload") {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if pid == 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("enarx did not report the VM's pid and a running workload")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			unix.Kill(pid, unix.SIGKILL)
			t.Fatalf("QEMU (pid %d) still runs after enarx was killed", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestVMTimeout: --timeout stops a Keep that computes forever.
func TestVMTimeout(t *testing.T) {
	env := vmEnv(t)
	r := enarxRun(t, env, nil, "run", "--backend", "kvm", "--timeout", "20s", writeFile(t, "spin.wasm", spinWasm))
	if r.code != 1 || !strings.Contains(r.stderr, "--timeout") {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
}

// TestVMBootFailures: a Keep that dies during boot, and one that never
// answers, each end with an error (and no hang).
func TestVMBootFailures(t *testing.T) {
	env := vmEnv(t)
	k, _ := image.DefaultKernel()
	for _, tc := range []struct {
		name, init string
		want       []string
		extraEnv   []string
	}{
		// The error quotes the console's lines that say why: the
		// kernel's panic (before its register dump, which ends it).
		{name: "init exits", init: "testdata/initexit", want: []string{
			"stopped before the Keep reported an exit status (it powered off or its kernel panicked); its console said [",
			"Kernel panic - not syncing: Attempted to kill init!", "] and ended with ["}},
		{name: "init is silent", init: "testdata/initsilent", want: []string{"did not start within 15s"}, extraEnv: []string{EnvBootTimeout + "=15s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keep")
			if err := buildImage(k, dir, tc.init); err != nil {
				t.Fatal(err)
			}
			e := append(append(append([]string(nil), env...), "ENARX_KEEP_IMAGE="+dir), tc.extraEnv...)
			r := enarxRun(t, e, nil, "run", "--backend", "kvm", writeFile(t, "trap.wasm", trapWasm))
			for _, want := range tc.want {
				if r.code != 1 || !strings.Contains(r.stderr, want) {
					t.Fatalf("code %d stderr %q; want 1 and %q", r.code, r.stderr, want)
				}
			}
		})
	}
}

// TestVMRequireIsolationRefusesTCG: software emulation isolates nothing by
// hardware, so --require-isolation refuses it before anything starts.
func TestVMRequireIsolationRefusesTCG(t *testing.T) {
	env := vmEnv(t)
	r := enarxRun(t, env, nil, "run", "--backend", "kvm", "--require-isolation", writeFile(t, "trap.wasm", trapWasm))
	if r.code != 1 || !strings.Contains(r.stderr, "--require-isolation: ENARX_VM_ACCEL=tcg") {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if vmSetup.dir != "" {
		os.RemoveAll(vmSetup.dir)
	}
	os.Exit(code)
}

// TestVMRefusesWasmtime: the Keep image has wazero only; the host says so
// before it starts anything.
func TestVMRefusesWasmtime(t *testing.T) {
	env := vmEnv(t)
	r := enarxRun(t, env, nil, "run", "--backend", "kvm", "--engine", "wasmtime", writeFile(t, "trap.wasm", trapWasm))
	if r.code == 0 || !strings.Contains(r.stderr, "wasmtime") {
		t.Fatalf("code %d stderr %q", r.code, r.stderr)
	}
	// The backend itself, whatever engines the enarx binary has.
	_, err := KVM.Run(context.Background(), &backend.Launch{Workload: keep.Workload{Wasm: trapWasm}, Config: config.Default(),
		Options: keep.Options{Engine: "wasmtime"}})
	if err == nil || !strings.Contains(err.Error(), "runs the wazero engine only") {
		t.Fatalf("kvm backend with wasmtime: %v", err)
	}
}
