// Package instrument rewrites the code of a wasm module for the Keep's
// engines, adding two things neither engine offers cheaply:
//
//   - Interruption checks (for wazero): at every function entry and loop
//     header, a count down of the global $fuel; when it runs out, an
//     added function $tick traps if the global $stop is set, and calls
//     memory.grow 0, which wazero runs in Go: the Go scheduler's chance
//     to preempt the goroutine. Without it a guest that computes without
//     calling the host could not be preempted, so a garbage collection's
//     stop-the-world would wait for it while the goroutine that would
//     interrupt it is itself stopped: the whole process would hang. The
//     host stops a computing guest by setting $stop and emptying $fuel
//     (both exported). A load, a store and a branch per iteration,
//     against the indirect call to a trampoline that wazero's
//     WithCloseOnContextDone inserts at the same places. The module's
//     start function (start section) is exported instead of started:
//     an engine runs a start function inside instantiation, before the
//     host can reach $stop, so the caller runs it after instantiation,
//     as an interruptible call (Result.Start).
//   - Memory-growth recording (for wasmtime, whose memory limiter says
//     nothing when it refuses): every memory.grow of memory 0 becomes a
//     call to an added function that grows the memory and, when growth
//     fails, stores the size the guest asked for (in pages) in the
//     exported i64 global $requested.
//
// Only appended things are added (a type, a function, globals, exports),
// so no existing index changes; function bodies keep their instructions
// and only gain new ones. The output is still validated by the engine.
// With Options.TableElements, tables get maximums that bound their
// elements together.
//
// Trust: the module is untrusted. The decoder bounds every read, never
// allocates more than a small multiple of the input, and rejects what it
// does not understand with an error; it does not validate the module
// (the engine does), so a malformed body may be passed through with the
// engine left to refuse it. But every section must decode to exactly its
// declared end: wazero decodes a module with one reader over all of it
// and compares a section's length with what it read only after decoding
// the section, so the entries it would read past the end of a short
// section come from the sections that follow, and it allocates what they
// declare (counts that the pre-compile limits, which read each section
// on its own, never saw) before it refuses the module.
//
// No maintained Go library decodes wasm instruction streams for rewriting
// (wazero's decoder is internal to wazero), hence this one.
package instrument

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/enarx-go/enarx/keep/internal/wasmbin"
)

// Version names what Rewrite does. Raise it whenever a rewrite changes:
// a cache that finds compiled modules by the digest of the module before
// the rewrite must not find those rewritten by an older one.
const Version = 2

// Options selects the rewrites.
type Options struct {
	// Interrupt inserts interruption checks.
	Interrupt bool
	// RecordGrow wraps memory.grow of memory 0.
	RecordGrow bool
	// TableElements, if not 0, bounds the elements the module's own
	// tables may hold together, grown as well as initial: each table gets
	// a maximum, and the maxima add up to at most TableElements, so that
	// table.grow fails past them. wazero, which has no table limiter,
	// grows a table that declares no maximum to 2^32-2 elements of host
	// memory (outside the linear-memory limit), and an engine's limit
	// per table still lets a module of many tables grow each one to it.
	// What is left after the tables' minimums is shared by water-filling:
	// tables are taken by how much they could grow (their declared
	// maximum, or none, less their minimum), fewest first, and each gets
	// what it could use or an equal share of what is left, whichever is
	// less. A module of one table thus keeps its declared maximum up to
	// TableElements; declared maximums are lowered only where they add up
	// to more (the WebAssembly specification lets table.grow fail below
	// the maximum, and a Keep links no table from outside the module).
	// Imported tables are not counted (a Keep provides none). A module
	// whose minimums add up to more is refused (the pre-compile limits
	// refuse it first). A module without code cannot grow its tables and
	// is returned as it is.
	TableElements uint32
}

// Result is a rewritten module.
type Result struct {
	Wasm []byte
	// Stop is the export name of the i32 interruption flag, and Fuel of
	// the i32 count down of checks until the next look at it ("" when the
	// module has no function to check). Set Stop to 1, then Fuel to 0.
	Stop, Fuel string
	// Requested is the export name of the i64 global that holds, in
	// pages, the memory size of the last memory.grow that failed (""
	// when the module never grows memory 0).
	Requested string
	// Start is the export name of the module's start function, whose
	// start section the interruption checks remove ("" when the module
	// has none): the caller must call it, once, right after
	// instantiation, and treat its failure as the instantiation's. It
	// is the engine's to check that it takes and returns nothing.
	Start string
}

