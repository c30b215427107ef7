package shim_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/backend/backendtest"
	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/shim"
)

// ctrDefaultEnv is the environment ctr run gives a container of an image
// whose config sets none: containerd's default PATH (oci.WithImageConfig).
// The workload sees it as any other OCI env.
const ctrDefaultEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// tableCase is one entry of the runtime's workload table (the one
// backend/microvm's TestChannelWorkloadsMatchNil and the sandbox's parity
// test run), as a container: its module is the image's /main.wasm, its
// config the image's /Enarx.toml.
type tableCase struct {
	name  string
	wasm  func(t *testing.T) []byte
	cfg   string
	stdin []byte
	args  []string
	// wantCode and wantStdout are what every run gives; wantErr is in the
	// Keep's error (the container's stderr, where the keep host writes it).
	wantCode   int
	wantStdout string
	wantErr    string
	// shimErr, when set, is the shim's refusal at create (ctr run's
	// output), which replaces the Keep's error: the shim checks the image
	// before any Keep starts.
	shimErr string
}

// trapWasm is a module whose _start executes unreachable.
var trapWasm = []byte{
	0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
	0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
	0x03, 0x02, 0x01, 0x00,
	0x07, 0x0a, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00,
	0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
}

func keepWasm(name string) func(t *testing.T) []byte {
	return func(t *testing.T) []byte {
		t.Helper()
		b, err := os.ReadFile(testutil.BuildWasm(t, "../keep/testdata/"+name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func workloadTable() []tableCase {
	echoIn := testutil.DeterministicBytes("shim echo", 8<<20)
	wasiCfg := "args = [\"--argument1\", \"--argument2=foo\"]\n[env]\nVAR1 = \"var1\"\n" +
		"[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"
	return []tableCase{
		{name: "hello", wasm: keepWasm("hello"), wantStdout: "Hello, world!\n"},
		{name: "echo 8MiB", wasm: keepWasm("echo"), stdin: echoIn, wantStdout: string(echoIn)},
		{name: "zerooneone", wasm: keepWasm("zerooneone"), stdin: []byte("Hello, World! 011\n"), wantStdout: "Uryyb, Jbeyq! 011\n"},
		{name: "exit 7", wasm: keepWasm("exitcode"), args: []string{"7"}, wantCode: 7},
		{name: "exit 200", wasm: keepWasm("exitcode"), args: []string{"200"}, wantCode: 200},
		{name: "go panic", wasm: keepWasm("exitcode"), args: []string{"panic"}, wantCode: 2},
		// The container's env (ctr's default PATH) follows Enarx.toml's.
		{name: "wasi args and env", wasm: keepWasm("wasiargs"), cfg: wasiCfg, args: []string{"cli1"},
			wantStdout: "arg main.wasm\narg --argument1\narg --argument2=foo\narg cli1\nenv FD_COUNT=3\nenv FD_NAMES=null:stdout:stderr\nenv VAR1=var1\nenv " + ctrDefaultEnv + "\n"},
		{name: "trap", wasm: func(*testing.T) []byte { return trapWasm }, wantCode: 1, wantErr: "main.wasm trapped"},
		// A module with wasm's magic that does not compile reaches the
		// Keep; one without is refused by the shim, with the same status.
		{name: "invalid module", wasm: func(*testing.T) []byte { return []byte("\x00asm\x01\x00\x00\x00not wasm at all") }, wantCode: 1, wantErr: "compiling main.wasm"},
		{name: "not a module", wasm: func(*testing.T) []byte { return []byte("not wasm at all") }, wantCode: 1, wantErr: "compiling main.wasm",
			shimErr: "/main.wasm, the image's entrypoint, is not a WebAssembly module"},
	}
}

type tableResult struct {
	code           int
	stdout, stderr string
}

// runNil runs tc on backend.Nil in this process, as `enarx run` does, with
// stdio on pipes and the container's env as keep.Options.Env, as the shim
// passes it: the reference the containers must match.
func runNil(t *testing.T, tc tableCase, wasm []byte, cacheDir string) tableResult {
	t.Helper()
	w := keep.Workload{Wasm: wasm, ConfigName: "Enarx.toml"}
	if tc.cfg != "" {
		w.Config = []byte(tc.cfg)
	}
	r := backendtest.Run(t, backend.Nil{}, w, tc.stdin, keep.Options{Args: tc.args, Env: []string{ctrDefaultEnv}, CacheDir: cacheDir})
	res := tableResult{code: r.Code, stdout: r.Stdout, stderr: r.Stderr}
	if r.Err != "" {
		res.stderr += "Error: " + r.Err + "\n"
	}
	return res
}

// ctrRun runs ctr with stdin (nil: none) and returns its stdout, stderr and
// exit status.
func (d *daemon) ctrRun(t *testing.T, stdin []byte, args ...string) tableResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", d.sock, "--namespace", d.namespace}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+d.path)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := tableResult{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("ctr %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// TestContainerdWorkloadTable runs the runtime's workload table through
// `ctr run --runtime io.containerd.enarx.v1`, each module as an image of
// its own, on the nil and sandbox backends, and requires each container's
// stdout and exit status to be what backend.Nil gives for the same case
// in this process (stdout compared byte for byte: 8 MiB through the
// FIFOs for the echo), and its errors to say the same thing.
func TestContainerdWorkloadTable(t *testing.T) {
	d := startContainerd(t)
	// Compilations are cached (the shim tests' shared cache), so each
	// module compiles once for the reference and the containers.
	cache := filepath.Join(os.TempDir(), "enarx-shim-test-cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	table := workloadTable()
	images := make([]string, len(table))
	refs := make([]tableResult, len(table))
	for i, tc := range table {
		wasm := tc.wasm(t)
		images[i] = d.importImage(wasm, tc.cfg)
		refs[i] = runNil(t, tc, wasm, cache)
		if r := refs[i]; r.code != tc.wantCode || r.stdout != tc.wantStdout || !strings.Contains(r.stderr, tc.wantErr) {
			t.Errorf("%s on backend.Nil: status %d stdout %.80q stderr %.300q; want status %d stdout %.80q error ~%q",
				tc.name, r.code, r.stdout, r.stderr, tc.wantCode, tc.wantStdout, tc.wantErr)
		}
	}
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			for i, tc := range table {
				t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
					id := fmt.Sprintf("table%d-%s", i, b)
					args := append(d.runArgs(b, images[i], id), append([]string{"/main.wasm"}, tc.args...)...)
					r := d.ctrRun(t, tc.stdin, args...)
					ref := refs[i]
					if r.code != ref.code || r.stdout != ref.stdout {
						t.Errorf("status %d stdout %.80q (%d bytes); backend.Nil: status %d stdout %.80q (%d bytes); stderr %.300q",
							r.code, r.stdout, len(r.stdout), ref.code, ref.stdout, len(ref.stdout), r.stderr)
					}
					wantErr := tc.wantErr
					if tc.shimErr != "" {
						wantErr = tc.shimErr
					}
					switch {
					case wantErr == "" && r.stderr != ref.stderr:
						t.Errorf("stderr %.500q; backend.Nil's %.500q", r.stderr, ref.stderr)
					case !strings.Contains(r.stderr, wantErr):
						t.Errorf("stderr %.500q, want %q in it (backend.Nil's: %.300q)", r.stderr, wantErr, ref.stderr)
					}
				})
			}
		})
	}
}

