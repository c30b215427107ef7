package instrument

import (
	"errors"
	"fmt"
)

// limits are the sizes of the module's own index spaces. A body that
// names a global or function beyond them is refused: the module is invalid
// as it is, and after the rewrite the index would name an added global or
// function (the guest could clear its own interruption flag).
type limits struct{ globals, funcs uint32 }

// rewriteCode rewrites the code section's bodies: the interruption check
// at each function entry and loop header when stopGlobal >= 0, memory.grow
// of memory 0 replaced by a call to growFunc when growFunc >= 0. It
// reports whether any memory.grow was replaced.
func rewriteCode(code []byte, stopGlobal, growFunc int, lim limits) ([]byte, bool, error) {
	var check []byte
	if stopGlobal >= 0 {
		// global.get $stop; if; unreachable; end
		check = uleb([]byte{0x23}, uint64(stopGlobal))
		check = append(check, 0x04, 0x40, 0x00, 0x0b)
	}
	var call []byte
	if growFunc >= 0 {
		call = uleb([]byte{0x10}, uint64(growFunc))
	}
	r := reader{b: code}
	n, err := r.u32()
	if err != nil {
		return nil, false, err
	}
	out := uleb(make([]byte, 0, len(code)+len(code)/16+64), uint64(n))
	var body []byte
	grew := false
	for i := uint32(0); i < n; i++ {
		size, err := r.u32()
		if err != nil {
			return nil, false, fmt.Errorf("function body %d: %w", i, err)
		}
		b, err := r.bytes(int(size))
		if err != nil {
			return nil, false, fmt.Errorf("function body %d: %w", i, err)
		}
		var g bool
		body, g, err = rewriteBody(body[:0], b, check, call, lim)
		if err != nil {
			return nil, false, fmt.Errorf("function body %d: %w", i, err)
		}
		grew = grew || g
		out = uleb(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.p != len(code) {
		return nil, false, errors.New("code section has bytes after its last body")
	}
	return out, grew, nil
}

// rewriteBody appends the rewritten body b to out.
func rewriteBody(out, b, check, call []byte, lim limits) ([]byte, bool, error) {
	r := reader{b: b}
	// Locals: vec of (count, valtype).
	n, err := r.u32()
	if err != nil {
		return nil, false, err
	}
	for ; n > 0; n-- {
		if _, err := r.u32(); err != nil {
			return nil, false, err
		}
		if err := r.valType(); err != nil {
			return nil, false, err
		}
	}
	out = append(out, b[:r.p]...)
	out = append(out, check...)
	last := r.p // b[last:r.p] is still to be copied
	grew := false
	for r.p < len(b) {
		op := b[r.p]
		r.p++
		switch {
		case op == 0x03 && check != nil: // loop
			if err := r.blockType(); err != nil {
				return nil, false, err
			}
			out = append(out, b[last:r.p]...)
			out = append(out, check...)
			last = r.p
		case op == 0x40 && call != nil: // memory.grow
			start := r.p - 1
			mem, err := r.u32()
			if err != nil {
				return nil, false, err
			}
			if mem == 0 {
				out = append(out, b[last:start]...)
				out = append(out, call...)
				last = r.p
				grew = true
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			if idx, err := r.u32(); err != nil || idx >= lim.globals {
				return nil, false, fmt.Errorf("global index out of range at offset %d", r.p)
			}
		case op == 0x10 || op == 0x12 || op == 0xd2: // call, return_call, ref.func
			if idx, err := r.u32(); err != nil || idx >= lim.funcs {
				return nil, false, fmt.Errorf("function index out of range at offset %d", r.p)
			}
		default:
			if err := r.immediates(op); err != nil {
				return nil, false, fmt.Errorf("opcode 0x%02x at offset %d: %w", op, r.p, err)
			}
		}
	}
	return append(out, b[last:]...), grew, nil
}

// immediates skips the immediates of opcode op.
func (r *reader) immediates(op byte) error {
	switch {
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x19,
		op == 0x1a, op == 0x1b, op >= 0x45 && op <= 0xc4, op == 0xd1, op == 0xd3, op == 0xd4:
		return nil
	case op >= 0x02 && op <= 0x04, op == 0x06: // block, loop, if, try
		return r.blockType()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10, op == 0x12,
		op == 0x14, op == 0x15, op == 0x18, op >= 0x20 && op <= 0x26, op == 0xd2, op == 0xd5, op == 0xd6,
		op == 0x3f, op == 0x40:
		// One index: catch, throw, rethrow, br, br_if, call, return_call,
		// call_ref, return_call_ref, delegate, local.*, global.*,
		// table.get/set, ref.func, br_on_null, br_on_non_null,
		// memory.size/grow.
		_, err := r.u32()
		return err
	case op == 0x0e: // br_table
		n, err := r.u32()
		if err != nil {
			return err
		}
		for i := uint64(0); i <= uint64(n); i++ {
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		return nil
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		if _, err := r.u32(); err != nil {
			return err
		}
		_, err := r.u32()
		return err
	case op == 0x1c: // select t*
		n, err := r.u32()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := r.valType(); err != nil {
				return err
			}
		}
		return nil
	case op == 0x1f: // try_table
		if err := r.blockType(); err != nil {
			return err
		}
		n, err := r.u32()
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			kind, err := r.byte()
			if err != nil {
				return err
			}
			if kind > 3 {
				return fmt.Errorf("unknown catch kind %d", kind)
			}
			if kind < 2 { // catch, catch_ref: tag
				if _, err := r.u32(); err != nil {
					return err
				}
			}
			if _, err := r.u32(); err != nil { // label
				return err
			}
		}
		return nil
	case op >= 0x28 && op <= 0x3e: // loads and stores
		return r.memarg()
	case op == 0x41:
		return r.sleb(32)
	case op == 0x42:
		return r.sleb(64)
	case op == 0x43:
		_, err := r.bytes(4)
		return err
	case op == 0x44:
		_, err := r.bytes(8)
		return err
	case op == 0xd0: // ref.null
		return r.heapType()
	case op == 0xfc:
		return r.prefixFC()
	case op == 0xfd:
		return r.prefixFD()
	case op == 0xfe:
		return r.prefixFE()
	}
	return errors.New("unknown opcode")
}

// prefixFC: saturating truncation, bulk memory and table instructions.
func (r *reader) prefixFC() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	idx := 0
	switch {
	case sub <= 7: // trunc_sat
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		idx = 2
	case sub == 9, sub == 11, sub == 13, sub >= 15 && sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		idx = 1
	default:
		return fmt.Errorf("unknown 0xfc instruction %d", sub)
	}
	for ; idx > 0; idx-- {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// prefixFD: SIMD (and relaxed SIMD, which has no immediates).
func (r *reader) prefixFD() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads, stores, load_zero
		return r.memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		_, err := r.bytes(16)
		return err
	case sub >= 0x15 && sub <= 0x22: // extract/replace lane
		_, err := r.byte()
		return err
	case sub >= 0x54 && sub <= 0x5b: // load/store lane
		if err := r.memarg(); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 0x113:
		return nil
	}
	return fmt.Errorf("unknown 0xfd instruction %d", sub)
}

// prefixFE: atomics.
func (r *reader) prefixFE() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub == 0x03: // atomic.fence
		_, err := r.byte()
		return err
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e:
		return r.memarg()
	}
	return fmt.Errorf("unknown 0xfe instruction %d", sub)
}

