package limits

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"
)

// TestGeneratorValid: the generator makes modules an engine accepts, so
// the fuzz target below judges Check on valid modules.
func TestGeneratorValid(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	for _, s := range []spec{
		{},
		{params: 2, imports: 1, funcs: 2, localGroups: []uint64{3, 4}, nesting: 5, brTable: 4, tableMin: 2, tableMax: 3, elemItems: 2, globals: 2, exports: 2, data: 2},
		{nesting: 7, brTable: 1},
		{tableMin: 5, elemItems: 5},
	} {
		if _, err := rt.CompileModule(ctx, s.build()); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

// FuzzGenerated: for modules whose declared quantities are known by
// construction, Check rejects exactly when one of them exceeds its limit,
// and then names one that does, with its value.
func FuzzGenerated(f *testing.F) {
	f.Add(uint16(2), uint16(1), uint16(2), uint16(3), uint16(4), uint16(5), uint16(4), uint16(2), uint16(3), uint16(2), uint16(2), uint16(2), uint16(2))
	f.Add(uint16(0), uint16(0), uint16(1), uint16(1000), uint16(1), uint16(50), uint16(100), uint16(0), uint16(0), uint16(0), uint16(0), uint16(0), uint16(0))
	f.Add(uint16(9), uint16(9), uint16(9), uint16(999), uint16(9), uint16(51), uint16(101), uint16(101), uint16(0), uint16(51), uint16(9), uint16(9), uint16(9))
	f.Fuzz(func(t *testing.T, params, imports, funcs, l1, l2, nesting, brTable, tableMin, tableMax, elemItems, globals, exports, data uint16) {
		s := spec{
			params: uint64(params % 32), imports: uint64(imports % 32), funcs: uint64(funcs % 32),
			localGroups: []uint64{uint64(l1), uint64(l2)}, nesting: uint64(nesting % 256), brTable: uint64(brTable % 512),
			tableMin: uint64(tableMin % 512), tableMax: uint64(tableMax % 512), elemItems: uint64(elemItems % 512),
			globals: uint64(globals % 32), exports: uint64(exports % 32), data: uint64(data % 32),
		}
		if s.tableMax != 0 && s.tableMax < s.tableMin {
			s.tableMax = s.tableMin
		}
		l := small
		l.ModuleBytes, l.FunctionBytes = 0, 0 // not known by construction here
		exceeded := map[string]uint64{}
		over := func(limit string, v, max uint64) {
			if v > max {
				exceeded[limit] = v
			}
		}
		over(LimitTypeArity, s.params, l.TypeArity)
		over(LimitImports, s.imports, l.Imports)
		over(LimitFunctions, s.imports+max(s.funcs, 1), l.Functions)
		if s.tableMin > 0 || s.tableMax > 0 {
			over(LimitTableSize, max(s.tableMin, s.tableMax), l.TableSize)
			if s.tableMin > 0 {
				over(LimitElementItems, s.elemItems, l.ElementItems)
			}
		}
		over(LimitGlobals, s.globals, l.Globals)
		over(LimitExports, s.exports, l.Exports)
		over(LimitDataSegments, s.data, l.DataSegments)
		over(LimitLocals, s.params+uint64(l1)+uint64(l2), l.Locals)
		over(LimitNesting, s.nesting, l.Nesting)
		over(LimitBrTableTargets, s.brTable, l.BrTableTargets)

		err := Check(s.build(), l)
		if len(exceeded) == 0 {
			if err != nil {
				t.Fatalf("%+v within the limits refused: %v", s, err)
			}
			return
		}
		var le *Error
		if !errors.As(err, &le) {
			t.Fatalf("%+v exceeds %v but was accepted (%v)", s, exceeded, err)
		}
		v, ok := exceeded[le.Limit]
		if !ok || le.Value > v || le.Value <= le.Max || !le.AtLeast && le.Value != v {
			t.Fatalf("%+v: %v; the module exceeds %v", s, err, exceeded)
		}
	})
}

// FuzzCheck: on any bytes, Check never panics and rejects only for a
// limit: a rejection names a value above its limit, raising every limit
// to what Measure reports makes Check accept, and Check rejects exactly
// when a measured quantity exceeds its limit.
func FuzzCheck(f *testing.F) {
	f.Add(spec{params: 2, imports: 1, funcs: 2, localGroups: []uint64{3, 4}, nesting: 5, brTable: 4, tableMin: 2, tableMax: 3, elemItems: 2, globals: 2, exports: 2, data: 2}.build())
	f.Add(spec{localGroups: []uint64{200_000_000}}.build())
	f.Add(spec{nesting: 60}.build())
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x01\x05\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Check(b, small)
		var le *Error
		if err != nil && (!errors.As(err, &le) || le.Value <= le.Max) {
			t.Fatalf("rejected, not for a limit: %v", err)
		}
		m := Measure(b)
		if err := Check(b, m); err != nil {
			t.Fatalf("limits at the measured values refused: %v (measured %+v)", err, m)
		}
		exceeds := m.ModuleBytes > small.ModuleBytes || m.Types > small.Types || m.TypeArity > small.TypeArity ||
			m.Imports > small.Imports || m.Functions > small.Functions || m.Tables > small.Tables ||
			m.TableSize > small.TableSize || m.TableElements > small.TableElements || m.Globals > small.Globals || m.Exports > small.Exports ||
			m.ElementSegments > small.ElementSegments || m.ElementItems > small.ElementItems ||
			m.DataSegments > small.DataSegments || m.FunctionBytes > small.FunctionBytes || m.Locals > small.Locals ||
			m.Nesting > small.Nesting || m.BrTableTargets > small.BrTableTargets
		if exceeds != (err != nil) {
			t.Fatalf("measured %+v, Check %v", m, err)
		}
	})
}
