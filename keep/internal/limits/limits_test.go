package limits

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// small are limits small enough to reach with small modules.
var small = Limits{
	ModuleBytes: 1 << 20, Types: 4, TypeArity: 8, Imports: 8, Functions: 8, Tables: 1, TableSize: 100, TableElements: 150,
	Globals: 8, Exports: 8, ElementSegments: 4, ElementItems: 50, DataSegments: 8, FunctionBytes: 4096,
	Locals: 1000, Nesting: 50, BrTableTargets: 100,
}

// TestEachLimit: a module exactly at each limit passes; one more is
// refused with an *Error that names the limit, the place and the value.
func TestEachLimit(t *testing.T) {
	for _, tc := range []struct {
		limit string
		at    func(n uint64) spec
		max   uint64
		where string
	}{
		{LimitTypeArity, func(n uint64) spec { return spec{params: n} }, small.TypeArity, "function type 0"},
		{LimitImports, func(n uint64) spec { return spec{imports: n} }, small.Imports, "the import section"},
		{LimitFunctions, func(n uint64) spec { return spec{funcs: n} }, small.Functions, "the module"},
		{LimitFunctions, func(n uint64) spec { return spec{imports: 3, funcs: n - 3} }, small.Functions, "the module"},
		{LimitTableSize, func(n uint64) spec { return spec{tableMin: n} }, small.TableSize, "table 0"},
		{LimitTableSize, func(n uint64) spec { return spec{tableMin: 1, tableMax: n} }, small.TableSize, "table 0"},
		{LimitGlobals, func(n uint64) spec { return spec{globals: n} }, small.Globals, "the module"},
		{LimitExports, func(n uint64) spec { return spec{exports: n} }, small.Exports, "the export section"},
		{LimitElementItems, func(n uint64) spec { return spec{tableMin: 1, elemItems: n} }, small.ElementItems, "the element section"},
		{LimitDataSegments, func(n uint64) spec { return spec{data: n} }, small.DataSegments, "the data section"},
		{LimitLocals, func(n uint64) spec { return spec{localGroups: []uint64{n}} }, small.Locals, "function 0"},
		{LimitLocals, func(n uint64) spec { return spec{params: 5, localGroups: []uint64{n/2 - 5, n - n/2}} }, small.Locals, "function 0"},
		{LimitLocals, func(n uint64) spec { return spec{imports: 2, localGroups: []uint64{n}} }, small.Locals, "function 2"},
		{LimitNesting, func(n uint64) spec { return spec{nesting: n} }, small.Nesting, "function 0"},
		{LimitBrTableTargets, func(n uint64) spec { return spec{nesting: 3, brTable: n} }, small.BrTableTargets, "function 0"},
	} {
		l := small
		if tc.limit == LimitImports {
			l.Functions = 100 // the imports are functions too
		}
		if err := Check(tc.at(tc.max).build(), l); err != nil {
			t.Errorf("%s at the limit: %v", tc.limit, err)
			continue
		}
		err := Check(tc.at(tc.max+1).build(), l)
		var le *Error
		if !errors.As(err, &le) || le.Limit != tc.limit || le.Where != tc.where || le.Value != tc.max+1 || le.Max != tc.max {
			t.Errorf("%s above the limit: %#v", tc.limit, err)
			continue
		}
		if !strings.Contains(le.Error(), tc.where) || !strings.Contains(le.Error(), tc.limit) {
			t.Errorf("message %q", le.Error())
		}
	}
}

// TestHostileModules: the modules of the hostile tests are refused, and
// the check reads them without allocating what they declare.
func TestHostileModules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		wasm  []byte
		limit string
	}{
		{"200M locals (41 bytes)", spec{localGroups: []uint64{200_000_000}}.build(), LimitLocals},
		{"2^32-1 locals", spec{localGroups: []uint64{1<<32 - 1}}.build(), LimitLocals},
		{"2^32-1 locals twice", spec{localGroups: []uint64{1<<32 - 1, 1<<32 - 1}}.build(), LimitLocals},
		{"100k nested blocks", spec{nesting: 100_000}.build(), LimitNesting},
		{"1M-target br_table", spec{brTable: 1_000_000}.build(), LimitBrTableTargets},
		{"2^32-1 table elements", spec{tableMin: 1<<32 - 1}.build(), LimitTableSize},
		// A type section that declares 2^32-1 entries in six bytes.
		{"2^32-1 types", []byte("\x00asm\x01\x00\x00\x00\x01\x05\xff\xff\xff\xff\x0f"), LimitTypes},
		{"2^32-1 functions", []byte("\x00asm\x01\x00\x00\x00\x03\x05\xff\xff\xff\xff\x0f"), LimitFunctions},
	} {
		var le *Error
		if err := Check(tc.wasm, Default); !errors.As(err, &le) || le.Limit != tc.limit {
			t.Errorf("%s: %v, want the %q limit", tc.name, err, tc.limit)
		}
	}
	if n := testing.AllocsPerRun(10, func() { Check(spec{localGroups: []uint64{1<<32 - 1}}.build(), Default) }); n > 100 {
		t.Errorf("%v allocations", n)
	}
}