// reader decodes a byte slice; every read is bounds-checked.
type reader struct {
	b []byte
	p int
}

func (r *reader) byte() (byte, error) {
	if r.p >= len(r.b) {
		return 0, errTruncated
	}
	c := r.b[r.p]
	r.p++
	return c, nil
}

func (r *reader) bytes(n int) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.p {
		return nil, errTruncated
	}
	b := r.b[r.p : r.p+n]
	r.p += n
	return b, nil
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

func (r *reader) uleb(bits uint) (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			return 0, errors.New("LEB128 too long")
		}
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 63 && c&0x7f > 1 {
			return 0, errors.New("LEB128 out of range")
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if bits < 64 && v>>bits != 0 {
				return 0, errors.New("LEB128 out of range")
			}
			return v, nil
		}
	}
}

// sleb skips a signed LEB128 of at most bits bits.
func (r *reader) sleb(bits uint) error {
	for i := uint(0); i < (bits+6)/7; i++ {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c < 0x80 {
			return nil
		}
	}
	return errors.New("LEB128 too long")
}

func (r *reader) name() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return r.bytes(int(n))
}

// valType skips a value type: one byte, or a reference type with a heap
// type (function references).
func (r *reader) valType() error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	switch c {
	case 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f, 0x69:
		return nil
	case 0x63, 0x64:
		return r.heapType()
	}
	return fmt.Errorf("unknown value type 0x%02x", c)
}

// heapType skips a heap type (a signed LEB128 of 33 bits).
func (r *reader) heapType() error { return r.sleb(33) }

// blockType skips a block type: empty, a value type or a type index.
func (r *reader) blockType() error {
	if r.p >= len(r.b) {
		return errTruncated
	}
	switch c := r.b[r.p]; {
	case c == 0x40:
		r.p++
		return nil
	case c == 0x63 || c == 0x64:
		return r.valType()
	case c >= 0x40 && c < 0x80:
		return r.valType()
	}
	return r.sleb(33)
}

// memarg skips a memory argument: alignment (bit 6 set: a memory index
// follows), offset.
func (r *reader) memarg() error {
	align, err := r.u32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	_, err = r.uleb(64)
	return err
}

// limits skips table or memory limits.
func (r *reader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if flags > 7 {
		return fmt.Errorf("unknown limits flags 0x%02x", flags)
	}
	if _, err := r.uleb(64); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = r.uleb(64)
	}
	return err
}
