package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/enarx-go/enarx/keep/internal/engine/internal/instrument"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// wazeroCodeEntry returns the one entry of wazero's own compilation cache
// under dir (the module's compiled code) and its contents.
func wazeroCodeEntry(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	entries, err := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("wazero's cache holds %v (%v); want one entry", entries, err)
	}
	b, err := os.ReadFile(entries[0])
	if err != nil {
		t.Fatal(err)
	}
	return entries[0], b
}

// TestCorruptWazeroCode: wazero's own entry of a module's compiled code
// checks only the machine code against its CRC, not the header, the
// functions' offsets into the code or the tables after it. One of those
// damaged (a bad disk, a bit flipped) made the Keep run machine code from
// the wrong offset (here three bytes into a function) or allocate what the
// damaged count said (fatal: out of memory); the Keep checks the whole
// entry, and recompiles a damaged one. Both ways in: a hit of the Keep's
// own entry (Cached), and a compilation that finds only wazero's (Compile,
// e.g. after the Keep's entry was lost).
func TestCorruptWazeroCode(t *testing.T) {
	ctx := context.Background()
	wasm := wasmtest.Grow(1)
	sum := sha256.Sum256(wasm)
	damages := []struct {
		name string
		do   func(b []byte) []byte
	}{
		// "WAZEVO" | version length | version | u32 functions | u64 offset of each | ...
		{"function offset", func(b []byte) []byte {
			off := 7 + int(b[6]) + 4
			binary.LittleEndian.PutUint64(b[off:], binary.LittleEndian.Uint64(b[off:])+3)
			return b
		}},
		{"function count", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[7+int(b[6]):], 0xfffffff0)
			return b
		}},
		{"last byte", func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b }},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }},
	}
	for _, way := range []string{"Cached", "Compile"} {
		for _, d := range damages {
			t.Run(way+"/"+d.name, func(t *testing.T) {
				dir := t.TempDir()
				if _, err := newTestEngine(t, Config{Engine: "wazero", CacheDir: dir}).Compile(ctx, wasm); err != nil {
					t.Fatal(err)
				}
				p, b := wazeroCodeEntry(t, dir)
				if err := os.WriteFile(p, d.do(slices.Clone(b)), 0o600); err != nil {
					t.Fatal(err)
				}
				if way == "Compile" {
					// Only wazero's entry is left.
					own, _ := filepath.Glob(filepath.Join(dir, "enarx-wazero-*", "*"))
					for _, o := range own {
						os.Remove(o)
					}
				}
				e := newTestEngine(t, Config{Engine: "wazero", CacheDir: dir})
				m, hit := e.Cached(wasm, sum)
				if hit {
					t.Fatalf("a cache entry whose compiled code has a damaged %s was loaded", d.name)
				}
				m, err := e.Compile(ctx, wasm)
				if err != nil {
					t.Fatal(err)
				}
				in, err := m.Instantiate(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := in.Call(ctx, "_start"); err != nil || len(in.Memory()) != 2*pageSize {
					t.Fatalf("recompiled module: %v, memory %d", err, len(in.Memory()))
				}
				// The entry written again is whole, and found next time.
				if _, b2 := wazeroCodeEntry(t, dir); len(b2) != len(b) {
					t.Fatalf("wazero's entry has %d bytes after the recompilation, was %d", len(b2), len(b))
				}
				if _, hit := newTestEngine(t, Config{Engine: "wazero", CacheDir: dir}).Cached(wasm, sum); !hit {
					t.Fatal("the entry written again is not found")
				}
			})
		}
	}
}

// TestWazeroCodeFile: the Keep names the file wazero keeps a module's
// compiled code in as wazero does (wazeroCodeFile follows wazero's
// internals: a new wazero that names it otherwise fails here, before the
// check of TestCorruptWazeroCode silently stops covering it).
func TestWazeroCodeFile(t *testing.T) {
	for _, wasm := range [][]byte{wasmtest.Grow(1), wasmtest.Return1()} {
		dir := t.TempDir()
		if _, err := newTestEngine(t, Config{Engine: "wazero", CacheDir: dir}).Compile(context.Background(), wasm); err != nil {
			t.Fatal(err)
		}
		inst, err := instrument.Rewrite(wasm, instrument.Options{Interrupt: true, TableElements: tableElements})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := wazeroCodeEntry(t, dir)
		if want := wazeroCodeFile(dir, inst.Wasm); got != want {
			t.Fatalf("wazero keeps the compiled code in %s; wazeroCodeFile says %s", got, want)
		}
	}
}
