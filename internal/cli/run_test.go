package cli_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep"
)

// enarx is cmd/enarx built once per test binary, with the engines this
// test binary has (-tags wasmtime in make test's race pass, with cgo).
func enarx(t *testing.T) string {
	return testutil.BuildEnarx(t, keep.CheckEngine("wasmtime") == nil)
}

func runEnarx(t *testing.T, env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(enarx(t), args...)
	cmd.Env = append(append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "ENARX_BACKEND=", "ENARX_WASMCFGFILE="), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), o.String(), e.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, o.String(), e.String()
}

func TestRunCommand(t *testing.T) {
	wasm := testutil.BuildWasm(t, "testdata/exitargs")
	cfg := filepath.Join(t.TempDir(), "Enarx.toml")
	os.WriteFile(cfg, []byte("args = [\"from-config\"]\n\n[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nname = \"logs\"\nkind = \"stderr\"\n"), 0o644)

	cases := []struct {
		name       string
		env        []string
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{"default config", nil, []string{"run", "--backend", "nil", wasm},
			0, "args=main.wasm names=stdin:stdout:stderr stdin=\"in\"\n", ""},
		{"cli args and exit code", nil, []string{"run", "--backend=nil", wasm, "--", "a", "-b", "7"},
			7, "args=main.wasm,a,-b,7 names=stdin:stdout:stderr stdin=\"in\"\n", ""},
		{"config args then cli args", nil, []string{"run", "--backend", "nil", "--wasmcfgfile", cfg, wasm, "--", "x"},
			0, "args=main.wasm,from-config,x names=stdin:stdout:logs stdin=\"in\"\n", ""},
		{"env vars", []string{"ENARX_BACKEND=nil", "ENARX_WASMCFGFILE=" + cfg}, []string{"run", "--no-cache", wasm, "--", "3"},
			3, "args=main.wasm,from-config,3 names=stdin:stdout:logs stdin=\"in\"\n", ""},
		{"unknown backend", nil, []string{"run", "--backend", "bogus", wasm},
			1, "", `Keep backend identifier "bogus" is unknown`},
		{"missing module", nil, []string{"run", "--backend", "nil", "/nonexistent.wasm"},
			1, "", "reading the module"},
		{"bad memory flag", nil, []string{"run", "--memory", "lots", wasm},
			2, "", "--memory"},
		{"args without dash", nil, []string{"run", wasm, "extra"},
			2, "", `after "--"`},
		{"bad config", nil, []string{"run", "--backend", "nil", "--wasmcfgfile", wasm, wasm},
			1, "", wasm},
	}
	for _, eng := range keep.Engines() {
		for _, c := range cases {
			t.Run(eng+"/"+c.name, func(t *testing.T) {
				code, out, errOut := runEnarx(t, append([]string{"ENARX_ENGINE=" + eng}, c.env...), "in", c.args...)
				if code != c.code || out != c.stdout || !strings.Contains(errOut, c.stderrPart) {
					t.Fatalf("exit %d stdout %q stderr %q; want %d %q and stderr containing %q",
						code, out, errOut, c.code, c.stdout, c.stderrPart)
				}
			})
		}
	}
}

// TestEngineFlag: --engine picks the engine, an unknown one is refused
// before a Keep starts, and --version names the binary's engines.
func TestEngineFlag(t *testing.T) {
	wasm := testutil.BuildWasm(t, "testdata/exitargs")
	for _, eng := range keep.Engines() {
		code, _, errOut := runEnarx(t, nil, "", "--log-level", "debug", "run", "--backend", "nil", "--engine", eng, wasm)
		if code != 0 || !strings.Contains(errOut, "engine="+eng) {
			t.Errorf("--engine %s: exit %d, stderr %q", eng, code, errOut)
		}
	}
	if code, _, errOut := runEnarx(t, nil, "", "run", "--engine", "v8", wasm); code != 1 || !strings.Contains(errOut, "wazero or wasmtime") {
		t.Errorf("--engine v8: exit %d, stderr %q", code, errOut)
	}
	if keep.CheckEngine("wasmtime") != nil {
		code, _, errOut := runEnarx(t, nil, "", "run", "--backend", "nil", "--engine", "wasmtime", wasm)
		if code != 1 || !strings.Contains(errOut, "-tags wasmtime") {
			t.Errorf("--engine wasmtime in a wazero-only build: exit %d, stderr %q", code, errOut)
		}
	}
	_, out, _ := runEnarx(t, nil, "", "--version")
	if !strings.Contains(out, "engines: "+strings.Join(keep.Engines(), ", ")) {
		t.Errorf("--version says %q", out)
	}
}

func TestRunTrapAndNoExport(t *testing.T) {
	dir := t.TempDir()
	// unreachable in _start, and a module exporting nothing.
	trap := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x07\x0a\x01\x06_start\x00\x00\x0a\x05\x01\x03\x00\x00\x0b")
	noExport := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x04\x01\x02\x00\x0b")
	os.WriteFile(filepath.Join(dir, "trap.wasm"), trap, 0o644)
	os.WriteFile(filepath.Join(dir, "none.wasm"), noExport, 0o644)
	code, _, errOut := runEnarx(t, nil, "", "run", "--backend", "nil", filepath.Join(dir, "trap.wasm"))
	if code != 1 || !strings.Contains(errOut, "unreachable") || !strings.Contains(errOut, "wasm stack trace") {
		t.Fatalf("trap: exit %d stderr %q", code, errOut)
	}
	code, _, errOut = runEnarx(t, nil, "", "run", "--backend", "nil", filepath.Join(dir, "none.wasm"))
	if code != 1 || !strings.Contains(errOut, "no default function") {
		t.Fatalf("no export: exit %d stderr %q", code, errOut)
	}
}

// TestRunZeroOneOne is upstream's zerooneone and zerooneone_pkg: a ROT13
// filter through `enarx run`, with and without --wasmcfgfile.
func TestRunZeroOneOne(t *testing.T) {
	wasm := testutil.BuildWasm(t, "../../keep/testdata/zerooneone")
	cfg := filepath.Join(t.TempDir(), "Enarx.toml")
	os.WriteFile(cfg, []byte("[[files]]\nkind = \"stdin\"\n\n[[files]]\nkind = \"stdout\"\n\n[[files]]\nkind = \"stderr\"\n"), 0o644)
	for _, args := range [][]string{
		{"run", "--backend", "nil", wasm},
		{"run", "--backend", "nil", "--wasmcfgfile", cfg, wasm},
	} {
		code, out, errOut := runEnarx(t, nil, "Hello, World!\n", args...)
		if code != 0 || out != "Uryyb, Jbeyq!\n" {
			t.Fatalf("%v: exit %d stdout %q stderr %q", args, code, out, errOut)
		}
	}
}