// Section ids.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// order is the position of each known section id in a module.
var order = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

// MaxModule bounds the input (the Keep reads no larger module).
const MaxModule = 1 << 30

type section struct {
	id      byte
	content []byte
}

// Rewrite applies o to wasm. The input is not modified.
func Rewrite(wasm []byte, o Options) (*Result, error) {
	m, err := decode(wasm)
	if err != nil {
		return nil, err
	}
	if !o.Interrupt && !o.RecordGrow && o.TableElements == 0 || m.code == nil {
		return &Result{Wasm: wasm}, nil
	}
	return m.rewrite(o)
}

// decode reads the module's sections and what the rewrite needs of them.
func decode(wasm []byte) (*module, error) {
	if len(wasm) > MaxModule {
		return nil, fmt.Errorf("module of %d bytes is too large", len(wasm))
	}
	if len(wasm) < 8 || string(wasm[:4]) != "\x00asm" {
		return nil, errors.New("not a wasm module (bad magic)")
	}
	if string(wasm[4:8]) != "\x01\x00\x00\x00" {
		return nil, errors.New("unsupported wasm binary version")
	}
	var secs []section
	r := wasmbin.Reader{B: wasm, P: 8}
	last := 0 // the rank (order) of the last non-custom section
	for r.P < len(r.B) {
		id, err := r.Byte()
		if err != nil {
			return nil, err
		}
		if id != secCustom {
			// Each known section at most once, in order: the rewrite
			// counts and extends the one of each kind (a second function
			// section would hide the functions it adds).
			rank, ok := order[id]
			if !ok {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
			if rank <= last {
				return nil, fmt.Errorf("section %d repeated or out of order", id)
			}
			last = rank
		}
		n, err := r.U32()
		if err != nil {
			return nil, fmt.Errorf("section %d size: %w", id, err)
		}
		c, err := r.Bytes(uint64(n))
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", id, err)
		}
		secs = append(secs, section{id: id, content: c})
	}
	m := &module{secs: secs, wasm: wasm}
	if err := m.scan(); err != nil {
		return nil, err
	}
	return m, nil
}

type module struct {
	wasm []byte
	secs []section
	// Counts of the index spaces the rewrite appends to.
	types, importedFuncs, funcs, importedGlobals, globals int
	// memories: imported and defined.
	memories    int
	exportNames map[string]bool
	code        []byte
	// start is the start section's function index (-1: none).
	start int64
	// tables are the limits of the module's own tables.
	tables []tableLimits
}

// tableLimits are a table's declared limits.
type tableLimits struct {
	min, max uint64
	hasMax   bool
}

