// Package limits checks what a WebAssembly module declares against limits
// before the module is compiled.
//
// Compilers spend time and memory in proportion to what a module declares,
// not to its size: 41 bytes can declare 200 million locals (26 s and 5 GB
// to compile with wazero), 2^32-1 locals crash the Go process, 100,000
// nested blocks took 45 s and a br_table with a million targets more than
// two minutes. Check refuses such modules up front, naming the limit, so
// that what a compile may cost is bounded by the limits.
//
// Trust: the module is untrusted. Check reads it once, bounds every read,
// and allocates a small multiple of the module's type and function counts
// (both limited). It does not validate the module (the engine does): it
// measures what it can decode. A section, function body or segment that
// it cannot decode (malformed, or a feature it does not know) is skipped,
// and the engine is left to refuse it; what was declared before that
// point has been checked. So Check rejects a module only for a declared
// quantity above a limit (never for being malformed), and never accepts a
// module whose decodable part exceeds one.
//
// No maintained Go library decodes wasm modules outside an engine
// (wazero's decoder is internal to wazero, and it allocates what the
// module declares before it could be checked), hence this one.
package limits

import (
	"errors"
	"fmt"

	"github.com/enarx-go/enarx/keep/internal/wasmbin"
)

// Limits bounds what a module may declare. A zero field is no limit.
type Limits struct {
	ModuleBytes     uint64 // size of the module
	Types           uint64 // entries of the type section
	TypeArity       uint64 // parameters, or results, of one function type
	Imports         uint64 // entries of the import section
	Functions       uint64 // functions, imported and defined
	Tables          uint64 // tables, imported and defined
	TableSize       uint64 // initial, and declared maximum, elements of one table
	TableElements   uint64 // initial elements of all tables together (allocated at instantiation); the engines bound growth by it too
	Globals         uint64 // globals, imported and defined
	Exports         uint64 // entries of the export section
	ElementSegments uint64 // entries of the element section
	ElementItems    uint64 // items of all element segments together
	DataSegments    uint64 // entries of the data section
	FunctionBytes   uint64 // size of one function body
	Locals          uint64 // parameters and locals of one function
	Nesting         uint64 // depth of nested block, loop, if and try in one function
	BrTableTargets  uint64 // labels of one br_table, its default included
}

// CheckVersion names what Check checks beyond the Limits values. Raise it
// whenever a check is added or made stricter: compilation caches are
// tagged with it (keep's limitsTag), and a module taken from a cache is
// not checked again, so entries made under an older Check must not be
// found.
const CheckVersion = 3

// Default are the limits of the Keep. Those the WebAssembly JavaScript API
// specification names (its "implementation-defined limits", which every
// browser engine applies) are taken from it; nesting depth and br_table
// size, which it does not bound, are set from measurements: they are far
// above what the Go, Rust, C and Zig toolchains emit (see the package
// tests, which measure real modules) and keep the worst-case compile under
// a few seconds.
var Default = Limits{
	ModuleBytes:     1 << 30,
	Types:           1_000_000,
	TypeArity:       1_000,
	Imports:         100_000,
	Functions:       1_000_000,
	Tables:          100_000,
	TableSize:       10_000_000,
	TableElements:   10_000_000,
	Globals:         1_000_000,
	Exports:         100_000,
	ElementSegments: 10_000_000,
	ElementItems:    10_000_000,
	DataSegments:    100_000,
	FunctionBytes:   7_654_321,
	Locals:          50_000,
	Nesting:         10_000,
	BrTableTargets:  65_536,
}

// Error is a module that declares more than a limit allows.
type Error struct {
	// Limit names the limit (a Limits field, in words: "locals per
	// function").
	Limit string
	// Where names the place: "the module", "function 12", "table 0",
	// "the type section".
	Where string
	// Value is what the module declares; with AtLeast, a lower bound
	// (nesting is not counted past the limit).
	Value   uint64
	AtLeast bool
	// Max is the limit.
	Max uint64
}

