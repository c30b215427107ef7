package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/enarx-go/enarx/keep/internal/limits"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// eachEngine runs test on every engine of this build.
func eachEngine(t *testing.T, test func(t *testing.T, eng string)) {
	for _, eng := range Names() {
		t.Run(eng, func(t *testing.T) { test(t, eng) })
	}
}

func instantiate(t *testing.T, e Engine, wasm []byte) Instance {
	t.Helper()
	ctx := context.Background()
	m, err := e.Compile(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Instantiate(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestLimits(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		ctx := context.Background()
		if _, err := New(ctx, Config{Engine: eng, NoCache: true, MemoryLimit: 5 << 30}); err == nil {
			t.Fatal("accepted a limit above 4 GiB")
		}
		if _, err := New(ctx, Config{Engine: eng, NoCache: true, MemoryLimit: 100}); err == nil {
			t.Fatal("accepted a limit below one page")
		}
		e, err := New(ctx, Config{Engine: eng, NoCache: true, MemoryLimit: 3*pageSize + 7})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		if e.Limit() != 3*pageSize {
			t.Fatalf("limit %d not rounded down to pages", e.Limit())
		}
		// Growing to the limit works, past it is refused and recorded.
		in := instantiate(t, e, wasmtest.Grow(2))
		if err := in.Call(ctx, "_start"); err != nil {
			t.Fatalf("growth within the limit refused: %v", err)
		}
		if _, ok := e.Breach(); ok {
			t.Fatal("breach reported before one happened")
		}
		if err := in.Call(ctx, "_start"); err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("growth past the limit: %v; want the guest's trap", err)
		}
		if req, ok := e.Breach(); !ok || req != 5*pageSize {
			t.Fatalf("breach %d %v; want %d", req, ok, 5*pageSize)
		}
		if n := len(in.Memory()); n != 3*pageSize {
			t.Fatalf("memory is %d bytes after a refused growth", n)
		}
	})
}

func TestGrowthDoesNotMove(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		ctx := context.Background()
		e, err := New(ctx, Config{Engine: eng, NoCache: true})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close(ctx)
		in := instantiate(t, e, wasmtest.Grow(1000))
		before := in.Memory()
		before[10] = 42
		if err := in.Call(ctx, "_start"); err != nil {
			t.Fatal(err)
		}
		after := in.Memory()
		if len(after) != 1001*pageSize {
			t.Fatalf("memory %d bytes after growth", len(after))
		}
		if &before[0] != &after[0] {
			t.Fatal("memory moved on growth")
		}
		if after[10] != 42 {
			t.Fatal("contents lost")
		}
	})
}

func TestCacheDirectory(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		ctx := context.Background()
		dir := filepath.Join(t.TempDir(), "cache")
		for range 2 { // compile, then load from the cache
			e, err := New(ctx, Config{Engine: eng, CacheDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := instantiate(t, e, wasmtest.Return1()).Call(ctx, ""); err != nil {
				t.Fatal(err)
			}
			e.Close(ctx)
		}
		// wazero: its own directory and the instrumented modules'.
		entries, err := os.ReadDir(dir)
		want := map[string]int{"wazero": 2, "wasmtime": 1}[eng]
		if err != nil || len(entries) != want {
			t.Fatalf("cache dir has %v (%v); want %d directories", entries, err, want)
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), eng+"-") && !strings.HasPrefix(e.Name(), "enarx-"+eng+"-") {
				t.Fatalf("cache dir has %s; want only %s-<version> directories", e.Name(), eng)
			}
		}
		// An unusable cache directory is a clear error.
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, err := New(ctx, Config{Engine: eng, CacheDir: filepath.Join(f, "sub")}); err == nil || !strings.Contains(err.Error(), "--no-cache") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestCachedSkipsCompile: a module compiled with a cache is found by
// Cached in the next engine with the same cache and tag, not with another
// tag, and runs the same.
func TestCachedSkipsCompile(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		ctx := context.Background()
		dir := t.TempDir()
		wasm := wasmtest.Grow(1)
		for i, tag := range []string{"a", "a", "b"} {
			e, err := New(ctx, Config{Engine: eng, CacheDir: dir, CacheTag: tag})
			if err != nil {
				t.Fatal(err)
			}
			m, hit := e.Cached(wasm, sha256.Sum256(wasm))
			if want := i == 1; hit != want {
				t.Fatalf("run %d (tag %s): cached %v, want %v", i, tag, hit, want)
			}
			if !hit {
				if m, err = e.Compile(ctx, wasm); err != nil {
					t.Fatal(err)
				}
			}
			in, err := m.Instantiate(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := in.Call(ctx, "_start"); err != nil || len(in.Memory()) != 2*pageSize {
				t.Fatalf("run %d: %v, memory %d", i, err, len(in.Memory()))
			}
			e.Close(ctx)
		}
	})
}

