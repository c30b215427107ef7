package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagValueUsageStatus: a --memory or --log-level that does not parse
// is a usage error, status 2 (docs/runtime.md, "Exit status"), as a
// --timeout that does not parse is; it is refused before any module is
// read, so the module need not exist.
func TestFlagValueUsageStatus(t *testing.T) {
	isolateUserDirs(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--memory", "1gb", "x.wasm"}, `--memory: invalid size "1gb"`},
		{[]string{"run", "--memory", "0", "x.wasm"}, `--memory: invalid size "0"`},
		{[]string{"run", "--memory", "8GiB", "x.wasm"}, "above the wasm32 maximum of 4GiB"},
		// Was a message from inside the Keep that named no flag.
		{[]string{"run", "--memory", "1KiB", "x.wasm"}, `--memory: size "1KiB" is below one 64 KiB wasm page; use at least 64KiB`},
		{[]string{"deploy", "--memory", "512mb", "file:///nonexistent"}, `--memory: invalid size "512mb"`},
		{[]string{"--log-level", "verbose", "run", "x.wasm"}, `invalid --log-level "verbose": use debug, info, warn or error`},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("enarx %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
	// The smallest limit a module can use is accepted.
	if n, err := memoryFlag("64KiB"); err != nil || n != 64<<10 {
		t.Errorf("--memory 64KiB: %d, %v", n, err)
	}
}

// TestCABundleWithoutCertificateNamesIt: a --ca-bundle that is not PEM (a
// DER file, the wrong file) is refused naming the file, before anything is
// sent.
func TestCABundleWithoutCertificateNamesIt(t *testing.T) {
	isolateUserDirs(t)
	bad := filepath.Join(t.TempDir(), "Enarx.toml")
	if err := os.WriteFile(bad, []byte("[[files]]\nkind = \"stdin\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "--ca-bundle " + bad + " holds no PEM certificate: give the registry's CA certificate (a `drawbridge --dev` registry's is STORE/dev-ca.pem)"
	for _, args := range [][]string{
		{"package", "info", "--ca-bundle", bad, "127.0.0.1:1/dev/hello:0.1.0"},
		{"deploy", "--backend", "nil", "--ca-bundle", bad, "127.0.0.1:1/dev/hello:0.1.0"},
	} {
		code, _, stderr := execute(t, args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("enarx %s: exit %d, stderr %q; want 1 and %q", strings.Join(args, " "), code, stderr, want)
		}
	}
}

// TestRegistryNotRunningHint: a registry that refuses the connection (not
// started, wrong port) gets a hint naming where enarx knocked.
func TestRegistryNotRunningHint(t *testing.T) {
	isolateUserDirs(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close() // nothing listens there now
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, selfSignedPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "(nothing accepts connections at " + host + ": start the registry there, or correct the host and port you gave)"
	for _, args := range [][]string{
		{"package", "info", "--ca-bundle", ca, host + "/dev/hello:0.1.0"},
		{"deploy", "--backend", "nil", "--ca-bundle", ca, host + "/dev/hello:0.1.0"},
	} {
		code, _, stderr := execute(t, args...)
		if code != 1 || !strings.Contains(stderr, "connection refused") || !strings.Contains(stderr, want) {
			t.Errorf("enarx %s: exit %d, stderr %q; want 1 and %q", strings.Join(args, " "), code, stderr, want)
		}
	}
}

// TestDeployArgumentMistakes: workload arguments after "--" (as for run)
// and a local path without file:// get a message that says what to do.
func TestDeployArgumentMistakes(t *testing.T) {
	isolateUserDirs(t)
	code, _, stderr := execute(t, "deploy", "localhost:8443/dev/hello:0.1.0", "--", "x")
	if want := `accepts one PACKAGE and no "--": a package's workload arguments are the args of its Enarx.toml`; code != 2 || !strings.Contains(stderr, want) {
		t.Errorf(`deploy SPEC -- x: exit %d, stderr %q; want 2 and %q`, code, stderr, want)
	}
	code, _, stderr = execute(t, "deploy", "a", "b")
	if want := "accepts one PACKAGE, got 2 arguments"; code != 2 || !strings.Contains(stderr, want) {
		t.Errorf(`deploy a b: exit %d, stderr %q; want 2 and %q`, code, stderr, want)
	}
	dir := t.TempDir()
	code, _, stderr = execute(t, "deploy", "--backend", "nil", dir)
	if want := "is a local path: deploy it as file://" + dir; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("deploy %s: exit %d, stderr %q; want 1 and %q", dir, code, stderr, want)
	}
	// A spec that names nothing on disk gets no such hint.
	code, _, stderr = execute(t, "deploy", "--backend", "nil", filepath.Join(dir, "nonexistent"))
	if code != 1 || strings.Contains(stderr, "local path") || !strings.Contains(stderr, "invalid package spec") {
		t.Errorf("deploy of a missing path: exit %d, stderr %q", code, stderr)
	}
}

// TestEnvValueErrorsNameTheVariable: a bad value from ENARX_BACKEND,
// ENARX_ENGINE or ENARX_LOG is reported under the variable's name, not
// under a flag the user did not give; a flag still wins over its variable.
func TestEnvValueErrorsNameTheVariable(t *testing.T) {
	isolateUserDirs(t)
	pkg := filepath.Join(t.TempDir(), "main.wasm")
	if err := os.WriteFile(pkg, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env, val string
		args     []string
		code     int
		want     string
	}{
		{"ENARX_BACKEND", "bogus", []string{"run", "x.wasm"}, 1, `ENARX_BACKEND: Keep backend identifier "bogus" is unknown`},
		{"ENARX_BACKEND", "bogus", []string{"deploy", "file://" + pkg}, 1, `ENARX_BACKEND: Keep backend identifier "bogus" is unknown`},
		{"ENARX_ENGINE", "v8", []string{"run", "x.wasm"}, 1, `ENARX_ENGINE: unknown engine "v8"`},
		{"ENARX_ENGINE", "v8", []string{"deploy", "file:///nonexistent"}, 1, `ENARX_ENGINE: unknown engine "v8"`},
		{"ENARX_LOG", "verbose", []string{"run", "x.wasm"}, 2, `invalid ENARX_LOG "verbose"`},
		// The flag given: its name, as before.
		{"ENARX_BACKEND", "nil", []string{"run", "--backend", "bogus", "x.wasm"}, 1, `Error: Keep backend identifier "bogus" is unknown`},
		{"ENARX_ENGINE", "wazero", []string{"run", "--engine", "v8", "x.wasm"}, 1, `--engine: unknown engine "v8"`},
		{"ENARX_LOG", "info", []string{"--log-level", "verbose", "run", "x.wasm"}, 2, `invalid --log-level "verbose"`},
	} {
		t.Setenv(c.env, c.val)
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%s=%s enarx %s: exit %d, stderr %q; want %d and %q", c.env, c.val, strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
		os.Unsetenv(c.env)
	}
}

// TestRunHelpGivesEveryStatus: run --help lists the statuses of
// docs/runtime.md's table that are enarx's own (2, 130), not only 1.
func TestRunHelpGivesEveryStatus(t *testing.T) {
	code, out, _ := runCLI(t, "run", "--help")
	for _, want := range []string{"1 when the run fails", "2 for a command line enarx does not accept", "130 when interrupted"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("run --help: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
}

// TestArgCountSaysWhatCommandTakes: a registry command given too many or
// too few arguments says what it takes (status 2); cobra's text was
// "accepts 1 arg(s), received 2".
func TestArgCountSaysWhatCommandTakes(t *testing.T) {
	isolateUserDirs(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"package", "info", "h/u/r:1", "extra"}, "enarx package info takes HOST/USER/REPO:TAG[@sha-256:DIGEST], got 2 arguments"},
		{[]string{"package", "publish", "h/u/r:1"}, "enarx package publish takes HOST/USER/REPO:TAG PATH, got 1 argument"},
		{[]string{"package", "fetch"}, "enarx package fetch takes HOST/USER/REPO:TAG[@sha-256:DIGEST] DIR, got 0 arguments"},
		{[]string{"repo", "info", "a", "b"}, "enarx repo info takes HOST/USER/REPO, got 2 arguments"},
		{[]string{"user", "register"}, "enarx user register takes HOST/USER, got 0 arguments"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("enarx %s: exit %d, stderr %q; want 2 and %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}
}
