package limits

import "strconv"

// A generator of valid modules whose declared quantities are known, for
// the tests and the fuzz target.

func uleb(v uint64) []byte {
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

func vec(n uint64, items ...[]byte) []byte {
	b := uleb(n)
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func section(id byte, content []byte) []byte {
	return append(append([]byte{id}, uleb(uint64(len(content)))...), content...)
}

// spec describes a module. Every count is what the module declares.
type spec struct {
	params      uint64 // parameters of the one function type
	imports     uint64 // imported functions (of that type)
	funcs       uint64 // defined functions (at least 1)
	localGroups []uint64
	nesting     uint64 // blocks nested in function 0 (loop, block, if in turn)
	brTable     uint64 // labels of a br_table in function 0 (0: none)
	tableMin    uint64 // a table of this many funcref elements
	tableMax    uint64 // its declared maximum (0: none)
	elemItems   uint64 // an active element segment of this many items
	globals     uint64
	exports     uint64 // exports of function 0
	data        uint64 // passive data segments
}

// build encodes s.
func (s spec) build() []byte {
	const i32 = 0x7f
	params := make([]byte, s.params)
	for i := range params {
		params[i] = i32
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = append(m, section(1, vec(1, append(append([]byte{0x60}, vec(s.params, params)...), 0)))...)
	if s.imports > 0 {
		var imps []byte
		for i := uint64(0); i < s.imports; i++ {
			imps = append(imps, 1, 'm', 1, 'f', 0x00, 0)
		}
		m = append(m, section(2, vec(s.imports, imps))...)
	}
	funcs := max(s.funcs, 1)
	m = append(m, section(3, vec(funcs, make([]byte, funcs)))...) // all of type 0
	if s.tableMin > 0 || s.tableMax > 0 {
		t := []byte{0x70, 0x00}
		t = append(t, uleb(s.tableMin)...)
		if s.tableMax > 0 {
			t = []byte{0x70, 0x01}
			t = append(t, uleb(s.tableMin)...)
			t = append(t, uleb(s.tableMax)...)
		}
		m = append(m, section(4, vec(1, t))...)
	}
	if s.globals > 0 {
		var gs []byte
		for i := uint64(0); i < s.globals; i++ {
			gs = append(gs, i32, 0x00, 0x41, 0x00, 0x0b)
		}
		m = append(m, section(6, vec(s.globals, gs))...)
	}
	if s.exports > 0 {
		var es []byte
		for i := uint64(0); i < s.exports; i++ {
			name := strconv.FormatUint(i, 10)
			es = append(append(append(es, byte(len(name))), name...), 0x00, 0x00)
		}
		m = append(m, section(7, vec(s.exports, es))...)
	}
	if s.elemItems > 0 && s.tableMin > 0 {
		seg := []byte{0x00, 0x41, 0x00, 0x0b}
		seg = append(seg, vec(s.elemItems, make([]byte, s.elemItems))...) // function 0
		m = append(m, section(9, vec(1, seg))...)
	}
	var bodies []byte
	for f := uint64(0); f < funcs; f++ {
		var body []byte
		if f == 0 {
			body = append(body, vec(uint64(len(s.localGroups)), localDecls(s.localGroups))...)
			for d := uint64(0); d < s.nesting; d++ {
				switch d % 3 {
				case 0:
					body = append(body, 0x02, 0x40) // block
				case 1:
					body = append(body, 0x03, 0x40) // loop
				case 2:
					body = append(body, 0x41, 0x00, 0x04, 0x40) // i32.const 0; if
				}
			}
			if s.brTable > 0 {
				body = append(body, 0x41, 0x00, 0x0e)
				body = append(body, uleb(s.brTable-1)...)
				for t := uint64(0); t < s.brTable; t++ {
					body = append(body, uleb(t%(s.nesting+1))...)
				}
			}
			for d := uint64(0); d < s.nesting; d++ {
				body = append(body, 0x0b)
			}
		} else {
			body = append(body, 0x00)
		}
		body = append(body, 0x0b)
		bodies = append(bodies, append(uleb(uint64(len(body))), body...)...)
	}
	m = append(m, section(10, vec(funcs, bodies))...)
	if s.data > 0 {
		var ds []byte
		for i := uint64(0); i < s.data; i++ {
			ds = append(ds, 0x01, 0x00) // passive, empty
		}
		m = append(m, section(11, vec(s.data, ds))...)
	}
	return m
}

func localDecls(groups []uint64) []byte {
	var b []byte
	for _, n := range groups {
		b = append(append(b, uleb(n)...), 0x7f)
	}
	return b
}
