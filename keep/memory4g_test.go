package keep_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/enarx-go/enarx/keep"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// TestMemory4GiB: a linear memory of 65,535 pages works at its last word;
// one of exactly 65,536 pages (4 GiB, within the default --memory), declared
// or grown to, either works (wasmtime) or, on wazero, is refused with an
// error that says why. It must never trap on an in-bounds access: wazero
// 1.12's compiler reads the length of a module's own memory as 32 bits, so
// at 4 GiB it reads 0 and every access trapped.
func TestMemory4GiB(t *testing.T) { eachEngine(t, testMemory4GiB) }

func testMemory4GiB(t *testing.T) {
	const last = 1<<32 - 4 // the last word of a 4 GiB memory
	if r := runOpts(t, keep.Workload{Wasm: wasmtest.StoreAt(65535, 0, 65535<<16-4)}, "", nil, keep.Options{NoCache: true}); r.code != 0 || r.err != nil {
		t.Fatalf("65,535 pages: code %d, %v", r.code, r.err)
	}
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"declared", wasmtest.StoreAt(65536, 0, last)},
		{"grown", wasmtest.StoreAt(65535, 1, last)},
	} {
		r := runOpts(t, keep.Workload{Wasm: tc.wasm}, "", nil, keep.Options{NoCache: true})
		if engineOf(t) == "wazero" {
			var mle *keep.MemoryLimitError
			if r.code != 1 || !errors.As(r.err, &mle) || !strings.Contains(r.err.Error(), "at most 65535 pages") {
				t.Errorf("%s 65,536 pages: code %d, %v", tc.name, r.code, r.err)
			}
			continue
		}
		if r.code != 0 || r.err != nil {
			t.Errorf("%s 65,536 pages: code %d, %v", tc.name, r.code, r.err)
		}
	}
}