func (e *Error) Error() string {
	more := ""
	if e.AtLeast {
		more = "at least "
	}
	return fmt.Sprintf("%s has %s%d %s; at most %d are accepted", e.Where, more, e.Value, e.Limit, e.Max)
}

// Limit names, as Error.Limit reports them.
const (
	LimitModuleBytes     = "bytes in the module"
	LimitTypes           = "function types"
	LimitTypeArity       = "parameters or results in a function type"
	LimitImports         = "imports"
	LimitFunctions       = "functions"
	LimitTables          = "tables"
	LimitTableSize       = "table elements"
	LimitTableElements   = "initial table elements in all tables together"
	LimitGlobals         = "globals"
	LimitExports         = "exports"
	LimitElementSegments = "element segments"
	LimitElementItems    = "element segment items"
	LimitDataSegments    = "data segments"
	LimitFunctionBytes   = "bytes in a function body"
	LimitLocals          = "parameters and locals in a function"
	LimitNesting         = "levels of nested blocks in a function"
	LimitBrTableTargets  = "targets in a br_table"
)

// Check returns an *Error when wasm declares more than l allows, and nil
// otherwise (also for a module it cannot decode: see the package doc).
func Check(wasm []byte, l Limits) error {
	s := scanner{l: l}
	if err := s.module(wasm); err != nil {
		return err
	}
	return nil
}

// Stats are the largest quantities a module declares, by Limits field.
type Stats = Limits

// Measure returns the largest quantities wasm declares (what its
// decodable part declares; see the package doc).
func Measure(wasm []byte) Stats {
	s := scanner{measure: true}
	_ = s.module(wasm)
	return s.stats
}

// errStop ends the decoding of the current section, body or segment: what
// follows cannot be decoded.
var errStop = errors.New("cannot decode further")

type scanner struct {
	l       Limits
	measure bool // record Stats, check nothing
	stats   Stats
	// params[i] is the parameter count of type i (types within the limit).
	params []uint32
	// funcTypes[i] is the type index of defined function i.
	funcTypes     []uint32
	importedFuncs uint64
	tables        uint64
	tableElems    uint64 // initial elements of the tables so far
	globals       uint64
	elemItems     uint64
}

// check records v for the field at *stat and returns an *Error when v
// exceeds max.
func (s *scanner) check(stat *uint64, v, max uint64, limit, where string, atLeast bool) error {
	if s.measure {
		*stat = maxu(*stat, v)
		return nil
	}
	if max != 0 && v > max {
		return &Error{Limit: limit, Where: where, Value: v, AtLeast: atLeast, Max: max}
	}
	return nil
}

func maxu(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// Section ids.
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secFunction = 3
	secTable    = 4
	secGlobal   = 6
	secExport   = 7
	secElement  = 9
	secCode     = 10
	secData     = 11
)

func (s *scanner) module(wasm []byte) error {
	if err := s.check(&s.stats.ModuleBytes, uint64(len(wasm)), s.l.ModuleBytes, LimitModuleBytes, "the module", false); err != nil {
		return err
	}
	if len(wasm) < 8 || string(wasm[:8]) != "\x00asm\x01\x00\x00\x00" {
		return nil // not a wasm 1.0 binary: the engine says so
	}
	r := wasmbin.Reader{B: wasm[8:]}
	for !r.Empty() {
		id, err := r.Byte()
		if err != nil {
			return nil
		}
		n, err := r.U32()
		if err != nil {
			return nil
		}
		content, err := r.Bytes(uint64(n))
		if err != nil {
			return nil // truncated: what follows is not a section
		}
		if err := s.section(id, &wasmbin.Reader{B: content}); err != nil && err != errStop {
			return err
		}
	}
	return nil
}

