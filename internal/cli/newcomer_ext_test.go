package cli_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/enarx-go/enarx/internal/testutil"
)

// TestRunSaysWhichBackend: with --log-level info, run says on stderr which
// backend it chose and how; at the default level it does not.
func TestRunSaysWhichBackend(t *testing.T) {
	wasm := testutil.BuildWasm(t, "testdata/exitargs")
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--log-level", "info", "run", "--backend", "nil", wasm}, nil, `msg="Keep backend: nil" chosen="named by --backend or ENARX_BACKEND"`},
		{[]string{"--log-level", "info", "run", wasm}, []string{"ENARX_BACKEND=nil"}, `msg="Keep backend: nil" chosen="named by --backend or ENARX_BACKEND"`},
		{[]string{"run", "--backend", "nil", wasm}, nil, ""},
	} {
		code, _, stderr := runEnarx(t, tc.env, "", tc.args...)
		lines := 0
		for _, l := range strings.Split(stderr, "\n") {
			if strings.Contains(l, "Keep backend:") {
				lines++
				if !strings.Contains(l, "level=INFO") || !strings.Contains(l, tc.want) || tc.want == "" {
					t.Errorf("%v: line %q, want %q", tc.args, l, tc.want)
				}
			}
		}
		if code != 0 || (tc.want != "") != (lines == 1) {
			t.Errorf("%v: exit %d, %d backend lines in %q", tc.args, code, lines, stderr)
		}
	}
}

// TestInterruptIsSilent: Ctrl-C (SIGINT) ends enarx with status 130 and
// nothing on stderr after the Keep started (no "Error: interrupted").
func TestInterruptIsSilent(t *testing.T) {
	wasm := testutil.BuildWasm(t, "../../examples/echo")
	cmd := exec.Command(enarx(t), "--log-level", "info", "run", "--backend", "nil", wasm)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "ENARX_BACKEND=")
	stdin, err := cmd.StdinPipe() // never closed: echo waits for input
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("enarx ended before choosing a backend: %v", err)
		}
		if strings.Contains(line, "Keep backend:") {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	err = cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 {
		t.Fatalf("after SIGINT: %v, want exit status 130", err)
	}
	if len(rest) != 0 {
		t.Fatalf("after SIGINT, stderr %q, want nothing", rest)
	}
}