// TestCorruptCacheEntry: an entry of enarx's own (wasmtime's serialized
// module, wazero's rewritten module) with one flipped byte, or cut short,
// is not loaded: Cached misses, and the module compiles again and runs.
func TestCorruptCacheEntry(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		for _, damage := range []string{"flip", "truncate"} {
			t.Run(damage, func(t *testing.T) {
				ctx := context.Background()
				dir := t.TempDir()
				wasm := wasmtest.Grow(1)
				sum := sha256.Sum256(wasm)
				e := newTestEngine(t, Config{Engine: eng, CacheDir: dir})
				if _, err := e.Compile(ctx, wasm); err != nil {
					t.Fatal(err)
				}
				// The entry: <dir>/<engine dir>/<hex digest>[.cwasm].
				entries, _ := filepath.Glob(filepath.Join(dir, "*", hex.EncodeToString(sum[:])+"*"))
				var entry string
				for _, p := range entries {
					if !strings.HasSuffix(p, ".sum") {
						entry = p
					}
				}
				if entry == "" {
					t.Fatalf("no cache entry for the module in %v", entries)
				}
				b, err := os.ReadFile(entry)
				if err != nil {
					t.Fatal(err)
				}
				if damage == "flip" {
					b[len(b)*2/3] ^= 0x40
				} else {
					b = b[:len(b)-1]
				}
				if err := os.WriteFile(entry, b, 0o600); err != nil {
					t.Fatal(err)
				}
				e2 := newTestEngine(t, Config{Engine: eng, CacheDir: dir})
				if _, hit := e2.Cached(wasm, sum); hit {
					t.Fatalf("a %s cache entry was loaded", damage)
				}
				in := instantiate(t, e2, wasm)
				if err := in.Call(ctx, "_start"); err != nil || len(in.Memory()) != 2*pageSize {
					t.Fatalf("recompiled module: %v, memory %d", err, len(in.Memory()))
				}
			})
		}
	})
}

// TestWarm: Warm, for each engine, the default and an unknown name, may
// run alongside the first engine's creation and use, and leaves engines
// working (under -race: no unsynchronised first-use state).
func TestWarm(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			Warm(eng)
			Warm("")
			Warm("no-such-engine")
		}()
		in := instantiate(t, newTestEngine(t, Config{Engine: eng}), wasmtest.Grow(1))
		if err := in.Call(context.Background(), "_start"); err != nil {
			t.Fatal(err)
		}
		<-done
		Warm(eng) // again: nothing left to do
	})
}

// TestInterrupt: a guest that computes forever, in a loop or by recursion
// without loops, stops when its context ends. A guest that does not stop
// fails the test at its deadline (watchdog) with every goroutine's stack,
// and the engine's Close then refuses to free what the call still uses.
func TestInterrupt(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		for name, wasm := range map[string][]byte{"loop": wasmtest.Loop(), "recursion": wasmtest.Recurse(100)} {
			t.Run(name, func(t *testing.T) {
				wd := watchdog(t)
				in := instantiate(t, newTestEngine(t, Config{Engine: eng}), wasm)
				cctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				err := within(t, wd, "Call", func() error { return in.Call(cctx, "_start") })
				if !errors.Is(err, ErrInterrupted) || !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("err %v; want ErrInterrupted wrapping the deadline", err)
				}
			})
		}
	})
}