func (s *scanner) section(id byte, r *wasmbin.Reader) error {
	switch id {
	case secCustom:
		if name, err := r.Name(); err == nil && string(name) == "name" {
			return s.names(r)
		}
		return nil
	case secType:
		return s.types(r)
	case secImport:
		return s.imports(r)
	case secFunction:
		return s.functions(r)
	case secTable:
		return s.tableSection(r)
	case secGlobal:
		return s.globalSection(r)
	case secExport:
		n, err := r.U32()
		if err != nil {
			return errStop
		}
		return s.check(&s.stats.Exports, uint64(n), s.l.Exports, LimitExports, "the export section", false)
	case secElement:
		return s.elements(r)
	case secCode:
		return s.code(r)
	case secData:
		n, err := r.U32()
		if err != nil {
			return errStop
		}
		return s.check(&s.stats.DataSegments, uint64(n), s.l.DataSegments, LimitDataSegments, "the data section", false)
	}
	return nil // other custom sections, memory, start, data count, tag: nothing to bound
}

// nameSection is where the name section's counts are reported.
const nameSection = "the name section"

// names checks the counts of the name section (after its name), read as
// wazero reads it: it allocates each name map at its declared count before
// it reads an entry (a local-names map of 2^32-1 entries in a 24-byte
// module is 96 GiB), so the counts are limited as what they name are. (It
// reads the subsections it knows to their last entry and the others by
// their size; the engine's rewrite refuses a name section that wazero
// would read past its end, so what is read here is what wazero reads.)
func (s *scanner) names(r *wasmbin.Reader) error {
	for !r.Empty() {
		id, err := r.Byte()
		if err != nil {
			return errStop
		}
		size, err := r.U32()
		if err != nil {
			return errStop
		}
		switch id {
		case 0: // module name
			if _, err := r.Name(); err != nil {
				return errStop
			}
		case 1: // function names: a name map
			if err := s.nameMap(r, &s.stats.Functions, s.l.Functions, LimitFunctions); err != nil {
				return err
			}
		case 2: // local names: a map of functions to name maps
			n, err := r.U32()
			if err != nil {
				return errStop
			}
			if err := s.check(&s.stats.Functions, uint64(n), s.l.Functions, LimitFunctions, nameSection, false); err != nil {
				return err
			}
			for ; n > 0; n-- {
				if _, err := r.U32(); err != nil {
					return errStop
				}
				if err := s.nameMap(r, &s.stats.Locals, s.l.Locals, LimitLocals); err != nil {
					return err
				}
			}
		default:
			if _, err := r.Bytes(uint64(size)); err != nil {
				return errStop
			}
		}
	}
	return nil
}

// nameMap reads a name map of the name section (index, name pairs), whose
// count is checked against max.
func (s *scanner) nameMap(r *wasmbin.Reader, stat *uint64, max uint64, limit string) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	if err := s.check(stat, uint64(n), max, limit, nameSection, false); err != nil {
		return err
	}
	for ; n > 0; n-- {
		if _, err := r.U32(); err != nil {
			return errStop
		}
		if _, err := r.Name(); err != nil {
			return errStop
		}
	}
	return nil
}

func (s *scanner) types(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	if err := s.check(&s.stats.Types, uint64(n), s.l.Types, LimitTypes, "the type section", false); err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		form, err := r.Byte()
		if err != nil || form != 0x60 {
			return errStop // not a function type (GC proposal): the engine decides
		}
		where := fmt.Sprintf("function type %d", i)
		params, err := r.U32()
		if err != nil {
			return errStop
		}
		if err := s.check(&s.stats.TypeArity, uint64(params), s.l.TypeArity, LimitTypeArity, where, false); err != nil {
			return err
		}
		if err := r.ValTypes(params); err != nil {
			return errStop
		}
		results, err := r.U32()
		if err != nil {
			return errStop
		}
		if err := s.check(&s.stats.TypeArity, uint64(results), s.l.TypeArity, LimitTypeArity, where, false); err != nil {
			return err
		}
		if err := r.ValTypes(results); err != nil {
			return errStop
		}
		s.params = append(s.params, params)
	}
	return nil
}

