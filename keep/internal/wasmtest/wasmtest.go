// Package wasmtest hand-assembles tiny WebAssembly modules for tests (the
// equivalents of upstream's .wat test payloads: return_1, no_export, a
// trap, proc_exit(n), a bare memory), so tests need no wat2wasm.
package wasmtest

// Value types and opcodes used below.
const (
	I32 = 0x7f
	I64 = 0x7e

	opUnreachable = 0x00
	opCall        = 0x10
	opI32Const    = 0x41
	opI64Const    = 0x42
	opI32Store    = 0x36
	opEnd         = 0x0b
)

func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(v int32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func name(s string) []byte { return append(uleb(uint32(len(s))), s...) }

func vec(items ...[]byte) []byte {
	b := uleb(uint32(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func section(id byte, content []byte) []byte {
	return append(append([]byte{id}, uleb(uint32(len(content)))...), content...)
}

func functype(params, results []byte) []byte {
	b := []byte{0x60}
	b = append(b, vec(bytesOf(params)...)...)
	return append(b, vec(bytesOf(results)...)...)
}

func bytesOf(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i, x := range b {
		out[i] = []byte{x}
	}
	return out
}

func code(body ...byte) []byte {
	f := append([]byte{0x00}, body...) // no locals
	return append(uleb(uint32(len(f))), f...)
}

var header = []byte("\x00asm\x01\x00\x00\x00")

func module(sections ...[]byte) []byte {
	b := append([]byte(nil), header...)
	for _, s := range sections {
		b = append(b, s...)
	}
	return b
}

// Return1 is upstream's return_1.wat: (func (export "") (result i32) i32.const 1).
func Return1() []byte {
	return module(
		section(1, vec(functype(nil, []byte{I32}))),
		section(3, vec(uleb(0))),
		section(7, vec(append(name(""), 0x00, 0x00))),
		section(10, vec(code(opI32Const, 1, opEnd))),
	)
}

// NoExport has a function but exports nothing.
func NoExport() []byte {
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0))),
		section(10, vec(code(opEnd))),
	)
}

// Trap exports _start, which executes unreachable.
func Trap() []byte {
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0))),
		section(7, vec(append(name("_start"), 0x00, 0x00))),
		section(10, vec(code(opUnreachable, opEnd))),
	)
}

// ProcExit exports _start, which calls module.proc_exit(n).
func ProcExit(module_ string, n int32) []byte {
	body := append([]byte{opI32Const}, sleb(n)...)
	body = append(body, opCall, 0x00, opEnd)
	return module(
		section(1, vec(functype([]byte{I32}, nil), functype(nil, nil))),
		section(2, vec(append(append(name(module_), name("proc_exit")...), 0x00, 0x00))),
		section(3, vec(uleb(1))),
		section(7, vec(append(name("_start"), 0x00, 0x01))),
		section(10, vec(code(body...))),
	)
}

// Memory exports a memory of pages 64 KiB pages named "memory" and a no-op
// _start.
func Memory(pages uint32) []byte {
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0))),
		section(5, vec(append([]byte{0x00}, uleb(pages)...))),
		section(7, vec(append(name("memory"), append([]byte{0x02}, uleb(0)...)...), append(name("_start"), 0x00, 0x00))),
		section(10, vec(code(opEnd))),
	)
}

// StartSection has a start section naming a function whose body is body
// (the instructions, without the final end), a memory of one page
// exported as "memory", and a no-op _start. The engine runs the start
// function while it instantiates the module.
func StartSection(body ...byte) []byte {
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0), uleb(0))),
		section(5, vec([]byte{0x00, 0x01})),
		section(7, vec(append(name("memory"), 0x02, 0x00), append(name("_start"), 0x00, 0x01))),
		section(8, uleb(0)),
		section(10, vec(code(append(body, opEnd)...), code(opEnd))),
	)
}

// StartParams exports a _start that takes an i32 (not a valid entry point).
func StartParams() []byte {
	return module(
		section(1, vec(functype([]byte{I32}, nil))),
		section(3, vec(uleb(0))),
		section(7, vec(append(name("_start"), 0x00, 0x00))),
		section(10, vec(code(opEnd))),
	)
}