// TestContainerdConfigDigest: the Keep gets the image's Enarx.toml as the
// image has it, so the config digest its certificate binds (which it logs
// at debug level) is the SHA-256 of the image's file, with the container's
// env beside it: after the file's [env], whose value wins a clash.
func TestContainerdConfigDigest(t *testing.T) {
	d := startContainerd(t)
	cfg := "args = [\"--from-config\"]\n[env]\nVAR1 = \"from Enarx.toml\"\n" +
		"[[files]]\nkind = \"null\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n"
	img := d.importImage(keepWasm("wasiargs")(t), cfg)
	sum := sha256.Sum256([]byte(cfg))
	wantLog := "sha256=" + hex.EncodeToString(sum[:])
	wantOut := "arg main.wasm\narg --from-config\narg cli\nenv FD_COUNT=3\nenv FD_NAMES=null:stdout:stderr\nenv VAR1=from Enarx.toml\nenv " +
		ctrDefaultEnv + "\nenv HOSTVAR=from ctr\n"
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			opts := filepath.Join(d.dir, "digest-"+b+".toml")
			body := fmt.Sprintf("backend = %q\nlog_level = \"debug\"\ncache_dir = %q\n", b, filepath.Join(os.TempDir(), "enarx-shim-test-cache"))
			if err := os.WriteFile(opts, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			r := d.ctrRun(t, nil, "run", "--rm", "--runtime", shim.RuntimeName, "--runtime-config-path", opts, "--platform", platform,
				"--env", "VAR1=from ctr", "--env", "HOSTVAR=from ctr", img, "digest-"+b, "/main.wasm", "cli")
			if r.code != 0 || r.stdout != wantOut {
				t.Errorf("status %d stdout %q, want %q; stderr %.1000q", r.code, r.stdout, wantOut, r.stderr)
			}
			if !strings.Contains(r.stderr, "workload config") || !strings.Contains(r.stderr, wantLog) {
				t.Errorf("the Keep's log does not give the image's Enarx.toml digest (%s):\n%s", wantLog, r.stderr)
			}
		})
	}
}