func (s *scanner) imports(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	if err := s.check(&s.stats.Imports, uint64(n), s.l.Imports, LimitImports, "the import section", false); err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		if _, err := r.Name(); err != nil {
			return errStop
		}
		if _, err := r.Name(); err != nil {
			return errStop
		}
		kind, err := r.Byte()
		if err != nil {
			return errStop
		}
		switch kind {
		case 0x00: // function
			if _, err := r.U32(); err != nil {
				return errStop
			}
			s.importedFuncs++
			if err := s.check(&s.stats.Functions, s.importedFuncs, s.l.Functions, LimitFunctions, "the module", false); err != nil {
				return err
			}
		case 0x01: // table
			if err := s.table(r, fmt.Sprintf("imported table %d", s.tables)); err != nil {
				return err
			}
		case 0x02: // memory
			if _, _, err := r.Limits(); err != nil {
				return errStop
			}
		case 0x03: // global
			if err := r.ValType(); err != nil {
				return errStop
			}
			if _, err := r.Byte(); err != nil {
				return errStop
			}
			s.globals++
			if err := s.check(&s.stats.Globals, s.globals, s.l.Globals, LimitGlobals, "the module", false); err != nil {
				return err
			}
		case 0x04: // tag
			if _, err := r.Byte(); err != nil {
				return errStop
			}
			if _, err := r.U32(); err != nil {
				return errStop
			}
		default:
			return errStop
		}
	}
	return nil
}

func (s *scanner) functions(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	if err := s.check(&s.stats.Functions, s.importedFuncs+uint64(n), s.l.Functions, LimitFunctions, "the module", false); err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		t, err := r.U32()
		if err != nil {
			return errStop
		}
		s.funcTypes = append(s.funcTypes, t)
	}
	return nil
}

// table reads a table type (reference type and limits) and checks its
// sizes and the number of tables.
func (s *scanner) table(r *wasmbin.Reader, where string) error {
	s.tables++
	if err := s.check(&s.stats.Tables, s.tables, s.l.Tables, LimitTables, "the module", false); err != nil {
		return err
	}
	if err := r.ValType(); err != nil {
		return errStop
	}
	min, max, err := r.Limits()
	if err != nil {
		return errStop
	}
	if err := s.check(&s.stats.TableSize, maxu(min, max), s.l.TableSize, LimitTableSize, where, false); err != nil {
		return err
	}
	// An engine allocates every table's initial elements when it
	// instantiates the module: 100 000 tables of 10 000 000 each are
	// 8 TB.
	s.tableElems += min
	return s.check(&s.stats.TableElements, s.tableElems, s.l.TableElements, LimitTableElements, "the module", false)
}

func (s *scanner) tableSection(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	if err := s.check(&s.stats.Tables, s.tables+uint64(n), s.l.Tables, LimitTables, "the module", false); err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		// A table with an initializer (function references), which
		// wazero accepts: 0x40 0x00, the table type, a constant
		// expression.
		init := false
		if b, ok := r.Peek(); ok && b == 0x40 {
			if b, err := r.Bytes(2); err != nil || b[1] != 0x00 {
				return errStop
			}
			init = true
		}
		if err := s.table(r, fmt.Sprintf("table %d", s.tables)); err != nil {
			return err
		}
		if init {
			if err := r.ConstExpr(); err != nil {
				return errStop
			}
		}
	}
	return nil
}

func (s *scanner) globalSection(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	s.globals += uint64(n)
	return s.check(&s.stats.Globals, s.globals, s.l.Globals, LimitGlobals, "the module", false)
}

