package instrument

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/enarx-go/enarx/internal/testutil"
	"github.com/enarx-go/enarx/keep/internal/wasmtest"
)

// compiles reports whether wazero (the reference validator here: the
// Keep's engines accept the same feature set) accepts wasm.
func compiles(wasm []byte) (err error) {
	defer func() {
		if p := recover(); p != nil { // wazero's validator panics on some malformed modules
			err = fmt.Errorf("wazero panicked: %v", p)
		}
	}()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	_, err = r.CompileModule(ctx, wasm)
	return err
}

func goModule(t testing.TB) []byte {
	b, err := os.ReadFile(testutil.BuildWasm(t, "../../../../testdata/sha"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seeds() [][]byte {
	return [][]byte{
		wasmtest.Loop(), wasmtest.Recurse(3), wasmtest.Grow(2), wasmtest.Memory(1),
		wasmtest.ProcExit("wasi_snapshot_preview1", 3), wasmtest.Return1(), wasmtest.NoExport(),
		wasmtest.StartSection(0x03, 0x40, 0x0c, 0x00, 0x0b), // (start) (loop br 0)
	}
}

func TestSeedCorpus(t *testing.T) { testutil.CheckSeedCorpus(t, "FuzzRewrite", seeds()) }

func TestRewrite(t *testing.T) {
	mods := append(seeds(), goModule(t))
	for i, wasm := range mods {
		for _, o := range []Options{{Interrupt: true}, {RecordGrow: true}, {Interrupt: true, RecordGrow: true}, {Interrupt: true, TableElements: 10_000_000}} {
			orig := bytes.Clone(wasm)
			res, err := Rewrite(wasm, o)
			if err != nil {
				t.Fatalf("module %d %+v: %v", i, o, err)
			}
			if !bytes.Equal(orig, wasm) {
				t.Fatal("the input was modified")
			}
			if err := compiles(res.Wasm); err != nil {
				t.Fatalf("module %d %+v: the rewritten module does not compile: %v", i, o, err)
			}
			if o.Interrupt != (res.Stop != "") || o.Interrupt != (res.Fuel != "") {
				t.Errorf("module %d %+v: stop global %q, fuel %q", i, o, res.Stop, res.Fuel)
			}
		}
	}
	// The Go module grows memory: the wrapper and its global are added.
	res, err := Rewrite(mods[len(mods)-1], Options{RecordGrow: true})
	if err != nil || res.Requested == "" {
		t.Fatalf("Go module: requested %q, %v", res.Requested, err)
	}
	// A module that never grows memory gets no wrapper.
	if res, _ := Rewrite(wasmtest.Loop(), Options{RecordGrow: true}); res.Requested != "" {
		t.Fatal("wrapper added to a module without memory.grow")
	}
}

// TestStartExported: with interruption checks, a start section becomes an
// export of the same function (which the engine calls after
// instantiation, interruptibly); without them it stays. A start index
// beyond the module's own functions (invalid as it is, and after the
// rewrite it would name $tick) is refused.
func TestStartExported(t *testing.T) {
	wasm := wasmtest.StartSection(0x03, 0x40, 0x0c, 0x00, 0x0b)
	res, err := Rewrite(wasm, Options{Interrupt: true})
	if err != nil || res.Start == "" {
		t.Fatalf("start %q, %v", res.Start, err)
	}
	if err := compiles(res.Wasm); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	cm, err := r.CompileModule(ctx, res.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	// Instantiating runs no start function (it would loop forever).
	mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	if mod.ExportedFunction(res.Start) == nil {
		t.Fatalf("%q is not an exported function", res.Start)
	}
	if res, err := Rewrite(wasm, Options{RecordGrow: true}); err != nil || res.Start != "" {
		t.Fatalf("without interruption checks: start %q, %v", res.Start, err)
	}
	// (start 2) in a module of two functions.
	bad := bytes.Replace(wasm, []byte{0x08, 0x01, 0x00}, []byte{0x08, 0x01, 0x02}, 1)
	if bytes.Equal(bad, wasm) || compiles(bad) == nil {
		t.Fatal("the forged start index is not in place or the module is valid")
	}
	if _, err := Rewrite(bad, Options{Interrupt: true}); err == nil {
		t.Fatal("rewrote a start section naming a function the module lacks")
	}
}

// TestExportNameClash: the added exports never shadow the module's own.
func TestExportNameClash(t *testing.T) {
	wasm := wasmtest.ImportAll([]wasmtest.Import{{Module: "m", Name: "f"}})
	res, err := Rewrite(wasm, Options{Interrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Rewrite(res.Wasm, Options{Interrupt: true})
	if err != nil {
		t.Fatal(err)
	}
	if again.Stop == res.Stop || compiles(again.Wasm) != nil {
		t.Fatalf("second rewrite exported %q after %q", again.Stop, res.Stop)
	}
}

func TestMalformed(t *testing.T) {
	good := wasmtest.Loop()
	for i := 0; i < len(good); i++ {
		if _, err := Rewrite(good[:i], Options{Interrupt: true}); err == nil && i < 8 {
			t.Fatalf("accepted a %d-byte prefix", i)
		}
	}
	if _, err := Rewrite([]byte("\x00asm\x02\x00\x00\x00"), Options{Interrupt: true}); err == nil {
		t.Fatal("accepted version 2")
	}
}

// FuzzRewrite: Rewrite never panics; what it produces it can decode again
// (every section, body and instruction it wrote is well formed) and
// rewrite again; with nothing to do it returns its input; with
// TableElements, the tables of a module with code have maximums that add
// up to at most it. (Whether an engine accepts the result
// is TestRewrite's job, on real modules: wazero's decoder itself runs out
// of memory or time on some fuzzed inputs, which the Keep's pre-compile
// validator refuses before any engine sees them.)
func FuzzRewrite(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, wasm []byte) {
		for _, o := range []Options{{Interrupt: true}, {RecordGrow: true}, {Interrupt: true, RecordGrow: true}, {Interrupt: true, TableElements: 100}} {
			res, err := Rewrite(wasm, o)
			if err != nil {
				continue
			}
			again, err := Rewrite(res.Wasm, Options{})
			if err != nil {
				t.Fatalf("%+v: the output does not decode: %v", o, err)
			}
			if !bytes.Equal(again.Wasm, res.Wasm) {
				t.Fatal("a rewrite with nothing to do changed the module")
			}
			if _, err := Rewrite(res.Wasm, o); err != nil {
				t.Fatalf("%+v: the output cannot be rewritten again: %v", o, err)
			}
			if o.TableElements != 0 {
				tablesWithin(t, res.Wasm, uint64(o.TableElements))
			}
		}
	})
}

// tablesWithin fails t unless every table of wasm's own that a module
// with code could grow declares a maximum, and those maximums add up to
// at most budget.
func tablesWithin(t *testing.T, wasm []byte, budget uint64) {
	t.Helper()
	m, err := decode(wasm)
	if err != nil {
		t.Fatalf("the output does not decode: %v", err)
	}
	if m.code == nil {
		return
	}
	var sum uint64
	for i, tl := range m.tables {
		if !tl.hasMax {
			t.Fatalf("table %d has no maximum", i)
		}
		if tl.max < tl.min { // the engine refuses it
			continue
		}
		if sum += tl.max; sum > budget {
			t.Fatalf("the tables' maximums add up to more than %d: %+v", budget, m.tables)
		}
	}
}

// TestForgedIndexes: a body naming the global or function the rewrite
// would add (invalid as it is) is refused, so a guest cannot clear its own
// interruption flag or forge its growth record.
func TestForgedIndexes(t *testing.T) {
	// (func (export "_start") i32.const 0 global.set 0): no global 0.
	forged := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01`\x00\x00\x03\x02\x01\x00\a\n\x01\x06_start\x00\x00\n\b\x01\x06\x00A\x00$\x00\v")
	if compiles(forged) == nil {
		t.Fatal("the forged module is valid as it is")
	}
	for _, o := range []Options{{Interrupt: true}, {RecordGrow: true}} {
		if _, err := Rewrite(forged, o); err == nil {
			t.Fatalf("%+v: rewrote a body that sets a global the module lacks", o)
		}
	}
	// call 1 where only function 0 exists.
	call := []byte("\x00asm\x01\x00\x00\x00\x01\x04\x01`\x00\x00\x03\x02\x01\x00\a\n\x01\x06_start\x00\x00\n\x06\x01\x04\x00\x10\x01\v")
	if _, err := Rewrite(call, Options{Interrupt: true}); err == nil {
		t.Fatal("rewrote a call to a function the module lacks")
	}
}

// Hand-assembly helpers for the tests below.
func tsec(id byte, content ...byte) []byte {
	return append(append([]byte{id}, uleb(nil, uint64(len(content)))...), content...)
}

func tmod(sections ...[]byte) []byte {
	m := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range sections {
		m = append(m, s...)
	}
	return m
}

// TestSectionsFramed: a section whose entries run past its end, or stop
// short of it, is refused. wazero decodes a module with one reader for
// all of it and compares a section's length only once it has decoded the
// section, so the entries it reads beyond the end come from the sections
// that follow, which the pre-compile limits never read as such: an
// element section declaring two segments, the second of which is read
// from a custom section, declares 2^32-1 items there, which wazero
// allocates (96 GiB: the process dies) before it sees the section was
// too short.
func TestSectionsFramed(t *testing.T) {
	typ := tsec(1, 0x01, 0x60, 0x00, 0x00)
	fn := tsec(3, 0x01, 0x00)
	code := tsec(10, 0x01, 0x02, 0x00, 0x0b)
	tab := tsec(4, 0x01, 0x70, 0x00, 0x01)
	// A custom section whose bytes, read as an element or data segment,
	// are i32.const 1, end, and the vector length 2^32-1.
	bomb := tsec(0, append([]byte{0x01, 0x0b, 0xff, 0xff, 0xff, 0xff, 0x0f}, make([]byte, 58)...)...)
	if bomb[1] != 0x41 {
		t.Fatal("the custom section's size is not i32.const")
	}
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		// (elem (i32.const 0)) and a second segment beyond the section.
		{"element", tmod(typ, fn, tab, tsec(9, 0x02, 0x00, 0x41, 0x00, 0x0b, 0x00), bomb, code)},
		{"data", tmod(typ, fn, tsec(5, 0x01, 0x00, 0x01), code, tsec(11, 0x01), bomb)},
		{"table", tmod(typ, fn, tsec(4, 0x02, 0x70, 0x00, 0x01), bomb, code)},
		{"data count", tmod(typ, fn, tsec(12), code)},
		{"element, a byte too many", tmod(typ, fn, tab, tsec(9, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x00, 0x00), code)},
		// A custom section whose name runs past its end (wazero
		// allocates the name's declared length first).
		{"custom name", tmod(typ, fn, tsec(0, 0xff, 0xff, 0xff, 0xff, 0x0f), code)},
		// A name section whose function names (subsection 1) declare two
		// names and hold one: wazero reads the second from what follows.
		{"name", tmod(typ, fn, code, tsec(0, 0x04, 'n', 'a', 'm', 'e', 0x01, 0x04, 0x02, 0x00, 0x01, 'f'), bomb)},
		// Subsection sizes that add up to more than the section.
		{"name sizes", tmod(typ, fn, code, tsec(0, 0x04, 'n', 'a', 'm', 'e', 0x00, 0x05, 0x01, 'm'), bomb)},
	} {
		for _, o := range []Options{{}, {Interrupt: true}, {RecordGrow: true}} {
			if _, err := Rewrite(tc.wasm, o); err == nil {
				t.Errorf("%s %+v: rewrote a module with a section that is not framed", tc.name, o)
			}
		}
	}
	// Well-framed sections of every kind the rewrite passes through.
	ok := tmod(typ, fn, tab, tsec(5, 0x01, 0x00, 0x01),
		tsec(9, 0x02, 0x00, 0x41, 0x00, 0x0b, 0x01, 0x00, 0x05, 0x70, 0x01, 0xd2, 0x00, 0x0b),
		tsec(12, 0x01), code, tsec(11, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x02, 'h', 'i'), tsec(0, 0x01, 'x', 0xff),
		tsec(0, 0x04, 'n', 'a', 'm', 'e', 0x00, 0x02, 0x01, 'm', 0x01, 0x04, 0x01, 0x00, 0x01, 'f',
			0x02, 0x06, 0x01, 0x00, 0x01, 0x00, 0x01, 'l', 0x07, 0x01, 0x00))
	if err := compiles(ok); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{{}, {Interrupt: true}, {RecordGrow: true}} {
		res, err := Rewrite(ok, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if err := compiles(res.Wasm); err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
	}
}

// TestForgedIndexesOutsideCode: an export, element segment or constant
// expression naming a function or global beyond the module's own (invalid
// as it is) is refused: after the rewrite it would name $tick, the growth
// wrapper or an added global, and the module would run (an export
// "_start" naming $tick) where the original is refused.
func TestForgedIndexesOutsideCode(t *testing.T) {
	typ := tsec(1, 0x01, 0x60, 0x00, 0x00)
	fn := tsec(3, 0x01, 0x00)
	code := tsec(10, 0x01, 0x02, 0x00, 0x0b)
	tab := tsec(4, 0x01, 0x70, 0x00, 0x01)
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"export of function 1", tmod(typ, fn, tsec(7, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x01), code)},
		{"export of global 0", tmod(typ, fn, tsec(7, 0x01, 0x01, 'g', 0x03, 0x00), code)},
		// The rewrite adds a memory to a module without one ($tick grows it).
		{"export of memory 0", tmod(typ, fn, tsec(7, 0x01, 0x01, 'm', 0x02, 0x00), code)},
		{"element function 1", tmod(typ, fn, tab, tsec(9, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x01, 0x01), code)},
		{"element ref.func 1", tmod(typ, fn, tab, tsec(9, 0x01, 0x04, 0x41, 0x00, 0x0b, 0x01, 0xd2, 0x01, 0x0b), code)},
		{"global ref.func 1", tmod(typ, fn, tsec(6, 0x01, 0x70, 0x00, 0xd2, 0x01, 0x0b), code)},
	} {
		if err := compiles(tc.wasm); err == nil {
			t.Fatalf("%s: the module is valid as it is", tc.name)
		}
		for _, o := range []Options{{Interrupt: true}, {RecordGrow: true}} {
			if _, err := Rewrite(tc.wasm, o); err == nil {
				t.Errorf("%s %+v: rewritten", tc.name, o)
			}
		}
	}
	// The same, naming function 0 and no global, is valid and rewritten.
	valid := tmod(typ, fn, tab, tsec(6, 0x01, 0x70, 0x00, 0xd2, 0x00, 0x0b),
		tsec(7, 0x01, 0x06, '_', 's', 't', 'a', 'r', 't', 0x00, 0x00),
		tsec(9, 0x02, 0x00, 0x41, 0x00, 0x0b, 0x01, 0x00, 0x04, 0x41, 0x00, 0x0b, 0x01, 0xd2, 0x00, 0x0b), code)
	if err := compiles(valid); err != nil {
		t.Fatal(err)
	}
	if _, err := Rewrite(valid, Options{Interrupt: true}); err != nil {
		t.Fatal(err)
	}
}

// TestTableElements: with TableElements, the module's own tables get
// maximums that add up to at most TableElements, so that table.grow
// cannot grow them past it together (wazero grows a table that declares
// no maximum to 2^32-2 elements of 8 bytes, all of them host memory
// outside the linear-memory limit, and a limit per table let a module of
// many tables grow each one to it). A declared maximum is kept unless the
// maximums add up to more; minimums that add up to more are refused.
func TestTableElements(t *testing.T) {
	const budget = 100
	for _, tc := range []struct {
		name   string
		tables [][]byte // table types, funcref
		max    []uint64 // the largest size table.grow reaches, per table
	}{
		{"no maximum", [][]byte{{0x70, 0x00, 0x01}}, []uint64{100}},
		{"no maximum, initializer", [][]byte{{0x40, 0x00, 0x70, 0x00, 0x01, 0xd0, 0x70, 0x0b}}, []uint64{100}},
		{"declared maximum above", [][]byte{{0x70, 0x01, 0x01, 0x96, 0x01}}, []uint64{100}},
		{"declared maximum below", [][]byte{{0x70, 0x01, 0x01, 0x32}}, []uint64{50}},
		{"two tables", [][]byte{{0x70, 0x00, 0x01}, {0x70, 0x00, 0x00}}, []uint64{50, 50}},
		// 95 left after the minimums: 10 for the first, which may grow by
		// no more, then 85 / 2 and the other 43.
		{"three tables", [][]byte{{0x70, 0x01, 0x00, 0x0a}, {0x70, 0x00, 0x05}, {0x70, 0x00, 0x00}}, []uint64{10, 47, 43}},
		{"minimums above", [][]byte{{0x70, 0x00, 0x3c}, {0x70, 0x00, 0x32}}, nil},
	} {
		wasm := tableModule(tc.tables)
		if err := compiles(wasm); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		res, err := Rewrite(wasm, Options{Interrupt: true, TableElements: budget})
		if tc.max == nil {
			if err == nil {
				t.Errorf("%s: rewrote tables whose minimums add up to more than %d elements", tc.name, budget)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tablesWithin(t, res.Wasm, budget)
		ctx := context.Background()
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		mod, err := r.Instantiate(ctx, res.Wasm)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, max := range tc.max {
			grow := mod.ExportedFunction(fmt.Sprintf("grow%d", i))
			size, err := grow.Call(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := grow.Call(ctx, max-size[0]+1); err != nil || int32(out[0]) != -1 {
				t.Errorf("%s: table %d grown past %d elements (%v, %v)", tc.name, i, max, out, err)
			}
			if out, err := grow.Call(ctx, max-size[0]); err != nil || out[0] != size[0] {
				t.Errorf("%s: table %d not grown to %d elements (%v, %v)", tc.name, i, max, out, err)
			}
		}
		r.Close(ctx)
	}
}

// tableModule assembles a module of the given funcref tables, with a
// function "growN" per table N: (param $n i32) (result i32), table.grow N
// (ref.null func) $n.
func tableModule(tables [][]byte) []byte {
	n := byte(len(tables))
	fn, exp, code, tab := []byte{n}, []byte{n}, []byte{n}, []byte{n}
	for i := byte(0); i < n; i++ {
		fn = append(fn, 0x00)
		exp = append(exp, 0x05, 'g', 'r', 'o', 'w', '0'+i, 0x00, i)
		code = append(code, 0x09, 0x00, 0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, i, 0x0b)
		tab = append(tab, tables[i]...)
	}
	return tmod(tsec(1, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f), tsec(3, fn...), tsec(4, tab...), tsec(7, exp...), tsec(10, code...))
}

// TestTableMaxima: the water-filling of TableElements, on its own. The
// maximums never add up to more than the budget, no table's is below its
// minimum or above a declared maximum, and what the budget allows is
// given out.
func TestTableMaxima(t *testing.T) {
	un := func(min uint64) tableLimits { return tableLimits{min: min} }
	decl := func(min, max uint64) tableLimits { return tableLimits{min: min, max: max, hasMax: true} }
	for _, tc := range []struct {
		tables []tableLimits
		budget uint64
		want   []int64
	}{
		{nil, 10, []int64{}},
		{[]tableLimits{un(0)}, 10, []int64{10}},
		{[]tableLimits{decl(2, 4)}, 10, []int64{4}},
		{[]tableLimits{decl(2, 4), un(0), un(1)}, 10, []int64{4, 2, 4}},
		{[]tableLimits{un(0), un(0), un(0)}, 10, []int64{3, 3, 4}},
		{[]tableLimits{decl(5, 5), decl(5, 9)}, 10, []int64{5, 5}},
		{[]tableLimits{decl(5, 2), un(0)}, 10, []int64{-1, 5}}, // invalid: kept for the engine to refuse
		{[]tableLimits{un(math.MaxUint64), un(1)}, math.MaxUint32, nil},
	} {
		got, err := tableMaxima(tc.tables, tc.budget)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%+v: maxima %v for minimums above %d", tc.tables, got, tc.budget)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%+v, budget %d: %v, %v; want %v", tc.tables, tc.budget, got, err, tc.want)
		}
	}
}

// TestNameSectionLast: a name section whose subsection sizes leave wazero
// expecting more, when it is the module's last section, ends at the
// module's end: wazero's reader stops there (it takes the end of the
// module for the end of the name section) and accepts the module, as
// wasmtime (which ignores a malformed name section) does, so the rewrite
// must not refuse it. The same section followed by another is refused
// (TestSectionsFramed): wazero would read on into that one.
func TestNameSectionLast(t *testing.T) {
	typ := tsec(1, 0x01, 0x60, 0x00, 0x00)
	fn := tsec(3, 0x01, 0x00)
	code := tsec(10, 0x01, 0x02, 0x00, 0x0b)
	// Function names (subsection 1) declared 0 bytes long, holding 4.
	name := tsec(0, 0x04, 'n', 'a', 'm', 'e', 0x01, 0x00, 0x01, 0x00, 0x01, 'f')
	last := tmod(typ, fn, code, name)
	if err := compiles(last); err != nil {
		t.Fatalf("wazero refuses the module: %v", err)
	}
	for _, o := range []Options{{}, {Interrupt: true}, {RecordGrow: true}, {Interrupt: true, TableElements: 100}} {
		res, err := Rewrite(last, o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if err := compiles(res.Wasm); err != nil {
			t.Fatalf("%+v: the rewritten module does not compile: %v", o, err)
		}
	}
	notLast := tmod(typ, fn, code, name, tsec(0, 0x01, 'x'))
	if err := compiles(notLast); err == nil {
		t.Fatal("wazero accepts the name section followed by another")
	}
	if _, err := Rewrite(notLast, Options{Interrupt: true}); err == nil {
		t.Fatal("rewrote a name section that wazero reads past")
	}
}