// TestUndecodable: what cannot be decoded is left to the engine (not a
// limit), but what was declared before it is checked.
func TestUndecodable(t *testing.T) {
	for _, w := range [][]byte{nil, []byte("\x00asm"), []byte("\x00asm\x02\x00\x00\x00"), []byte("\x00asm\x01\x00\x00\x00\x01\x80")} {
		if err := Check(w, small); err != nil {
			t.Errorf("%q: %v", w, err)
		}
	}
	// A body whose 2,000 locals are followed by an unknown instruction.
	w := spec{localGroups: []uint64{2000}}.build()
	w[len(w)-2] = 0xff // the body's end becomes an unknown opcode
	var le *Error
	if err := Check(w, small); !errors.As(err, &le) || le.Limit != LimitLocals {
		t.Fatalf("%v", err)
	}
}

// TestRealModules: every real module in reach (the Go test workloads and
// examples as built by the tests, the Rust, C, Zig and TinyGo modules in
// wazero's module) passes the default limits with room to spare; their
// maxima are logged (see Default).
func TestRealModules(t *testing.T) {
	var files []string
	for _, g := range []string{
		filepath.Join(os.TempDir(), "enarx-test-wasm", "*.wasm"),
		filepath.Join("..", "..", "..", "bin", "examples", "*.wasm"),
	} {
		m, _ := filepath.Glob(g)
		files = append(files, m...)
	}
	if mod, err := os.UserHomeDir(); err == nil {
		for _, g := range []string{"imports/wasi_snapshot_preview1/testdata/*/*.wasm", "examples/*/testdata/*.wasm", "examples/*/*/testdata/*.wasm", "cmd/wazero/testdata/*.wasm"} {
			m, _ := filepath.Glob(filepath.Join(mod, "go", "pkg", "mod", "github.com", "tetratelabs", "wazero@v1.12.0", g))
			files = append(files, m...)
		}
	}
	if len(files) == 0 {
		t.Skip("no real modules built here (run the keep tests or make examples first)")
	}
	var most Stats
	half := Default
	half.Nesting, half.BrTableTargets, half.Locals = Default.Nesting/10, Default.BrTableTargets/10, Default.Locals/10
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := Check(b, half); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		s := Measure(b)
		most.Nesting, most.BrTableTargets, most.Locals = max(most.Nesting, s.Nesting), max(most.BrTableTargets, s.BrTableTargets), max(most.Locals, s.Locals)
		most.FunctionBytes, most.Functions, most.DataSegments = max(most.FunctionBytes, s.FunctionBytes), max(most.Functions, s.Functions), max(most.DataSegments, s.DataSegments)
	}
	t.Logf("%d modules; largest: nesting %d, br_table %d, locals %d, function body %d bytes, functions %d, data segments %d",
		len(files), most.Nesting, most.BrTableTargets, most.Locals, most.FunctionBytes, most.Functions, most.DataSegments)
}

// nameSec is a custom section "name" holding subsections.
func nameSec(subsections ...[]byte) []byte {
	c := append(uleb(4), "name"...)
	for _, s := range subsections {
		c = append(c, s...)
	}
	return section(0, c)
}

