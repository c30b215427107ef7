package backend_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/enarx-go/enarx/attest"
	"github.com/enarx-go/enarx/backend"
	"github.com/enarx-go/enarx/config"
	"github.com/enarx-go/enarx/keep"
)

// procExit4 is a module whose _start calls proc_exit(4).
const procExit4 = "\x00asm\x01\x00\x00\x00\x01\b\x02`\x01\x7f\x00`\x00\x00\x02$\x01\x16wasi_snapshot_preview1\tproc_exit\x00\x00\x03\x02\x01\x01\a\n\x01\x06_start\x00\x01\n\b\x01\x06\x00A\x04\x10\x00\v"

// loop is a module whose _start loops forever: (loop (br 0)).
const loop = "\x00asm\x01\x00\x00\x00\x01\x04\x01`\x00\x00\x03\x02\x01\x00\a\n\x01\x06_start\x00\x00\n\t\x01\a\x00\x03@\f\x00\v\v"

func TestRegisteredAndRuns(t *testing.T) {
	b, err := backend.Lookup(backend.NilName)
	if err != nil {
		t.Fatal(err)
	}
	if !b.Available() || b.Configured() != nil || b.Protection() != backend.ProtectionNone {
		t.Fatal("nil backend must always be usable and unprotected")
	}
	code, err := b.Run(context.Background(), &backend.Launch{
		Workload: keep.Workload{Wasm: []byte(procExit4)},
		Config:   config.Default(),
		Files:    []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Options:  keep.Options{NoCache: true},
	})
	if err != nil || code != 4 {
		t.Fatalf("code %d err %v", code, err)
	}
}

// TestTimeoutStopsComputingWorkload: --timeout stops a guest that computes
// forever without a system call, on every engine and every in-process
// backend (they share backend.RunInProcess; an emulated one stands for
// snp and tdx, which need a TEE guest to run).
func TestTimeoutStopsComputingWorkload(t *testing.T) {
	emu := backend.Emulated{ID: "test-emulated", Hardware: "nothing",
		Provider: func() (attest.EvidenceProvider, error) { return nil, nil }}
	for _, b := range []backend.Backend{backend.Nil{}, emu} {
		for _, eng := range keep.Engines() {
			t.Run(b.Name()+"/"+eng, func(t *testing.T) { timeoutStops(t, b, eng) })
		}
	}
}

func timeoutStops(t *testing.T, b backend.Backend, eng string) {
	done := make(chan error, 1)
	go func() {
		code, err := b.Run(context.Background(), &backend.Launch{
			Policy:   backend.Policy{Timeout: 300 * time.Millisecond},
			Workload: keep.Workload{Wasm: []byte(loop)},
			Config:   config.Default(),
			Files:    []*os.File{os.Stdin, os.Stdout, os.Stderr},
			Options:  keep.Options{NoCache: true, Engine: eng},
		})
		if code != 1 {
			err = fmt.Errorf("code %d, err %v", code, err)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, backend.ErrTimeout) {
			t.Fatalf("err %v; want ErrTimeout", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the workload was not stopped")
	}
}
