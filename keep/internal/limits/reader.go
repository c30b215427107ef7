package limits

import "errors"

// reader decodes the wasm binary format from a byte slice; every read is
// bounded by the slice.
type reader struct {
	b []byte
	p int
}

var errEOF = errors.New("unexpected end")

func (r *reader) empty() bool { return r.p >= len(r.b) }

func (r *reader) peek() (byte, bool) {
	if r.empty() {
		return 0, false
	}
	return r.b[r.p], true
}

func (r *reader) byte() (byte, error) {
	if r.empty() {
		return 0, errEOF
	}
	r.p++
	return r.b[r.p-1], nil
}

func (r *reader) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.p) {
		return nil, errEOF
	}
	out := r.b[r.p : r.p+int(n)]
	r.p += int(n)
	return out, nil
}

// uleb reads an unsigned LEB128 of at most bits bits.
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
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if shift+7 > bits && c>>(bits-shift) != 0 {
				return 0, errors.New("LEB128 out of range")
			}
			return v, nil
		}
	}
}

func (r *reader) u32() (uint32, error) {
	v, err := r.uleb(32)
	return uint32(v), err
}

// sleb skips a signed LEB128 of at most bits bits.
func (r *reader) sleb(bits uint) error {
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			return errors.New("LEB128 too long")
		}
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
}

func (r *reader) name() ([]byte, error) {
	n, err := r.u32()
	if err != nil {
		return nil, err
	}
	return r.bytes(uint64(n))
}

// valType reads a value type: a one-byte type, or a (ref null? ht)
// reference type of the function-references proposal.
func (r *reader) valType() error {
	b, err := r.byte()
	if err != nil {
		return err
	}
	switch {
	case b == 0x63 || b == 0x64:
		return r.sleb(33)
	case b >= 0x69 && b <= 0x7f: // numeric, vector and abstract reference types
		return nil
	}
	return errors.New("unknown value type")
}

func (r *reader) valTypes(n uint32) error {
	for i := uint32(0); i < n; i++ {
		if err := r.valType(); err != nil {
			return err
		}
	}
	return nil
}

// blockType reads the type of a block: empty, one value type, or a type
// index (a non-negative s33).
func (r *reader) blockType() error {
	b, ok := r.peek()
	if !ok {
		return errEOF
	}
	if b == 0x40 {
		r.p++
		return nil
	}
	if b >= 0x40 && b <= 0x7f || b == 0x63 || b == 0x64 { // a value type (one-byte negative s33)
		return r.valType()
	}
	return r.sleb(33)
}

// limits reads memory or table limits: min, and max if present (0 if not).
func (r *reader) limits() (min, max uint64, err error) {
	flags, err := r.byte()
	if err != nil {
		return 0, 0, err
	}
	if flags > 0x07 {
		return 0, 0, errors.New("unknown limits flags")
	}
	bits := uint(32)
	if flags&0x04 != 0 { // 64-bit (memory64, table64)
		bits = 64
	}
	if min, err = r.uleb(bits); err != nil {
		return 0, 0, err
	}
	if flags&0x01 != 0 {
		if max, err = r.uleb(bits); err != nil {
			return 0, 0, err
		}
	}
	return min, max, nil
}

// memarg reads alignment (with the multi-memory flag, a memory index) and
// offset.
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

// constExpr skips a constant expression up to and including its end.
func (r *reader) constExpr() error {
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		if op == 0x0b {
			return nil
		}
		if err := r.immediates(op); err != nil {
			return err
		}
	}
}

// u32s skips n u32 immediates.
func (r *reader) u32s(n int) error {
	for i := 0; i < n; i++ {
		if _, err := r.u32(); err != nil {
			return err
		}
	}
	return nil
}

// immediates skips the immediates of op, an instruction other than the
// block instructions, end, delegate and br_table (which the caller
// handles). It knows WebAssembly 2.0 and the tail-call, legacy exception
// handling, function-references and threads proposals.
func (r *reader) immediates(op byte) error {
	switch {
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0f, op == 0x19, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4,
		op == 0xd1, op == 0xd3, op == 0xd4: // ref.is_null, ref.eq, ref.as_non_null
		return nil
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10, op == 0x12,
		op == 0x14, op == 0x15, op >= 0x20 && op <= 0x26,
		op == 0xd2, op == 0xd5, op == 0xd6, // ref.func, br_on_null, br_on_non_null
		op == 0x3f, op == 0x40:
		return r.u32s(1)
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect: type, table
		return r.u32s(2)
	case op == 0x1c: // select t*
		n, err := r.u32()
		if err != nil {
			return err
		}
		return r.valTypes(n)
	case op >= 0x28 && op <= 0x3e:
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
	case op == 0xd0: // ref.null heap type
		return r.sleb(33)
	case op == 0xfc:
		return r.prefixFC()
	case op == 0xfd:
		return r.prefixFD()
	case op == 0xfe:
		return r.prefixFE()
	}
	return errors.New("unknown instruction")
}

func (r *reader) prefixFC() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // saturating truncations
		return nil
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		return r.u32s(2)
	case sub <= 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		return r.u32s(1)
	}
	return errors.New("unknown 0xfc instruction")
}

func (r *reader) prefixFD() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11, sub == 92, sub == 93: // loads and stores
		return r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		_, err := r.bytes(16)
		return err
	case sub >= 21 && sub <= 34: // lane extract and replace
		_, err := r.byte()
		return err
	case sub >= 84 && sub <= 91: // lane loads and stores
		if err := r.memarg(); err != nil {
			return err
		}
		_, err := r.byte()
		return err
	case sub <= 0xff, sub >= 0x100 && sub <= 0x113: // no immediates (relaxed SIMD too)
		return nil
	}
	return errors.New("unknown 0xfd instruction")
}

func (r *reader) prefixFE() error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub == 3: // atomic.fence
		_, err := r.byte()
		return err
	case sub <= 2, sub >= 0x10 && sub <= 0x4e:
		return r.memarg()
	}
	return errors.New("unknown 0xfe instruction")
}
