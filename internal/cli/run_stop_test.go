package cli_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep"
)

// loopWasm is a module whose _start computes forever without a system
// call: (loop (br 0)).
const loopWasm = "\x00asm\x01\x00\x00\x00\x01\x04\x01`\x00\x00\x03\x02\x01\x00\a\n\x01\x06_start\x00\x00\n\t\x01\a\x00\x03@\f\x00\v\v"

// writeLoop writes loopWasm to a file and returns its path.
func writeLoop(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "loop.wasm")
	if err := os.WriteFile(p, []byte(loopWasm), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// inProcessBackends are backends whose Keep runs in the enarx process:
// nil, and snp-emulated for the others of backend.RunInProcess.
var inProcessBackends = []string{"nil", "snp-emulated"}

// TestTimeoutStopsComputingWorkloadCLI: `enarx run --timeout` stops a
// workload that computes forever on the in-process backends, on every
// engine. From the enarx command their Keep runs without in-process
// interruption (no epoch checks on wasmtime, no inserted checks on wazero)
// and is stopped by the end of the enarx process (cli.EndsProcess).
func TestTimeoutStopsComputingWorkloadCLI(t *testing.T) {
	loop := writeLoop(t)
	for _, be := range inProcessBackends {
		for _, eng := range keep.Engines() {
			t.Run(be+"/"+eng, func(t *testing.T) { testTimeoutStops(t, be, eng, loop) })
		}
	}
}

func testTimeoutStops(t *testing.T, be, eng, loop string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, enarx(t), "run", "--backend", be, "--engine", eng, "--timeout", "300ms", loop)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "ENARX_BACKEND=", "ENARX_WASMCFGFILE=")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatal("the workload was not stopped")
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "exceeded its --timeout") {
		t.Fatalf("%v, output %q; want exit status 1 and the --timeout message", err, out)
	}
}

// TestInterruptStopsComputingWorkloadCLI: Ctrl-C (SIGINT) ends `enarx run`
// on the in-process backends with status 130 and nothing more on stderr
// while the workload computes, on every engine.
func TestInterruptStopsComputingWorkloadCLI(t *testing.T) {
	loop := writeLoop(t)
	for _, be := range inProcessBackends {
		for _, eng := range keep.Engines() {
			t.Run(be+"/"+eng, func(t *testing.T) { testInterruptStops(t, be, eng, loop) })
		}
	}
}

func testInterruptStops(t *testing.T, be, eng, loop string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, enarx(t), "--log-level", "debug", "run", "--backend", be, "--engine", eng, loop)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "ENARX_BACKEND=", "ENARX_WASMCFGFILE=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	for { // the Keep logs "running workload" as it enters the guest
		line, err := r.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			t.Fatalf("enarx ended before running the workload: %v", err)
		}
		if strings.Contains(line, "running workload") {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // well inside the loop
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatal("the workload was not stopped")
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 || len(rest) != 0 {
		t.Fatalf("after SIGINT: %v, stderr %q; want exit status 130 and nothing", err, rest)
	}
}
