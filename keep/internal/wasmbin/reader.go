// Package wasmbin reads the WebAssembly binary format from untrusted
// bytes: LEB128 numbers, names, value and block types, limits, memory
// arguments and the immediates of every instruction the Keep's engines
// accept. It is the one reader under both the pre-compile limits check
// (keep/internal/limits) and the interruption rewriter
// (keep/internal/engine/internal/instrument): two readers that disagreed
// on one opcode would read different instructions from the same bytes.
//
// It decodes; it does not validate. Every read is bounded by the slice;
// malformed input gives an error, never a panic. What it knows:
// WebAssembly 2.0 and the tail-call, exception handling (legacy and
// try_table), function-references, multi-memory, memory64, threads and
// relaxed-SIMD proposals; an unknown instruction is an error.
package wasmbin

import (
	"errors"
	"fmt"
)

// ErrTruncated is the error of a read past the end of the input.
var ErrTruncated = errors.New("truncated")

// Reader reads B from offset P.
type Reader struct {
	B []byte
	P int
}

// Empty reports whether every byte has been read.
func (r *Reader) Empty() bool { return r.P >= len(r.B) }

// Peek returns the next byte without reading it.
func (r *Reader) Peek() (byte, bool) {
	if r.Empty() {
		return 0, false
	}
	return r.B[r.P], true
}

// Byte reads one byte.
func (r *Reader) Byte() (byte, error) {
	if r.Empty() {
		return 0, ErrTruncated
	}
	r.P++
	return r.B[r.P-1], nil
}

// Bytes reads n bytes (a sub-slice of B).
func (r *Reader) Bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.B)-r.P) {
		return nil, ErrTruncated
	}
	out := r.B[r.P : r.P+int(n)]
	r.P += int(n)
	return out, nil
}

// ULEB reads an unsigned LEB128 of at most bits bits.
func (r *Reader) ULEB(bits uint) (uint64, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			return 0, errors.New("LEB128 too long")
		}
		c, err := r.Byte()
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

// U32 reads an unsigned LEB128 of at most 32 bits.
func (r *Reader) U32() (uint32, error) {
	v, err := r.ULEB(32)
	return uint32(v), err
}