// TestNameSection: the counts of the name section are limited as those
// they name are. wazero allocates a name map at its declared count before
// it reads the first entry: a local-names map of 2^32-1 entries in a
// 24-byte module was a 96 GiB allocation, which the Go runtime cannot
// survive (fatal error: out of memory, not a panic).
func TestNameSection(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	for _, tc := range []struct {
		name  string
		sub   []byte
		limit string
		value uint64
	}{
		// Subsection 1, function names: a name map of 2^32-1 entries.
		{"function names", section(1, uleb(1<<32-1)), LimitFunctions, 1<<32 - 1},
		// Subsection 2, local names: 2^32-1 functions.
		{"local names, functions", section(2, uleb(1<<32-1)), LimitFunctions, 1<<32 - 1},
		// Subsection 2: function 0 with 2^32-1 local names.
		{"local names, locals", section(2, append([]byte{0x01, 0x00}, uleb(1<<32-1)...)), LimitLocals, 1<<32 - 1},
		// The second function's local names, after a first one within the limits.
		{"local names, second function", section(2, append([]byte{0x02, 0x00, 0x01, 0x00, 0x01, 'a', 0x01}, uleb(small.Locals+1)...)), LimitLocals, small.Locals + 1},
	} {
		wasm := append(append([]byte(nil), header...), nameSec(append([]byte{0x00, 0x02, 0x01, 'm'}, tc.sub...))...)
		var le *Error
		if err := Check(wasm, small); !errors.As(err, &le) || le.Limit != tc.limit || le.Value != tc.value || le.Where != "the name section" {
			t.Errorf("%s: %v, want the %q limit at %d", tc.name, err, tc.limit, tc.value)
		}
	}
	// Within the limits, and a name section of a real size.
	ok := append(append([]byte(nil), header...), nameSec(
		section(1, []byte{0x02, 0x00, 0x01, 'f', 0x01, 0x01, 'g'}),
		section(2, []byte{0x01, 0x00, 0x02, 0x00, 0x01, 'a', 0x01, 0x01, 'b'}),
		section(7, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}), // a subsection wazero skips
	)...)
	if err := Check(ok, small); err != nil {
		t.Fatal(err)
	}
	if m := Measure(ok); m.Functions != 2 || m.Locals != 2 {
		t.Fatalf("measured %+v", m)
	}
	// Another custom section is not read.
	other := append(append([]byte(nil), header...), section(0, append(append(uleb(5), "names"...), section(1, uleb(1<<32-1))...))...)
	if err := Check(other, small); err != nil {
		t.Fatal(err)
	}
}

// TestTableElementsTogether: the initial elements of all tables together
// are limited (an engine allocates them at instantiation: 100 000 tables
// of 10 000 000 elements each, within the other limits, are 8 TB).
func TestTableElementsTogether(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	table := func(min uint64) []byte { return append([]byte{0x70, 0x00}, uleb(min)...) }
	l := small
	l.Tables = 3
	at := append(append([]byte(nil), header...), section(4, vec(3, table(50), table(50), table(50)))...)
	if err := Check(at, l); err != nil {
		t.Fatalf("tables of %d elements together: %v", l.TableElements, err)
	}
	over := append(append([]byte(nil), header...), section(4, vec(3, table(50), table(50), table(51)))...)
	var le *Error
	if err := Check(over, l); !errors.As(err, &le) || le.Limit != LimitTableElements || le.Value != 151 || le.Where != "the module" {
		t.Fatalf("tables of 151 elements together: %v", err)
	}
}

// TestTableInitializer: a table with an initializer (0x40 0x00 prefix),
// which wazero accepts with its default features, is limited as any
// table, and so are the tables after it (the check skipped both: a table
// of 2^27 elements, 1 GiB of host memory, passed the 10,000,000 limit).
func TestTableInitializer(t *testing.T) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	init := func(min uint64) []byte { // (table min funcref (ref.null func))
		return append(append([]byte{0x40, 0x00, 0x70, 0x00}, uleb(min)...), 0xd0, 0x70, 0x0b)
	}
	for _, tc := range []struct {
		name   string
		tables []byte
		value  uint64
		where  string
	}{
		{"initializer", vec(1, init(small.TableSize+1)), small.TableSize + 1, "table 0"},
		{"after an initializer", vec(2, init(1), append([]byte{0x70, 0x00}, uleb(small.TableSize+1)...)), small.TableSize + 1, "table 1"},
	} {
		l := small
		l.Tables = 2
		wasm := append(append([]byte(nil), header...), section(4, tc.tables)...)
		var le *Error
		if err := Check(wasm, l); !errors.As(err, &le) || le.Limit != LimitTableSize || le.Value != tc.value || le.Where != tc.where {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	// wazero takes such a table (so the limit is what stands in its way).
	wasm := append(append([]byte(nil), header...), section(4, vec(1, init(small.TableSize)))...)
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := rt.CompileModule(ctx, wasm); err != nil {
		t.Fatal(err)
	}
	if err := Check(wasm, small); err != nil {
		t.Fatal(err)
	}
}
