package guest

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// TestExitTextInTEE: wazero adds the Go stack trace (debug.Stack, whose
// frames show argument words) to a Go runtime error it recovers in a host
// function, and that error became the run's error, which Serve sends to
// the host in the exit status, whatever the TEE. A Keep in a TEE now
// leaves the trace out (a kvm Keep, whose host reads its memory anyway,
// keeps it). The error is wazero's own, from a host function that indexes
// out of range.
func TestExitTextInTEE(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	var secret = []int{0x5ec2e7}
	_, err := r.NewHostModuleBuilder("env").
		NewFunctionBuilder().WithFunc(func(_ context.Context, m api.Module, i uint32) uint32 {
		return uint32(secret[i]) // i = 7: a runtime error
	}).Export("f").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// (module (import "env" "f" (func (param i32) (result i32)))
	//         (func (export "run") (drop (call 0 (i32.const 7)))))
	wasm := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 9, 2, 0x60, 1, 0x7f, 1, 0x7f, 0x60, 0, 0, // types
		2, 9, 1, 3, 'e', 'n', 'v', 1, 'f', 0, 0, // import env.f
		3, 2, 1, 1, // func 1: type 1
		7, 7, 1, 3, 'r', 'u', 'n', 0, 1, // export run
		10, 9, 1, 7, 0, 0x41, 7, 0x10, 0, 0x1a, 0x0b, // code
	}
	m, err := r.Instantiate(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	_, runErr := m.ExportedFunction("run").Call(ctx)
	if runErr == nil || !strings.Contains(runErr.Error(), goStackMarker) {
		t.Fatalf("wazero's error for a Go runtime error in a host function: %v; want one with %q (has wazero changed its marker?)", runErr, goStackMarker)
	}
	for _, tee := range []string{"snp", "tdx"} {
		got := exitText(runErr, tee)
		if strings.Contains(got, "goroutine ") || strings.Contains(got, goStackMarker) {
			t.Errorf("tee=%s: the exit text shows the Go stack trace:\n%s", tee, got)
		}
		if !strings.Contains(got, "index out of range") {
			t.Errorf("tee=%s: the exit text lost the error itself:\n%s", tee, got)
		}
	}
	if got := exitText(runErr, "none"); got != runErr.Error() {
		t.Errorf("tee=none: the exit text is %q, want the whole error", got)
	}
}