func TestExitAndHostErrors(t *testing.T) {
	eachEngine(t, func(t *testing.T, eng string) {
		ctx := context.Background()
		boom := errors.New("boom")
		var mem int
		for _, tc := range []struct {
			ret  error
			want func(error) bool
		}{
			{&ExitError{Code: 7}, func(err error) bool {
				var ee *ExitError
				return errors.As(err, &ee) && ee.Code == 7
			}},
			{boom, func(err error) bool { return errors.Is(err, boom) }},
		} {
			e, err := New(ctx, Config{Engine: eng, NoCache: true})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close(ctx)
			m, err := e.Compile(ctx, wasmtest.ProcExit("m", 5))
			if err != nil {
				t.Fatal(err)
			}
			in, err := m.Instantiate(ctx, []HostFunc{{Module: "m", Name: "proc_exit", Params: []ValType{I32},
				Fn: func(_ context.Context, c Caller, stack []uint64) error {
					if uint32(stack[0]) != 5 {
						t.Errorf("parameter %d", stack[0])
					}
					mem = len(c.Memory())
					return tc.ret
				}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := in.Call(ctx, "_start"); !tc.want(err) {
				t.Fatalf("host returned %v, call returned %v", tc.ret, err)
			}
		}
		if mem != 0 {
			t.Fatalf("a module without memory has %d bytes", mem)
		}
	})
}

func TestUnknownEngine(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, Config{Engine: "v8", NoCache: true}); err == nil || !strings.Contains(err.Error(), "wazero") {
		t.Fatalf("err %v", err)
	}
	if Check("") != nil || Check(Default()) != nil {
		t.Fatal("the default engine is refused")
	}
	if Names()[0] != Default() {
		t.Fatal("Names does not list the default first")
	}
}

// TestTableGrowthBounded: table.grow cannot grow a table that declares no
// maximum (as Go's linker emits it) past the pre-compile limit on table
// elements: each element is host memory, outside the linear-memory limit
// (wazero grew such a table to 2^32-2 elements, 32 GiB). The limit bounds
// a module's tables together, grown as well as initial (a limit per table
// let a module of N tables grow to N times it): of two tables that
// declare no maximum, neither grows to half the limit, which they share,
// and the other grows to what is left.
func TestTableGrowthBounded(t *testing.T) {
	// (if (i32.ne|eq (table.grow $table (ref.null func) (i32.const $n)) (i32.const -1)) (then unreachable))
	grow := func(body []byte, table byte, n int64, fails bool) []byte {
		cmp := byte(0x46) // i32.eq: unreachable when refused
		if fails {
			cmp = 0x47 // i32.ne: unreachable when grown
		}
		body = sleb(append(body, 0xd0, 0x70, 0x41), n)
		return append(body, 0xfc, 0x0f, table, 0x41, 0x7f, cmp, 0x04, 0x40, 0x00, 0x0b)
	}
	half := int64(limits.Default.TableElements / 2)
	for _, tc := range []struct {
		name   string
		tables []byte // the table section's vector
		body   []byte // _start's instructions
	}{
		// (table 1 funcref); table.grow by TableSize fails.
		{"one table", []byte{0x01, 0x70, 0x00, 0x01}, grow(nil, 0, int64(limits.Default.TableSize), true)},
		// (table 1 funcref) (table 1 funcref): growing the first by half
		// the limit fails, the second by what is left does not.
		{"two tables", []byte{0x02, 0x70, 0x00, 0x01, 0x70, 0x00, 0x01}, grow(grow(nil, 0, half, true), 1, half-1, false)},
	} {
		body := append([]byte{0x00}, append(tc.body, 0x0b)...)
		sec := func(id byte, c ...byte) []byte { return append([]byte{id, byte(len(c))}, c...) }
		wasm := []byte("\x00asm\x01\x00\x00\x00")
		for _, s := range [][]byte{
			sec(1, 0x01, 0x60, 0x00, 0x00),
			sec(3, 0x01, 0x00),
			sec(4, tc.tables...),
			sec(7, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00),
			sec(10, append([]byte{0x01, byte(len(body))}, body...)...),
		} {
			wasm = append(wasm, s...)
		}
		t.Run(tc.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, eng string) {
				e := newTestEngine(t, Config{Engine: eng})
				if err := instantiate(t, e, wasm).Call(context.Background(), "_start"); err != nil {
					t.Fatalf("tables grew past the limit of %d elements together, or not to it: %v", limits.Default.TableElements, err)
				}
			})
		})
	}
}

func sleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// TestWazeroIgnoresDWARF: wazero reads no DWARF custom sections. Go's
// debug/dwarf, which wazero calls as it decodes a module, parses a unit's
// abbreviation table from its offset to the table's end for each offset
// anew, so 20,000 units naming 20,000 offsets of one table (a 320 KB
// module) took 10 s to decode (quadratic: a few MB take hours), before
// any limit or deadline: also on a compilation-cache hit, which decodes
// the module again without the Keep's compile deadline. The Keep's
// backtraces name functions (name section), not source lines.
//
// Whether the units are parsed shows in the allocations, not in a time:
// wazero with DWARF makes about two per unit (4,052 for these 2,000),
// the engine about twenty for the whole compilation.
func TestWazeroIgnoresDWARF(t *testing.T) {
	custom := func(name string, data []byte) []byte {
		c := append(uleb(nil, uint64(len(name))), name...)
		c = append(c, data...)
		return append(append([]byte{0x00}, uleb(nil, uint64(len(c)))...), c...)
	}
	const n = 2_000
	var abbrev, info []byte
	for i := range n {
		abbrev = append(abbrev, 0x01, 0x11, 0x00, 0x00, 0x00) // code 1, DW_TAG_compile_unit, no children, no attributes
		// A DWARF 4 unit header: length, version, abbreviation offset, address size.
		info = binary.LittleEndian.AppendUint32(info, 7)
		info = binary.LittleEndian.AppendUint16(info, 4)
		info = binary.LittleEndian.AppendUint32(info, uint32(5*i))
		info = append(info, 4)
	}
	wasm := append([]byte("\x00asm\x01\x00\x00\x00"), custom(".debug_abbrev", append(abbrev, 0))...)
	wasm = append(wasm, custom(".debug_info", info)...)
	e := newTestEngine(t, Config{Engine: "wazero"})
	var err error
	allocs := testing.AllocsPerRun(1, func() { _, err = e.Compile(context.Background(), wasm) })
	if err != nil {
		t.Fatal(err)
	}
	if allocs >= n {
		t.Fatalf("compiling a module of %d DWARF units made %.0f allocations: wazero parses its DWARF", n, allocs)
	}
}

func uleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