// scan reads the counts and names the rewrite needs.
func (m *module) scan() error {
	m.exportNames = map[string]bool{}
	m.start = -1
	for i, s := range m.secs {
		r := wasmbin.Reader{B: s.content}
		var err error
		switch s.id {
		case secCustom:
			var name []byte
			if name, err = r.Name(); err == nil && string(name) == "name" {
				err = names(&r, i == len(m.secs)-1)
			}
			r.P = len(r.B)
		case secType:
			m.types, err = countTypes(&r)
		case secImport:
			err = m.scanImports(&r)
		case secFunction:
			m.funcs, err = countVec(&r, func(r *wasmbin.Reader) error { _, err := r.U32(); return err })
		case secTable:
			_, err = countVec(&r, func(r *wasmbin.Reader) error {
				_, l, err := m.table(r, nil, -1)
				m.tables = append(m.tables, l)
				return err
			})
		case secMemory:
			var n int
			n, err = countVec(&r, func(r *wasmbin.Reader) error { _, _, err := r.Limits(); return err })
			m.memories += n
		case secGlobal:
			m.globals, err = countVec(&r, func(r *wasmbin.Reader) error { return m.skipGlobal(r) })
		case secExport:
			err = m.scanExports(&r)
		case secStart:
			var idx uint32
			idx, err = r.U32()
			m.start = int64(idx)
		case secElement:
			_, err = countVec(&r, m.skipElement)
		case secDataCount:
			_, err = r.U32()
		case secCode:
			m.code = s.content
			r.P = len(r.B) // rewriteCode checks it
		case secData:
			_, err = countVec(&r, m.skipData)
		case secTag:
			_, err = countVec(&r, func(r *wasmbin.Reader) error {
				if _, err := r.Byte(); err != nil { // attribute
					return err
				}
				_, err := r.U32() // type index
				return err
			})
		default:
			r.P = len(r.B)
		}
		if err == nil && r.P != len(r.B) {
			err = errors.New("bytes after the last entry")
		}
		if err != nil {
			return fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	return nil
}

// names reads the name section after its name as wazero does (which
// reads each subsection it knows to the end of its entries, and takes the
// declared sizes only to count down what is left of the section), and
// refuses one that wazero would read past its end: wazero's reader would
// go on into the sections that follow. When the section is the module's
// last (last), there are none: wazero stops where a subsection id would
// start at the module's end, and accepts the module.
func names(r *wasmbin.Reader, last bool) error {
	left := uint64(len(r.B) - r.P)
	for left > 0 {
		id, err := r.Byte()
		if err != nil {
			if last {
				return nil
			}
			return errors.New("name section: read past its end")
		}
		p := r.P
		size, err := r.U32()
		if err != nil {
			return fmt.Errorf("name section: %w", err)
		}
		left -= 1 + uint64(r.P-p) // wraps, as wazero's, when the sizes lie
		switch id {
		case 0: // module name
			_, err = r.Name()
		case 1: // function names: a name map
			err = nameMap(r)
		case 2: // local names: an indirect name map
			var n uint32
			if n, err = r.U32(); err == nil {
				for ; n > 0 && err == nil; n-- {
					if _, err = r.U32(); err == nil {
						err = nameMap(r)
					}
				}
			}
		default:
			_, err = r.Bytes(uint64(size))
		}
		if err != nil {
			return fmt.Errorf("name section, subsection %d: %w", id, err)
		}
		left -= uint64(size)
	}
	return nil
}

// nameMap skips a name map: a vector of (index, name).
func nameMap(r *wasmbin.Reader) error {
	n, err := r.U32()
	for ; n > 0 && err == nil; n-- {
		if _, err = r.U32(); err == nil {
			_, err = r.Name()
		}
	}
	return err
}

// countVec reads a vector whose entries skip reads.
func countVec(r *wasmbin.Reader, skip func(*wasmbin.Reader) error) (int, error) {
	n, err := r.U32()
	if err != nil {
		return 0, err
	}
	for i := uint32(0); i < n; i++ {
		if err := skip(r); err != nil {
			return 0, fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return int(n), nil
}

// skipGlobal skips a global: type, mutability, constant expression, whose
// global.get may name only imported globals (the index of an added global
// must not become valid).
func (m *module) skipGlobal(r *wasmbin.Reader) error {
	if err := r.ValType(); err != nil {
		return err
	}
	if _, err := r.Byte(); err != nil {
		return err
	}
	return m.constExpr(r, uint32(m.importedGlobals))
}

// constExpr skips a constant expression up to and including its end. Its
// global.get may name only the first globals globals, its ref.func only
// the module's own functions: the index of an added global or function
// must not become valid.
func (m *module) constExpr(r *wasmbin.Reader, globals uint32) error {
	for {
		op, err := r.Byte()
		if err != nil {
			return err
		}
		switch op {
		case 0x0b:
			return nil
		case 0x23: // global.get
			if idx, err := r.U32(); err != nil || idx >= globals {
				return errors.New("constant expression names a global out of range")
			}
		case 0xd2: // ref.func
			if err := m.funcIndex(r); err != nil {
				return err
			}
		default:
			if err := r.Immediates(op); err != nil {
				return err
			}
		}
	}
}

// funcIndex reads a function index, which must name one of the module's
// own functions.
func (m *module) funcIndex(r *wasmbin.Reader) error {
	if idx, err := r.U32(); err != nil || uint64(idx) >= uint64(m.importedFuncs+m.funcs) {
		return errors.New("function index out of range")
	}
	return nil
}

// table reads a table type, (0x40 0x00)? reftype limits expr? (the prefix
// and expression: a table with an initializer), and returns out with the
// table appended, given max as its maximum when max is not negative, and
// the limits it declares.
func (m *module) table(r *wasmbin.Reader, out []byte, max int64) ([]byte, tableLimits, error) {
	var l tableLimits
	start := r.P
	init := false
	if c, ok := r.Peek(); ok && c == 0x40 {
		if b, err := r.Bytes(2); err != nil || b[1] != 0x00 {
			return nil, l, errors.New("malformed table with an initializer")
		}
		init = true
	}
	if err := r.ValType(); err != nil {
		return nil, l, err
	}
	at := r.P
	var err error
	if l.min, l.max, err = r.Limits(); err != nil {
		return nil, l, err
	}
	flags := r.B[at]
	l.hasMax = flags&0x01 != 0
	if max >= 0 && !(l.hasMax && l.max == uint64(max)) {
		// The minimum, as it was encoded, follows the flags.
		bits := uint(32)
		if flags&0x04 != 0 {
			bits = 64
		}
		lr := wasmbin.Reader{B: r.B[:r.P], P: at + 1}
		if _, err := lr.ULEB(bits); err != nil {
			return nil, l, err
		}
		out = append(out, r.B[start:at]...)
		out = append(out, flags|0x01)
		out = append(out, r.B[at+1:lr.P]...)
		out = uleb(out, uint64(max))
		start = r.P
	}
	if init { // only imported globals precede the table section
		if err := m.constExpr(r, uint32(m.importedGlobals)); err != nil {
			return nil, l, err
		}
	}
	return append(out, r.B[start:r.P]...), l, nil
}

// tableMaxima returns the maximum each table gets so that together they
// hold at most budget elements, shared as Options.TableElements says;
// -1 keeps a table as it is (one whose declared maximum is below its
// minimum, which the engine refuses).
func tableMaxima(tables []tableLimits, budget uint64) ([]int64, error) {
	var sum uint64
	for _, t := range tables {
		sum += t.min // at most 2^32 tables of 2^64: checked below
		if sum < t.min || sum > budget {
			return nil, fmt.Errorf("the tables' minimums add up to more than %d elements", budget)
		}
	}
	want := make([]uint64, len(tables))
	order := make([]int, len(tables))
	for i, t := range tables {
		order[i] = i
		want[i] = math.MaxUint64
		if t.hasMax {
			want[i] = t.max - t.min
			if t.max < t.min {
				want[i] = 0
			}
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(want[a], want[b]) })
	maxima := make([]int64, len(tables))
	rest := budget - sum
	for k, i := range order {
		give := min(want[i], rest/uint64(len(order)-k))
		rest -= give
		maxima[i] = int64(tables[i].min + give)
		if t := tables[i]; t.hasMax && t.max < t.min {
			maxima[i] = -1
		}
	}
	return maxima, nil
}

// skipElement skips an element segment.
func (m *module) skipElement(r *wasmbin.Reader) error {
	flags, err := r.U32()
	if err != nil {
		return err
	}
	if flags > 7 {
		return fmt.Errorf("unknown element segment flags %d", flags)
	}
	globals := uint32(m.importedGlobals + m.globals)
	if flags&3 == 2 { // active, with a table index
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	if flags&1 == 0 { // active: the offset
		if err := m.constExpr(r, globals); err != nil {
			return err
		}
	}
	if flags&3 != 0 { // element kind (vector of indexes) or reference type
		if flags&4 == 0 {
			_, err = r.Byte()
		} else {
			err = r.ValType()
		}
		if err != nil {
			return err
		}
	}
	n, err := r.U32()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		if flags&4 == 0 {
			err = m.funcIndex(r)
		} else {
			err = m.constExpr(r, globals)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// skipData skips a data segment.
func (m *module) skipData(r *wasmbin.Reader) error {
	flags, err := r.U32()
	if err != nil {
		return err
	}
	switch flags {
	case 0: // active, memory 0
		err = m.constExpr(r, uint32(m.importedGlobals+m.globals))
	case 1: // passive
	case 2: // active, with a memory index
		if _, err = r.U32(); err == nil {
			err = m.constExpr(r, uint32(m.importedGlobals+m.globals))
		}
	default:
		return fmt.Errorf("unknown data segment flags %d", flags)
	}
	if err != nil {
		return err
	}
	_, err = r.Name() // the bytes
	return err
}

// countTypes counts the type section's function types. Types of the GC
// proposal (recursion groups, subtypes), which the Keep's engines do not
// enable, are refused: they would make entry count and index differ.
func countTypes(r *wasmbin.Reader) (int, error) {
	n, err := r.U32()
	if err != nil {
		return 0, err
	}
	for i := uint32(0); i < n; i++ {
		form, err := r.Byte()
		if err != nil {
			return 0, err
		}
		if form != 0x60 {
			return 0, fmt.Errorf("type %d: unsupported type form 0x%02x", i, form)
		}
		for j := 0; j < 2; j++ { // params, results
			k, err := r.U32()
			if err != nil {
				return 0, err
			}
			for ; k > 0; k-- {
				if err := r.ValType(); err != nil {
					return 0, err
				}
			}
		}
	}
	return int(n), nil
}

func (m *module) scanImports(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		for j := 0; j < 2; j++ { // module, name
			if _, err := r.Name(); err != nil {
				return err
			}
		}
		kind, err := r.Byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0: // func: type index
			m.importedFuncs++
			_, err = r.U32()
		case 1: // table: reftype, limits
			if err = r.ValType(); err == nil {
				_, _, err = r.Limits()
			}
		case 2: // memory: limits
			m.memories++
			_, _, err = r.Limits()
		case 3: // global: valtype, mutability
			m.importedGlobals++
			if err = r.ValType(); err == nil {
				_, err = r.Byte()
			}
		case 4: // tag: attribute, type index
			if _, err = r.Byte(); err == nil {
				_, err = r.U32()
			}
		default:
			return fmt.Errorf("import %d: unknown kind %d", i, kind)
		}
		if err != nil {
			return fmt.Errorf("import %d: %w", i, err)
		}
	}
	return nil
}

func (m *module) scanExports(r *wasmbin.Reader) error {
	n, err := r.U32()
	if err != nil {
		return err
	}
	for i := uint32(0); i < n; i++ {
		name, err := r.Name()
		if err != nil {
			return err
		}
		m.exportNames[string(name)] = true
		kind, err := r.Byte()
		if err != nil {
			return err
		}
		idx, err := r.U32()
		if err != nil {
			return err
		}
		// An export must name the module's own function, memory or global:
		// beyond them it would name an added one ($tick, the growth
		// wrapper, the flag, the memory added for $tick).
		own := -1
		switch kind {
		case 0:
			own = m.importedFuncs + m.funcs
		case 2:
			own = m.memories
		case 3:
			own = m.importedGlobals + m.globals
		}
		if own >= 0 && uint64(idx) >= uint64(own) {
			return fmt.Errorf("export %d names index %d of kind %d, out of range", i, idx, kind)
		}
	}
	return nil
}

// exportName returns base, or base with underscores appended, whichever
// the module does not already export.
func (m *module) exportName(base string) string {
	for m.exportNames[base] {
		base += "_"
	}
	m.exportNames[base] = true
	return base
}

func (m *module) rewrite(o Options) (*Result, error) {
	res := &Result{}
	// Added globals, functions and types go after the module's own, in
	// this order: $stop, $fuel, $requested; $tick, the growth wrapper.
	nextGlobal, nextFunc, nextType := m.importedGlobals+m.globals, m.importedFuncs+m.funcs, m.types
	stopGlobal, fuelGlobal, tickFunc := -1, -1, -1
	if o.Interrupt {
		stopGlobal, fuelGlobal, tickFunc = nextGlobal, nextGlobal+1, nextFunc
		nextGlobal, nextFunc = nextGlobal+2, nextFunc+1
	}
	growFunc, reqGlobal := -1, -1
	if o.RecordGrow {
		growFunc, reqGlobal = nextFunc, nextGlobal
	}
	code, grew, err := rewriteCode(m.code, fuelGlobal, tickFunc, growFunc,
		limits{globals: uint32(m.importedGlobals + m.globals), funcs: uint32(m.importedFuncs + m.funcs)})
	if err != nil {
		return nil, err
	}
	var newGlobals, newExports, newTypes, newFuncs [][]byte
	repl := map[byte][]byte{secCode: code}
	drop := map[byte]bool{}
	if t := m.content(secTable); o.TableElements != 0 && t != nil {
		maxima, err := tableMaxima(m.tables, uint64(o.TableElements))
		if err != nil {
			return nil, err
		}
		r := wasmbin.Reader{B: t}
		if _, err := r.U32(); err != nil {
			return nil, err
		}
		capped := append([]byte(nil), t[:r.P]...)
		for _, max := range maxima {
			if capped, _, err = m.table(&r, capped, max); err != nil {
				return nil, err
			}
		}
		if !bytes.Equal(capped, t) {
			repl[secTable] = capped
		}
	}
	if o.Interrupt && m.start >= 0 {
		// The start index must name one of the module's own functions:
		// beyond them it would name $tick or the growth wrapper.
		if m.start >= int64(m.importedFuncs+m.funcs) {
			return nil, fmt.Errorf("start function %d is out of range (%d functions)", m.start, m.importedFuncs+m.funcs)
		}
		res.Start = m.exportName("enarx.start")
		newExports = append(newExports, exportEntry(res.Start, 0, int(m.start)))
		drop[secStart] = true
	}
	if o.Interrupt {
		res.Stop = m.exportName("enarx.interrupt")
		res.Fuel = m.exportName("enarx.fuel")
		// (global (mut i32) (i32.const 0)), (global (mut i32) (i32.const Fuel))
		newGlobals = append(newGlobals, []byte{0x7f, 0x01, 0x41, 0x00, 0x0b},
			append(sleb([]byte{0x7f, 0x01, 0x41}, Fuel), 0x0b))
		newExports = append(newExports, exportEntry(res.Stop, 3, stopGlobal), exportEntry(res.Fuel, 3, fuelGlobal))
		newTypes = append(newTypes, []byte{0x60, 0x00, 0x00}) // () -> ()
		newFuncs = append(newFuncs, uleb(nil, uint64(nextType)))
		nextType++
		code = appendVecItem(code, tickBody(stopGlobal, fuelGlobal))
		if m.memories == 0 {
			// $tick's memory.grow needs a memory: (memory 0 0).
			repl[secMemory] = []byte{0x01, 0x01, 0x00, 0x00}
		}
	}
	if grew {
		res.Requested = m.exportName("enarx.requested_pages")
		// (global (mut i64) (i64.const 0))
		newGlobals = append(newGlobals, []byte{0x7e, 0x01, 0x42, 0x00, 0x0b})
		newExports = append(newExports, exportEntry(res.Requested, 3, reqGlobal))
		newTypes = append(newTypes, []byte{0x60, 0x01, 0x7f, 0x01, 0x7f}) // (i32) -> i32
		newFuncs = append(newFuncs, uleb(nil, uint64(nextType)))
		code = appendVecItem(code, growBody(reqGlobal))
	} else if !o.Interrupt && repl[secTable] == nil {
		return &Result{Wasm: m.wasm}, nil // nothing to add
	}
	repl[secCode] = code
	// Replace or add the sections the new entries go into.
	var err2 error
	add := func(id byte, items ...[]byte) {
		if len(items) == 0 || items[0] == nil || err2 != nil {
			return
		}
		old := m.content(id)
		if old == nil {
			old = []byte{0}
		}
		for _, it := range items {
			if old, err2 = appendVecItemChecked(old, it); err2 != nil {
				return
			}
		}
		repl[id] = old
	}
	add(secType, newTypes...)
	add(secFunction, newFuncs...)
	add(secGlobal, newGlobals...)
	add(secExport, newExports...)
	if err2 != nil {
		return nil, err2
	}
	res.Wasm = m.encode(repl, drop)
	return res, nil
}

func (m *module) content(id byte) []byte {
	for _, s := range m.secs {
		if s.id == id {
			return s.content
		}
	}
	return nil
}

// encode writes the module with the sections in repl replacing (or, when
// absent, added to) the original ones, and without those in drop.
func (m *module) encode(repl map[byte][]byte, drop map[byte]bool) []byte {
	size := 8
	for _, s := range m.secs {
		size += len(s.content) + 6
	}
	for _, c := range repl {
		size += len(c) + 6
	}
	out := make([]byte, 0, size)
	out = append(out, "\x00asm\x01\x00\x00\x00"...)
	put := func(id byte, c []byte) {
		out = append(out, id)
		out = uleb(out, uint64(len(c)))
		out = append(out, c...)
	}
	done := map[byte]bool{}
	// flush adds the replacement sections that are missing from the
	// module and belong before a section of rank below.
	flush := func(below int) {
		for _, id := range []byte{1, 3, 5, 6, 7, 10} {
			if c, ok := repl[id]; ok && !done[id] && order[id] < below && m.content(id) == nil {
				put(id, c)
				done[id] = true
			}
		}
	}
	for _, s := range m.secs {
		if s.id != secCustom {
			flush(order[s.id])
		}
		if drop[s.id] && s.id != secCustom {
			continue
		}
		if c, ok := repl[s.id]; ok && s.id != secCustom && !done[s.id] {
			put(s.id, c)
			done[s.id] = true
			continue
		}
		put(s.id, s.content)
	}
	flush(1 << 30)
	return out
}

func exportEntry(name string, kind byte, index int) []byte {
	b := uleb(nil, uint64(len(name)))
	b = append(b, name...)
	b = append(b, kind)
	return uleb(b, uint64(index))
}

// appendVecItem appends item to a vector (count, items…) already known
// to be well formed.
func appendVecItem(vec, item []byte) []byte {
	out, err := appendVecItemChecked(vec, item)
	if err != nil {
		panic(err) // the caller built vec itself
	}
	return out
}

func appendVecItemChecked(vec, item []byte) ([]byte, error) {
	r := wasmbin.Reader{B: vec}
	n, err := r.U32()
	if err != nil {
		return nil, err
	}
	if n == 1<<32-1 {
		return nil, errors.New("vector is full")
	}
	out := uleb(make([]byte, 0, len(vec)+len(item)+5), uint64(n)+1)
	out = append(out, vec[r.P:]...)
	return append(out, item...), nil
}

// Fuel is how many checks run between two looks at the interruption
// flag, and so between two chances for the Go scheduler to preempt a
// computing guest: 65,536 iterations of a tight loop are tens of
// microseconds, and the look (an exit from wazero's code to Go and back)
// costs about as much as a few hundred iterations.
const Fuel = 1 << 16

// tickBody is the added function $tick, called when $fuel runs out.
//
//	(func
//	  (if (global.get $stop) (then unreachable))
//	  (drop (memory.grow (i32.const 0)))  ;; wazero runs memory.grow in Go
//	  (global.set $fuel (i32.const Fuel)))
func tickBody(stop, fuel int) []byte {
	body := uleb([]byte{0x00, 0x23}, uint64(stop))    // no locals; global.get $stop
	body = append(body, 0x04, 0x40, 0x00, 0x0b)       // if; unreachable; end
	body = append(body, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0; memory.grow 0; drop
	body = sleb(append(body, 0x41), Fuel)             // i32.const Fuel
	body = uleb(append(body, 0x24), uint64(fuel))     // global.set $fuel
	body = append(body, 0x0b)
	return append(uleb(nil, uint64(len(body))), body...)
}

// growBody is the added function: memory.grow with its failure recorded.
//
//	(func (param $d i32) (result i32) (local $r i32)
//	  (local.tee $r (memory.grow (local.get $d)))
//	  (if (i32.eq (i32.const -1))
//	    (then (global.set $requested
//	      (i64.add (i64.extend_i32_u (memory.size)) (i64.extend_i32_u (local.get $d))))))
//	  (local.get $r))
func growBody(global int) []byte {
	body := []byte{
		0x01, 0x01, 0x7f, // one i32 local
		0x20, 0x00, // local.get 0
		0x40, 0x00, // memory.grow 0
		0x22, 0x01, // local.tee 1
		0x41, 0x7f, // i32.const -1
		0x46,       // i32.eq
		0x04, 0x40, // if
		0x3f, 0x00, // memory.size 0
		0xad,       // i64.extend_i32_u
		0x20, 0x00, // local.get 0
		0xad, // i64.extend_i32_u
		0x7c, // i64.add
		0x24, // global.set
	}
	body = uleb(body, uint64(global))
	body = append(body, 0x0b, 0x20, 0x01, 0x0b) // end, local.get 1, end
	return append(uleb(nil, uint64(len(body))), body...)
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