// SLEB skips a signed LEB128 of at most bits bits.
func (r *Reader) SLEB(bits uint) error {
	for shift := uint(0); ; shift += 7 {
		if shift >= bits {
			return errors.New("LEB128 too long")
		}
		c, err := r.Byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
}

// Name reads a length-prefixed byte string.
func (r *Reader) Name() ([]byte, error) {
	n, err := r.U32()
	if err != nil {
		return nil, err
	}
	return r.Bytes(uint64(n))
}

// ValType skips a value type: a number or vector type, an abstract
// reference type (0x69–0x74), or (ref null? heaptype).
func (r *Reader) ValType() error {
	c, err := r.Byte()
	if err != nil {
		return err
	}
	switch {
	case c == 0x63 || c == 0x64:
		return r.SLEB(33)
	case c >= 0x7b && c <= 0x7f, c >= 0x69 && c <= 0x74:
		return nil
	}
	return fmt.Errorf("unknown value type 0x%02x", c)
}

// ValTypes skips n value types.
func (r *Reader) ValTypes(n uint32) error {
	for ; n > 0; n-- {
		if err := r.ValType(); err != nil {
			return err
		}
	}
	return nil
}

// BlockType skips the type of a block: empty, one value type, or a type
// index (a non-negative s33).
func (r *Reader) BlockType() error {
	c, ok := r.Peek()
	if !ok {
		return ErrTruncated
	}
	switch {
	case c == 0x40:
		r.P++
		return nil
	case c >= 0x40 && c <= 0x7f, c == 0x63, c == 0x64: // a value type (a one-byte negative s33)
		return r.ValType()
	}
	return r.SLEB(33)
}

// Limits reads memory or table limits: min, and max if present (0 if not).
func (r *Reader) Limits() (min, max uint64, err error) {
	flags, err := r.Byte()
	if err != nil {
		return 0, 0, err
	}
	if flags > 0x07 {
		return 0, 0, fmt.Errorf("unknown limits flags 0x%02x", flags)
	}
	bits := uint(32)
	if flags&0x04 != 0 { // 64-bit (memory64, table64)
		bits = 64
	}
	if min, err = r.ULEB(bits); err != nil {
		return 0, 0, err
	}
	if flags&0x01 != 0 {
		if max, err = r.ULEB(bits); err != nil {
			return 0, 0, err
		}
	}
	return min, max, nil
}

// Memarg skips a memory argument: alignment (bit 6 set: a memory index
// follows) and offset.
func (r *Reader) Memarg() error {
	align, err := r.U32()
	if err != nil {
		return err
	}
	if align&0x40 != 0 {
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	_, err = r.ULEB(64)
	return err
}

// ConstExpr skips a constant expression up to and including its end.
func (r *Reader) ConstExpr() error {
	for {
		op, err := r.Byte()
		if err != nil {
			return err
		}
		if op == 0x0b {
			return nil
		}
		if err := r.Immediates(op); err != nil {
			return err
		}
	}
}

func (r *Reader) u32s(n int) error {
	for ; n > 0; n-- {
		if _, err := r.U32(); err != nil {
			return err
		}
	}
	return nil
}

// Immediates skips the immediates of op, the instruction just read.
func (r *Reader) Immediates(op byte) error {
	switch {
	case op <= 0x01, op == 0x05, op == 0x0a, op == 0x0b, op == 0x0f, op == 0x19, op == 0x1a, op == 0x1b,
		op >= 0x45 && op <= 0xc4,
		op == 0xd1, op == 0xd3, op == 0xd4: // ref.is_null, ref.eq, ref.as_non_null
		return nil
	case op >= 0x02 && op <= 0x04, op == 0x06: // block, loop, if, try
		return r.BlockType()
	case op == 0x07, op == 0x08, op == 0x09, op == 0x0c, op == 0x0d, op == 0x10, op == 0x12,
		op == 0x14, op == 0x15, op == 0x18, op >= 0x20 && op <= 0x26,
		op == 0xd2, op == 0xd5, op == 0xd6, // ref.func, br_on_null, br_on_non_null
		op == 0x3f, op == 0x40:
		// One index: catch, throw, rethrow, br, br_if, call, return_call,
		// call_ref, return_call_ref, delegate, local.*, global.*,
		// table.get/set, memory.size/grow.
		return r.u32s(1)
	case op == 0x0e: // br_table: n labels and the default
		n, err := r.U32()
		if err != nil {
			return err
		}
		for i := uint64(0); i <= uint64(n); i++ {
			if _, err := r.U32(); err != nil {
				return err
			}
		}
		return nil
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect: type, table
		return r.u32s(2)
	case op == 0x1c: // select t*
		n, err := r.U32()
		if err != nil {
			return err
		}
		return r.ValTypes(n)
	case op == 0x1f: // try_table
		return r.tryTable()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		return r.Memarg()
	case op == 0x41:
		return r.SLEB(32)
	case op == 0x42:
		return r.SLEB(64)
	case op == 0x43:
		_, err := r.Bytes(4)
		return err
	case op == 0x44:
		_, err := r.Bytes(8)
		return err
	case op == 0xd0: // ref.null heaptype
		return r.SLEB(33)
	case op == 0xfc:
		return r.prefixFC()
	case op == 0xfd:
		return r.prefixFD()
	case op == 0xfe:
		return r.prefixFE()
	}
	return fmt.Errorf("unknown instruction 0x%02x", op)
}

// tryTable skips try_table's block type and catch clauses.
func (r *Reader) tryTable() error {
	if err := r.BlockType(); err != nil {
		return err
	}
	n, err := r.U32()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		kind, err := r.Byte()
		if err != nil {
			return err
		}
		if kind > 3 {
			return fmt.Errorf("unknown catch kind %d", kind)
		}
		if kind < 2 { // catch, catch_ref: a tag
			if _, err := r.U32(); err != nil {
				return err
			}
		}
		if _, err := r.U32(); err != nil { // the label
			return err
		}
	}
	return nil
}

// prefixFC: saturating truncation, bulk memory and table instructions.
func (r *Reader) prefixFC() error {
	sub, err := r.U32()
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
	return fmt.Errorf("unknown 0xfc instruction %d", sub)
}

// prefixFD: SIMD (relaxed SIMD has no immediates).
func (r *Reader) prefixFD() error {
	sub, err := r.U32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 0x0b, sub == 0x5c, sub == 0x5d: // loads, stores, load_zero
		return r.Memarg()
	case sub == 0x0c, sub == 0x0d: // v128.const, i8x16.shuffle
		_, err := r.Bytes(16)
		return err
	case sub >= 0x15 && sub <= 0x22: // extract and replace lane
		_, err := r.Byte()
		return err
	case sub >= 0x54 && sub <= 0x5b: // load and store lane
		if err := r.Memarg(); err != nil {
			return err
		}
		_, err := r.Byte()
		return err
	case sub <= 0x113:
		return nil
	}
	return fmt.Errorf("unknown 0xfd instruction %d", sub)
}

// prefixFE: atomics.
func (r *Reader) prefixFE() error {
	sub, err := r.U32()
	if err != nil {
		return err
	}
	switch {
	case sub == 0x03: // atomic.fence
		_, err := r.Byte()
		return err
	case sub <= 0x02, sub >= 0x10 && sub <= 0x4e:
		return r.Memarg()
	}
	return fmt.Errorf("unknown 0xfe instruction %d", sub)
}