// Import is a function import of ImportAll.
type Import struct {
	Module, Name    string
	Params, Results []byte
}

// ImportAll imports every function in imports (each with its own type)
// and exports a memory of one page and a no-op _start.
func ImportAll(imports []Import) []byte {
	var types, imps [][]byte
	for i, im := range imports {
		types = append(types, functype(im.Params, im.Results))
		imp := append(name(im.Module), name(im.Name)...)
		imps = append(imps, append(append(imp, 0x00), uleb(uint32(i))...))
	}
	types = append(types, functype(nil, nil))
	start := uint32(len(imports))
	return module(
		section(1, vec(types...)),
		section(2, vec(imps...)),
		section(3, vec(uleb(start))),
		section(5, vec(append([]byte{0x00}, uleb(1)...))),
		section(7, vec(append(name("memory"), append([]byte{0x02}, uleb(0)...)...), append(append(name("_start"), 0x00), uleb(start)...))),
		section(10, vec(code(opEnd))),
	)
}

// Loop exports a _start that loops forever without calling anything.
func Loop() []byte {
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0))),
		section(7, vec(append(name("_start"), 0x00, 0x00))),
		section(10, vec(code(0x03, 0x40, 0x0c, 0x00, 0x0b, opEnd))), // loop; br 0; end
	)
}

// Recurse exports a _start that computes fib(n) by naive recursion: no
// loops, 2^n calls (n = 100 does not finish).
func Recurse(n int32) []byte {
	start := append([]byte{opI32Const}, sleb(n)...)
	start = append(start, opCall, 0x01, 0x1a, opEnd) // call fib; drop
	fib := []byte{
		0x20, 0x00, opI32Const, 0x02, 0x49, // local.get 0; i32.const 2; i32.lt_u
		0x04, I32, // if (result i32)
		0x20, 0x00, // local.get 0
		0x05,                                             // else
		0x20, 0x00, opI32Const, 0x01, 0x6b, opCall, 0x01, // fib(n-1)
		0x20, 0x00, opI32Const, 0x02, 0x6b, opCall, 0x01, // fib(n-2)
		0x6a, // i32.add
		0x0b, opEnd,
	}
	return module(
		section(1, vec(functype(nil, nil), functype([]byte{I32}, []byte{I32}))),
		section(3, vec(uleb(0), uleb(1))),
		section(7, vec(append(name("_start"), 0x00, 0x00))),
		section(10, vec(code(start...), code(fib...))),
	)
}

// Grow exports a memory of one page and a _start that grows it by pages
// and traps (unreachable) if that fails.
func Grow(pages int32) []byte {
	body := append([]byte{opI32Const}, sleb(pages)...)
	body = append(body, 0x40, 0x00, opI32Const, 0x7f, 0x46, 0x04, 0x40, opUnreachable, 0x0b, opEnd)
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0))),
		section(5, vec(append([]byte{0x00}, uleb(1)...))),
		section(7, vec(append(name("memory"), append([]byte{0x02}, uleb(0)...)...), append(name("_start"), 0x00, 0x00))),
		section(10, vec(code(body...))),
	)
}

// start is a module whose _start has body (after its local declarations).
func start(locals []byte, body ...byte) []byte {
	f := append(append([]byte{}, locals...), body...)
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0))),
		section(7, vec(append(name("_start"), 0x00, 0x00))),
		section(10, vec(append(uleb(uint32(len(f))), f...))),
	)
}

// Locals exports a no-op _start that declares n i32 locals (a compile-time
// bomb for large n: 41 bytes for n = 200,000,000).
func Locals(n uint32) []byte {
	return start(append(append([]byte{0x01}, uleb(n)...), I32), opEnd)
}

// Nested exports a _start of n nested empty blocks.
func Nested(n int) []byte {
	body := make([]byte, 0, 3*n+1)
	for range n {
		body = append(body, 0x02, 0x40)
	}
	for range n {
		body = append(body, opEnd)
	}
	return start([]byte{0x00}, append(body, opEnd)...)
}

