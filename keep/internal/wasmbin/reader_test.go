package wasmbin

import "testing"

// TestImmediates pins how many bytes of immediates an instruction has,
// for the reference instructions (Wasm 3.0 opcodes: limits once had
// ref.as_non_null and br_on_null swapped) and for one instruction of each
// other immediate shape. A marker byte after the immediates must be left.
func TestImmediates(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   byte
		imm  []byte
	}{
		{"ref.null func", 0xd0, []byte{0x70}},
		{"ref.is_null", 0xd1, nil},
		{"ref.func 5", 0xd2, []byte{0x05}},
		{"ref.eq", 0xd3, nil},
		{"ref.as_non_null", 0xd4, nil},
		{"br_on_null 1", 0xd5, []byte{0x01}},
		{"br_on_non_null 2", 0xd6, []byte{0x02}},
		{"nop", 0x01, nil},
		{"block empty", 0x02, []byte{0x40}},
		{"block i32", 0x02, []byte{0x7f}},
		{"block type 300", 0x02, []byte{0xac, 0x02}},
		{"br_table 2 labels + default", 0x0e, []byte{0x02, 0x00, 0x01, 0x02}},
		{"call_indirect", 0x11, []byte{0x03, 0x00}},
		{"select t*", 0x1c, []byte{0x01, 0x7f}},
		{"try_table catch tag label, catch_all label", 0x1f, []byte{0x40, 0x02, 0x00, 0x01, 0x00, 0x02, 0x00}},
		{"i32.load align offset", 0x28, []byte{0x02, 0x80, 0x01}},
		{"i32.load memory 1", 0x28, []byte{0x42, 0x01, 0x00}},
		{"i32.const -1", 0x41, []byte{0x7f}},
		{"f32.const", 0x43, []byte{0, 0, 0x80, 0x3f}},
		{"f64.const", 0x44, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{"memory.copy", 0xfc, []byte{0x0a, 0x00, 0x00}},
		{"i32.trunc_sat_f32_s", 0xfc, []byte{0x00}},
		{"v128.const", 0xfd, append([]byte{0x0c}, make([]byte, 16)...)},
		{"i8x16.extract_lane_s", 0xfd, []byte{0x15, 0x03}},
		{"atomic.fence", 0xfe, []byte{0x03, 0x00}},
	} {
		r := &Reader{B: append(append([]byte(nil), tc.imm...), 0x0b)}
		if err := r.Immediates(tc.op); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if r.P != len(tc.imm) {
			t.Errorf("%s: read %d bytes of immediates, want %d", tc.name, r.P, len(tc.imm))
		}
	}
	for _, op := range []byte{0x27, 0xc5, 0xd7, 0xff} {
		if err := (&Reader{B: []byte{0, 0, 0}}).Immediates(op); err == nil {
			t.Errorf("opcode 0x%02x: accepted", op)
		}
	}
}

// FuzzReader: no input makes the reader panic or read outside its slice;
// a read that succeeds never moves backwards and never past the end.
func FuzzReader(f *testing.F) {
	f.Add([]byte{0x0e, 0x02, 0x00, 0x01, 0x02})
	f.Add([]byte{0x1f, 0x40, 0x01, 0x00, 0x00, 0x00})
	f.Add([]byte{0xfd, 0x0c})
	f.Add([]byte{0x41, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &Reader{B: b}
		for !r.Empty() {
			before := r.P
			op, _ := r.Byte()
			if err := r.Immediates(op); err != nil {
				return
			}
			if r.P <= before || r.P > len(b) {
				t.Fatalf("offset %d after %d of %d", r.P, before, len(b))
			}
		}
	})
}