func (s *scanner) elements(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	if err := s.check(&s.stats.ElementSegments, uint64(n), s.l.ElementSegments, LimitElementSegments, "the element section", false); err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		flags, err := r.U32()
		if err != nil || flags > 7 {
			return errStop
		}
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			if _, err := r.U32(); err != nil {
				return errStop
			}
		}
		if flags&1 == 0 { // active: offset expression
			if err := r.ConstExpr(); err != nil {
				return errStop
			}
		}
		if flags&3 != 0 { // element kind or reference type
			if flags&4 == 0 {
				if _, err := r.Byte(); err != nil {
					return errStop
				}
			} else if err := r.ValType(); err != nil {
				return errStop
			}
		}
		items, err := r.U32()
		if err != nil {
			return errStop
		}
		s.elemItems += uint64(items)
		if err := s.check(&s.stats.ElementItems, s.elemItems, s.l.ElementItems, LimitElementItems, "the element section", false); err != nil {
			return err
		}
		for j := uint32(0); j < items; j++ {
			if flags&4 == 0 {
				_, err = r.U32()
			} else {
				err = r.ConstExpr()
			}
			if err != nil {
				return errStop
			}
		}
	}
	return nil
}

func (s *scanner) code(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return errStop
	}
	for i := uint32(0); i < n; i++ {
		size, err := r.U32()
		if err != nil {
			return errStop
		}
		index := s.importedFuncs + uint64(i)
		where := fmt.Sprintf("function %d", index)
		if err := s.check(&s.stats.FunctionBytes, uint64(size), s.l.FunctionBytes, LimitFunctionBytes, where, false); err != nil {
			return err
		}
		body, err := r.Bytes(uint64(size))
		if err != nil {
			return errStop
		}
		if err := s.body(&wasmbin.Reader{B: body}, i, where); err != nil && err != errStop {
			return err
		}
	}
	return nil
}

// body checks one function body: its locals, then its instructions.
func (s *scanner) body(r *wasmbin.Reader, i uint32, where string) error {
	var locals uint64
	if int(i) < len(s.funcTypes) && int(s.funcTypes[i]) < len(s.params) {
		locals = uint64(s.params[s.funcTypes[i]])
	}
	decls, err := r.U32()
	if err != nil {
		return errStop
	}
	for j := uint32(0); j < decls; j++ {
		n, err := r.U32()
		if err != nil {
			break
		}
		locals += uint64(n)
		if err := r.ValType(); err != nil {
			break
		}
	}
	// Checked once the declarations are summed, to report the total; an
	// undecodable declaration ends the sum (what was declared counts).
	if err := s.check(&s.stats.Locals, locals, s.l.Locals, LimitLocals, where, false); err != nil {
		return err
	}
	return s.instructions(r, where)
}

// instructions walks a function's instructions, tracking the nesting of
// blocks and the size of br_tables.
func (s *scanner) instructions(r *wasmbin.Reader, where string) error {
	var depth uint64
	for !r.Empty() {
		op, err := r.Byte()
		if err != nil {
			return errStop
		}
		switch op {
		case 0x02, 0x03, 0x04, 0x06: // block, loop, if, try
			if err := r.BlockType(); err != nil {
				return errStop
			}
			depth++
			if err := s.check(&s.stats.Nesting, depth, s.l.Nesting, LimitNesting, where, true); err != nil {
				return err
			}
			continue
		case 0x1f: // try_table opens a block too
			if err := r.Immediates(op); err != nil {
				return errStop
			}
			depth++
			if err := s.check(&s.stats.Nesting, depth, s.l.Nesting, LimitNesting, where, true); err != nil {
				return err
			}
			continue
		case 0x0b: // end
			if depth == 0 {
				return nil // the function's own end
			}
			depth--
			continue
		case 0x18: // delegate ends a try
			if _, err := r.U32(); err != nil {
				return errStop
			}
			if depth > 0 {
				depth--
			}
			continue
		case 0x0e: // br_table
			n, err := r.U32()
			if err != nil {
				return errStop
			}
			if err := s.check(&s.stats.BrTableTargets, uint64(n)+1, s.l.BrTableTargets, LimitBrTableTargets, where, false); err != nil {
				return err
			}
			for j := uint64(0); j <= uint64(n); j++ {
				if _, err := r.U32(); err != nil {
					return errStop
				}
			}
			continue
		}
		if err := r.Immediates(op); err != nil {
			return errStop
		}
	}
	return nil
}