// BrTable exports a _start holding a br_table of n targets (all to the
// function's own block).
func BrTable(n uint32) []byte {
	body := append([]byte{opI32Const, 0x00, 0x0e}, uleb(n-1)...)
	body = append(body, make([]byte, n)...) // label 0, n times (n-1 targets and the default)
	return start([]byte{0x00}, append(body, opEnd)...)
}

// StoreAt exports a memory of pages pages and a _start that grows it by
// grow pages (trapping with unreachable if that fails), then stores 42 at
// addr and loads it back (trapping if it reads something else).
func StoreAt(pages, grow, addr uint32) []byte {
	var body []byte
	if grow > 0 {
		body = append(append(body, opI32Const), sleb(int32(grow))...)
		body = append(body, 0x40, 0x00, opI32Const, 0x7f, 0x46, 0x04, 0x40, opUnreachable, opEnd) // memory.grow; i32.const -1; i32.eq; if unreachable end
	}
	a := sleb(int32(addr))
	body = append(append(body, opI32Const), a...)
	body = append(body, opI32Const, 42, 0x36, 0x02, 0x00) // i32.store
	body = append(append(body, opI32Const), a...)
	body = append(body, 0x28, 0x02, 0x00, opI32Const, 42, 0x47, 0x04, 0x40, opUnreachable, opEnd) // i32.load; i32.const 42; i32.ne; if unreachable end
	f := append([]byte{0x00}, append(body, opEnd)...)
	return module(
		section(1, vec(functype(nil, nil))),
		section(3, vec(uleb(0))),
		section(5, vec(append([]byte{0x00}, uleb(pages)...))),
		section(7, vec(append(name("memory"), append([]byte{0x02}, uleb(0)...)...), append(name("_start"), 0x00, 0x00))),
		section(10, vec(append(uleb(uint32(len(f))), f...))),
	)
}

// Call is one call of Program: an imported function returning an i32 (a
// WASI function) and its arguments, i32s unless Types says otherwise
// (I32 or I64 for each argument).
type Call struct {
	Name  string
	Args  []int32
	Types []byte
}

// Program exports a memory of one page, which holds data at address 0,
// and a _start that makes calls in turn, each to module's function of
// that name, and stores what call i returns (an i32) at results+4*i.
func Program(module_ string, data []byte, results int32, calls ...Call) []byte {
	var types, imps [][]byte
	index := map[string]uint32{}
	var body []byte
	for i, c := range calls {
		params := make([]byte, len(c.Args))
		for j := range params {
			params[j] = I32
			if j < len(c.Types) {
				params[j] = c.Types[j]
			}
		}
		f, ok := index[c.Name]
		if !ok {
			f = uint32(len(imps))
			index[c.Name] = f
			types = append(types, functype(params, []byte{I32}))
			imps = append(imps, append(append(append(name(module_), name(c.Name)...), 0x00), uleb(f)...))
		}
		body = append(append(body, opI32Const), sleb(results+4*int32(i))...)
		for j, a := range c.Args {
			op := byte(opI32Const)
			if params[j] == I64 {
				op = opI64Const
			}
			body = append(append(body, op), sleb(a)...) // an i64's LEB128 is an i32's for the same value
		}
		body = append(append(append(body, opCall), uleb(f)...), opI32Store, 0x02, 0x00)
	}
	start := uint32(len(imps))
	types = append(types, functype(nil, nil))
	return module(
		section(1, vec(types...)),
		section(2, vec(imps...)),
		section(3, vec(uleb(start))),
		section(5, vec(append([]byte{0x00}, uleb(1)...))),
		section(7, vec(append(name("memory"), 0x02, 0x00), append(append(name("_start"), 0x00), uleb(start)...))),
		section(10, vec(code(append(body, opEnd)...))),
		section(11, vec(append([]byte{0x00, opI32Const, 0x00, opEnd}, append(uleb(uint32(len(data))), data...)...))),
	)
}
