package limits

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// small are limits small enough to reach with small modules.
var small = Limits{
	ModuleBytes: 1 << 20, Types: 4, TypeArity: 8, Imports: 8, Functions: 8, Tables: 1, TableSize: 100,
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
