package keep_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/keep/internal/limits"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// TestCompileBombsRefused: modules that declare what would take minutes
// or gigabytes to compile (200M locals in 41 bytes: 26 s and 5 GB; 2^32-1
// locals: a Go out-of-memory crash; 100k nested blocks: 45 s; a
// 1M-target br_table: over 120 s) are refused before compiling, with an
// error that names the limit.
func TestCompileBombsRefused(t *testing.T) { eachEngine(t, testCompileBombsRefused) }

func testCompileBombsRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wasm  []byte
		limit string
	}{
		{"200M locals", wasmtest.Locals(200_000_000), limits.LimitLocals},
		{"2^32-1 locals", wasmtest.Locals(1<<32 - 1), limits.LimitLocals},
		{"100k nested blocks", wasmtest.Nested(100_000), limits.LimitNesting},
		{"1M-target br_table", wasmtest.BrTable(1_000_000), limits.LimitBrTableTargets},
	} {
		r := runOpts(t, keep.Workload{Wasm: tc.wasm}, "", nil, keep.Options{NoCache: true})
		var le *limits.Error
		if r.code != 1 || !errors.As(r.err, &le) || le.Limit != tc.limit || !strings.Contains(r.err.Error(), tc.limit) {
			t.Errorf("%s: code %d, %v", tc.name, r.code, r.err)
		}
	}
	// At the limits, the same shapes run.
	for _, w := range [][]byte{wasmtest.Locals(uint32(limits.Default.Locals)), wasmtest.Nested(1000), wasmtest.BrTable(1000)} {
		if r := runOpts(t, keep.Workload{Wasm: w}, "", nil, keep.Options{NoCache: true}); r.code != 0 || r.err != nil {
			t.Errorf("within the limits: code %d, %v", r.code, r.err)
		}
	}
}

// TestCompileTimeout: a compilation that outlasts its deadline fails the
// run with a CompileTimeoutError (8,000 nested blocks take a second or
// more on wazero and about a millisecond on wasmtime; the deadline here is
// a microsecond, far below either).
func TestCompileTimeout(t *testing.T) { eachEngine(t, testCompileTimeout) }

func testCompileTimeout(t *testing.T) {
	r := runOpts(t, keep.Workload{Wasm: wasmtest.Nested(8000)}, "", nil, keep.Options{NoCache: true, CompileTimeout: 1e3})
	var te *keep.CompileTimeoutError
	if r.code != 1 || !errors.As(r.err, &te) {
		t.Fatalf("code %d, %v", r.code, r.err)
	}
}
