package instrument

import (
	"errors"
	"fmt"

	"github.com/enarx-go/enarx/keep/internal/wasmbin"
)

// limits are the sizes of the module's own index spaces. A body that
// names a global or function beyond them is refused: the module is invalid
// as it is, and after the rewrite the index would name an added global or
// function (the guest could clear its own interruption flag).
type limits struct{ globals, funcs uint32 }

// rewriteCode rewrites the code section's bodies: the interruption check
// at each function entry and loop header when fuelGlobal >= 0 (see
// tickBody), memory.grow of memory 0 replaced by a call to growFunc when
// growFunc >= 0. It reports whether any memory.grow was replaced.
func rewriteCode(code []byte, fuelGlobal, tickFunc, growFunc int, lim limits) ([]byte, bool, error) {
	var check []byte
	if fuelGlobal >= 0 {
		// global.get $fuel; i32.const 1; i32.sub; global.set $fuel;
		// global.get $fuel; i32.const 0; i32.le_s; if; call $tick; end
		check = uleb([]byte{0x23}, uint64(fuelGlobal))
		check = append(check, 0x41, 0x01, 0x6b, 0x24)
		check = uleb(check, uint64(fuelGlobal))
		check = uleb(append(check, 0x23), uint64(fuelGlobal))
		check = append(check, 0x41, 0x00, 0x4c, 0x04, 0x40, 0x10)
		check = uleb(check, uint64(tickFunc))
		check = append(check, 0x0b)
	}
	var call []byte
	if growFunc >= 0 {
		call = uleb([]byte{0x10}, uint64(growFunc))
	}
	r := wasmbin.Reader{B: code}
	n, err := r.U32()
	if err != nil {
		return nil, false, err
	}
	out := uleb(make([]byte, 0, len(code)+len(code)/16+64), uint64(n))
	var body []byte
	grew := false
	for i := uint32(0); i < n; i++ {
		size, err := r.U32()
		if err != nil {
			return nil, false, fmt.Errorf("function body %d: %w", i, err)
		}
		b, err := r.Bytes(uint64(size))
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
	if r.P != len(code) {
		return nil, false, errors.New("code section has bytes after its last body")
	}
	return out, grew, nil
}

// rewriteBody appends the rewritten body b to out.
func rewriteBody(out, b, check, call []byte, lim limits) ([]byte, bool, error) {
	r := wasmbin.Reader{B: b}
	// Locals: vec of (count, valtype).
	n, err := r.U32()
	if err != nil {
		return nil, false, err
	}
	for ; n > 0; n-- {
		if _, err := r.U32(); err != nil {
			return nil, false, err
		}
		if err := r.ValType(); err != nil {
			return nil, false, err
		}
	}
	out = append(out, b[:r.P]...)
	out = append(out, check...)
	last := r.P // b[last:r.P] is still to be copied
	grew := false
	for r.P < len(b) {
		op := b[r.P]
		r.P++
		switch {
		case op == 0x03 && check != nil: // loop
			if err := r.BlockType(); err != nil {
				return nil, false, err
			}
			out = append(out, b[last:r.P]...)
			out = append(out, check...)
			last = r.P
		case op == 0x40 && call != nil: // memory.grow
			start := r.P - 1
			mem, err := r.U32()
			if err != nil {
				return nil, false, err
			}
			if mem == 0 {
				out = append(out, b[last:start]...)
				out = append(out, call...)
				last = r.P
				grew = true
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			if idx, err := r.U32(); err != nil || idx >= lim.globals {
				return nil, false, fmt.Errorf("global index out of range at offset %d", r.P)
			}
		case op == 0x10 || op == 0x12 || op == 0xd2: // call, return_call, ref.func
			if idx, err := r.U32(); err != nil || idx >= lim.funcs {
				return nil, false, fmt.Errorf("function index out of range at offset %d", r.P)
			}
		default:
			if err := r.Immediates(op); err != nil {
				return nil, false, fmt.Errorf("opcode 0x%02x at offset %d: %w", op, r.P, err)
			}
		}
	}
	return append(out, b[last:]...), grew, nil
}
